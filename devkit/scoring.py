"""Scoring of salmonn-mini's answers on the held-out split (used by ``tools/eval_mini.py``).

Plain Python (no torch, no numpy); the class and answer vocabulary is built from
:mod:`devkit.text_bank`, so scoring agrees with the data the model is trained on.

Rules:

* :func:`normalize` - the scoring form of any text, the same form as the data's ``label``
  (:func:`salmonn_agent.training.wer.normalize_transcript`) plus number handling: lower case; curly quotes to
  ``'``; digits written as words the way ``text_bank`` writes them (``14`` -> ``fourteen``,
  ``365`` -> ``three hundred and sixty five``, years ``1100``-``1999`` -> ``nineteen eighty
  five``, ``7:30`` -> ``seven thirty``, ``6:00`` -> ``six o'clock``, ``3rd`` -> ``third``,
  ``50%`` -> ``fifty percent``, ``2.5`` -> ``two point five``, ``1,250`` -> ``one thousand two
  hundred and fifty``; numbers with a leading zero or of 10,000 and more digit by digit);
  punctuation except ``'`` becomes a space (so ``forty-five`` -> ``forty five``); apostrophes at
  the edges of a word are dropped; whitespace collapsed. ``normalize(label) == label`` for every
  label of the data.
* :func:`corpus_wer` - jiwer's corpus WER (word errors over all reference words) of the
  normalised hypotheses against the normalised references.
* :func:`sound_class_of` / :func:`sound_classes_in` - which sound class(es) a text names. Each
  class has keyword stems: its ``SOUND_TEXT[cls]["label_words"]``, its instrument names
  (``INSTRUMENT_NAMES``, for music) and the few words ``text_bank``'s captions use beyond those
  (:data:`EXTRA_STEMS`: "metronome", "melody", "tune"). A stem matches a word equal to it, an
  inflection of it (``-s``, ``-es``, ``-ed``, ``-d``, ``-ing``, ``-er(s)``, ``-al``, ``-y``, e-drop
  before ``-ing``), or a compound of it that ``text_bank``'s own phrasings use (``rainfall``,
  ``birdsong``). Quoted text ("...", the words of a speaker in a caption) is ignored.
  :func:`sound_class_of` is the class named *first* (None when none is named);
  every phrasing ``text_bank`` uses for a class (QA answer, noun, scene, background clauses,
  every sound caption) maps back to that class (tested).
* :func:`yes_no` - ``"yes"``/``"no"``: from the first word when it is a yes word (yes, yeah,
  yep, yup, sure, correct, true) or a no word (no, nope, not, none, nothing, false); else the
  first whole word "yes" or "no" anywhere; else None.
* :func:`gender_of` - ``"male"``/``"female"``: the first gender word (male, man, men, boy, he,
  his, him, gentleman, guy / female, woman, women, girl, she, her, lady); else None.
* :func:`number_of` - the first run of number words (after :func:`normalize`, so digits count;
  ``once``/``twice``/``thrice`` -> one/two/three), e.g. ``"I hear 3 knocks"`` -> ``"three"``.
* :func:`query_correct` - a spoken-query answer is correct when its normalised form equals the
  label or starts with the label followed by a space ("seven" for "Seven, I think.").
* :func:`group_of` / :func:`score_item` / :func:`summarize` - the metric group of an item, the
  score of one answer, and the metrics of many (``tools/eval_mini.py`` documents the keys).

The real-recordings set (``tools/make_real_eval.py``; ``tools/eval_mini.py --real``):

* :func:`keyword_in` - the keyword an answer names first: whole words of the normalised answer
  (case-insensitive), a keyword also matching the inflections above (``bark`` -> ``barking``,
  ``chime`` -> ``chiming``); multi-word keywords allowed. None when no keyword is named.
* :func:`score_real_item` / :func:`summarize_real` - groups :data:`REAL_GROUPS`: ``real_asr``
  (speech items, WER against the transcript), ``real_sound`` (correct when the answer names one
  of the item's keywords), ``real_music`` (the item's keywords plus :data:`MUSIC_WORDS`) and
  ``real_presence`` (every item; yes for speech, no otherwise, read with :func:`yes_no`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from devkit import text_bank as T
from salmonn_agent.training.wer import normalize_transcript

__all__ = [
    "EXTRA_STEMS",
    "class_phrasings",
    "class_stems",
    "corpus_wer",
    "MUSIC_WORDS",
    "REAL_GROUPS",
    "gender_of",
    "keyword_in",
    "normalize",
    "number_of",
    "query_correct",
    "score_real_item",
    "sound_class_of",
    "sound_classes_in",
    "spell_number",
    "summarize_real",
    "yes_no",
]

# --------------------------------------------------------------------------- normalisation

_ORDINAL_LAST = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                 "nine": "ninth", "twelve": "twelfth"}


def spell_number(digits: str) -> str:
    """Words for a string of digits (optionally with a decimal part), as ``text_bank`` writes numbers."""
    if "." in digits:
        whole, frac = digits.split(".", 1)
        return spell_number(whole) + " point " + " ".join(T.number_words(int(d)) for d in frac)
    if len(digits) > 1 and digits.startswith("0") or len(digits) > 4:
        return " ".join(T.number_words(int(d)) for d in digits)  # codes, phone numbers
    n = int(digits)
    if 1100 <= n < 2000:  # years: "nineteen eighty five" (text_bank's year style)
        hi, lo = divmod(n, 100)
        tail = "hundred" if lo == 0 else ("oh " + T.number_words(lo) if lo < 10 else T.number_words(lo))
        return T.number_words(hi) + " " + tail
    return T.number_words(n)


def _ordinal(n: int) -> str:
    words = spell_number(str(n)).split()
    last = words[-1]
    if last in _ORDINAL_LAST:
        words[-1] = _ORDINAL_LAST[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _grouped(digits: str) -> str:
    n = int(digits.replace(",", ""))
    return T.number_words(n) if n < 10000 else spell_number(str(n))


def _time(match: re.Match[str]) -> str:
    hour, minute = int(match.group(1)), match.group(2)
    if minute == "00":
        return f" {T.number_words(hour)} o'clock "
    m = int(minute)
    return f" {T.number_words(hour)} {'oh ' if m < 10 else ''}{T.number_words(m)} "


def normalize(text: str) -> str:
    """The scoring form of ``text`` (see the module docstring)."""
    s = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    s = re.sub(r"\b\d{1,3}(?:,\d{3})+\b", lambda m: f" {_grouped(m.group(0))} ", s)  # 1,250: a quantity
    s = re.sub(r"\b(\d{1,2}):(\d{2})\b", _time, s)
    s = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: f" {_ordinal(int(m.group(1)))} ", s)
    s = re.sub(r"(\d)\s*%", r"\1 percent ", s)
    s = re.sub(r"\d+(?:\.\d+)?", lambda m: f" {spell_number(m.group(0))} ", s)
    words = (w.strip("'") for w in normalize_transcript(s).split())
    return " ".join(w for w in words if w)


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """jiwer corpus WER of normalised hypotheses against normalised references."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no references to score")
    refs = [normalize(r) or "<empty>" for r in references]
    hyps = [normalize(h) for h in hypotheses]
    return float(jiwer.wer(refs, hyps))


# --------------------------------------------------------------------------- sound classes

EXTRA_STEMS: dict[str, tuple[str, ...]] = {
    "ticking": ("metronome",),  # "A metronome clicks steadily."
    "music": ("melody", "tune"),  # instrument captions ("A slow cheerful tune played on a flute.")
}
"""Words ``text_bank``'s captions use for a class beyond its ``label_words`` and instrument names."""

_SUFFIXES = ("", "s", "es", "ed", "d", "ing", "er", "ers", "al", "y")


def class_phrasings(cls: str) -> list[str]:
    """Every phrasing ``text_bank`` uses for the sound class ``cls``: QA answer, noun, scene,
    background clauses, count questions, and the sound captions of all its variants."""
    import random

    from devkit import sounds as S  # numpy only; imported lazily

    st = T.SOUND_TEXT[cls]
    out = [st["answer"], st["noun"], st["scene"], *st["background"], *st.get("count_q", [])]
    metas = []
    for variant in S.SOUND_VARIANTS[cls]:
        for count in (None, 1, 2, 3, 5):
            for knob in (0.0, 1.0, 3.0):
                metas.append({"variant": variant, "count": count, "freq": 1000 + 1000 * knob, "rate": knob,
                              "intensity": knob / 3, "birds": 1 + int(knob), "tempo_word": "slow",
                              "mode": "major" if knob else "minor"})
    seen = set(out)
    for meta in metas:
        for seed in range(8):
            caption = T.sound_caption(cls, meta, random.Random(seed))
            if caption not in seen:
                seen.add(caption)
                out.append(caption)
    return out


@lru_cache(maxsize=1)
def class_stems() -> dict[str, tuple[str, ...]]:
    """Keyword stems per sound class (label words, instrument names, :data:`EXTRA_STEMS`)."""
    stems: dict[str, tuple[str, ...]] = {}
    for cls, st in T.SOUND_TEXT.items():
        words = [normalize(w) for w in st["label_words"]]
        if cls == "music":
            words += [normalize(name).split()[-1] for name in T.INSTRUMENT_NAMES.values()]
        words += EXTRA_STEMS.get(cls, ())
        stems[cls] = tuple(dict.fromkeys(words))
    return stems


@lru_cache(maxsize=1)
def _class_patterns() -> dict[str, re.Pattern[str]]:
    """One regex per class: its stems, their inflections, and the compounds text_bank uses."""
    stems = class_stems()
    compounds: dict[str, set[str]] = {cls: set() for cls in stems}
    for cls in stems:  # compounds of a stem in text_bank's own phrasings ("rainfall", "birdsong")
        for phrase in class_phrasings(cls):
            for word in normalize(phrase).split():
                for stem in stems[cls]:
                    if word.startswith(stem) and word != stem:
                        compounds[cls].add(word)
    patterns = {}
    for cls, cls_stems in stems.items():
        forms = set(compounds[cls])
        for stem in cls_stems:
            forms.update(stem + suffix for suffix in _SUFFIXES)
            if stem.endswith("e"):
                forms.add(stem[:-1] + "ing")
        alternatives = "|".join(sorted((re.escape(f) for f in forms), key=len, reverse=True))
        patterns[cls] = re.compile(rf"(?<![\w']){'(?:' + alternatives + ')'}(?![\w'])")
    return patterns


_QUOTED = re.compile(r'"[^"]*"|\u201c[^\u201d]*\u201d')


def _class_positions(text: str) -> dict[str, int]:
    norm = normalize(_QUOTED.sub(" , ", text))  # quoted speech is not a sound
    found = {}
    for cls, pattern in _class_patterns().items():
        m = pattern.search(norm)
        if m:
            found[cls] = m.start()
    return found


def sound_classes_in(text: str) -> set[str]:
    """All sound classes ``text`` names."""
    return set(_class_positions(text))


def sound_class_of(text: str) -> str | None:
    """The sound class ``text`` names first, or None."""
    found = _class_positions(text)
    return min(found, key=lambda c: (found[c], c)) if found else None


# --------------------------------------------------------------------------- short answers

_YES_FIRST = {"yes", "yeah", "yep", "yup", "sure", "correct", "true"}
_NO_FIRST = {"no", "nope", "not", "none", "nothing", "false"}
_MALE = {"male", "man", "men", "boy", "he", "his", "him", "gentleman", "guy", "masculine"}
_FEMALE = {"female", "woman", "women", "girl", "she", "her", "lady", "feminine"}


def yes_no(text: str) -> str | None:
    """``"yes"`` / ``"no"`` from an answer, or None."""
    words = normalize(text).split()
    if not words:
        return None
    if words[0] in _YES_FIRST:
        return "yes"
    if words[0] in _NO_FIRST:
        return "no"
    for w in words:
        if w in ("yes", "no"):
            return w
    return None


def gender_of(text: str) -> str | None:
    """``"male"`` / ``"female"``: the first gender word of an answer, or None."""
    for w in normalize(text).split():
        if w in _MALE:
            return "male"
        if w in _FEMALE:
            return "female"
    return None


_NUMBER_WORDS = set(T._ONES) | {t for t in T._TENS if t} | {"hundred", "thousand"}
_ADVERBS = {"once": "one", "twice": "two", "thrice": "three"}


def number_of(text: str) -> str | None:
    """The first number in an answer, in words (``"Three times."`` -> ``"three"``), or None."""
    words = [_ADVERBS.get(w, w) for w in normalize(text).split()]
    run: list[str] = []
    for w in words:
        if w in _NUMBER_WORDS or (w == "and" and run and run[-1] in ("hundred", "thousand")):
            run.append(w)
        elif run:
            break
    while run and run[-1] == "and":
        run.pop()
    return " ".join(run) or None


def query_correct(answer: str, label: str) -> bool:
    """A spoken-query answer is correct when it equals, or starts with, the label (normalised)."""
    got, want = normalize(answer), normalize(label)
    return bool(want) and (got == want or got.startswith(want + " "))


# --------------------------------------------------------------------------- items and summaries

SOUND_QA_TYPES = ("sound_class", "background_class", "sound_yesno")
GROUPS = ("asr", "sound", "speech_presence", "spoken_query", "gender", "count", "caption_class")
"""The metric groups of the held-out split, in report order (``--limit`` applies per group)."""


def group_of(item: dict) -> str | None:
    """The metric group of an annotation of the held-out split (None: not scored, e.g. stories)."""
    task, qa_type = item.get("task"), item.get("qa_type")
    if task == "asr":
        return "asr"
    if task == "speech_query":
        return "spoken_query"
    if task == "audiocaption":
        return "caption_class" if item.get("label") in T.SOUND_TEXT else None
    if task == "QA":
        if qa_type in SOUND_QA_TYPES:
            return "sound"
        return {"speech_presence": "speech_presence", "speaker_gender": "gender", "count": "count"}.get(qa_type)
    return None


def score_item(item: dict, prediction: str) -> dict:
    """What was extracted from ``prediction`` and whether it is correct, by the item's group.

    Returns ``group``, ``normalized`` (the normalised prediction), ``extracted`` (the class,
    yes/no, gender or number read from it; the set of classes named, for captions), ``correct``
    (bool; for asr: no word errors) and, for asr, ``wer`` of this item alone.
    """
    group = group_of(item)
    label = normalize(str(item.get("label", "")))
    out: dict = {"group": group, "normalized": normalize(prediction)}
    if group == "asr":
        out["wer"] = corpus_wer([label], [prediction])
        out["correct"] = out["wer"] == 0.0
    elif group == "sound":
        got = yes_no(prediction) if item.get("qa_type") == "sound_yesno" else sound_class_of(prediction)
        out.update(extracted=got, correct=got == label)
    elif group == "speech_presence":
        got = yes_no(prediction)
        out.update(extracted=got, correct=got == label)
    elif group == "spoken_query":
        out.update(correct=query_correct(prediction, label))
    elif group == "gender":
        got = gender_of(prediction)
        out.update(extracted=got, correct=got == label)
    elif group == "count":
        got = number_of(prediction)
        out.update(extracted=got, correct=got == label)
    elif group == "caption_class":
        got = sorted(sound_classes_in(prediction))
        out.update(extracted=got, correct=item.get("label") in got)
    return out


def _acc(records: list[dict]) -> float | None:
    return sum(bool(r["correct"]) for r in records) / len(records) if records else None


def _by_group(records: Sequence[dict], groups: Sequence[str]) -> dict[str, list[dict]]:
    """The records of each group, in order (records of other groups left out)."""
    by_group: dict[str, list[dict]] = {g: [] for g in groups}
    for r in records:
        if r.get("group") in by_group:
            by_group[r["group"]].append(r)
    return by_group


def _putter(out: dict) -> Callable[[str, float | None, int], None]:
    """A function that stores a score (rounded; None without samples) and its count in ``out``."""

    def put(key: str, value: float | None, n: int) -> None:
        out[key] = None if value is None else round(float(value), 4)
        out[f"{key}_n"] = n

    return put


def summarize(records: Sequence[dict]) -> dict:
    """The metrics of scored records (each: the item's ``task``, ``kind``, ``qa_type``, ``label``,
    ``prediction`` and :func:`score_item`'s ``group`` and ``correct``). Every score key comes with
    its sample count ``<key>_n``; a score with no samples is None.

    Keys: ``wer`` (corpus WER over all asr items; also ``wer_clean`` / ``wer_noisy`` by kind and
    ``wer_ref_words``), ``sound_acc`` (sound_class + background_class + sound_yesno QA) and
    ``sound_class_acc`` / ``background_class_acc`` / ``sound_yesno_acc``, ``speech_presence_acc``,
    ``spoken_query_acc``, ``gender_acc``, ``count_acc``, ``caption_class_acc``.
    """
    by_group = _by_group(records, GROUPS)
    out: dict = {}
    put = _putter(out)

    asr = by_group["asr"]
    put("wer", corpus_wer([r["label"] for r in asr], [r["prediction"] for r in asr]) if asr else None, len(asr))
    out["wer_ref_words"] = sum(len(normalize(r["label"]).split()) for r in asr)
    for kind in ("clean", "noisy"):
        sub = [r for r in asr if r.get("kind") == f"asr_{kind}"]
        put(f"wer_{kind}", corpus_wer([r["label"] for r in sub], [r["prediction"] for r in sub]) if sub else None,
            len(sub))
    sound = by_group["sound"]
    put("sound_acc", _acc(sound), len(sound))
    for qa_type in SOUND_QA_TYPES:
        sub = [r for r in sound if r.get("qa_type") == qa_type]
        put(f"{qa_type}_acc", _acc(sub), len(sub))
    for group, key in (("speech_presence", "speech_presence_acc"), ("spoken_query", "spoken_query_acc"),
                       ("gender", "gender_acc"), ("count", "count_acc"), ("caption_class", "caption_class_acc")):
        put(key, _acc(by_group[group]), len(by_group[group]))
    return out


# --------------------------------------------------------------------------- the real-recordings set

MUSIC_WORDS: tuple[str, ...] = (
    "music", "melody", "melodies", "song", "tune", "instrument", "instrumental", "orchestra", "band",
    "chord", "rhythm", "symphony", "piano", "keyboard", "guitar", "violin", "cello", "bass", "harp",
    "flute", "clarinet", "saxophone", "trumpet", "trombone", "horn", "organ", "accordion", "harmonica",
    "synthesizer", "synth", "marimba", "xylophone", "drum", "percussion",
)
"""Words that count as naming music for every music item of the real set (besides its keywords)."""

REAL_GROUPS = ("real_asr", "real_sound", "real_music", "real_presence")
"""The metric groups of the real set, in report order (``--real-limit`` applies per group)."""


@lru_cache(maxsize=512)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = set()
    for keyword in keywords:
        norm = normalize(keyword)
        if not norm:
            continue
        forms.update(norm + suffix for suffix in _SUFFIXES)
        if norm.endswith("e"):
            forms.add(norm[:-1] + "ing")
    if not forms:
        return None
    alternatives = "|".join(sorted((re.escape(f) for f in forms), key=len, reverse=True))
    return re.compile(rf"(?<![\w'])(?:{alternatives})(?![\w'])")


def keyword_in(text: str, keywords: Sequence[str]) -> str | None:
    """The normalised form of the first keyword ``text`` names (see the module docstring), or None."""
    pattern = _keyword_pattern(tuple(keywords))
    if pattern is None:
        return None
    m = pattern.search(normalize(text))
    return m.group(0) if m else None


def score_real_item(group: str, item: dict, prediction: str) -> dict:
    """What was read from ``prediction`` for a real-set ``item`` (a manifest entry) in ``group``.

    Returns ``group``, ``label`` (the transcript, ``yes``/``no``, or the item's label),
    ``normalized``, ``extracted`` (the keyword or yes/no found; not for asr), ``correct`` and,
    for asr, ``wer`` of this item alone.
    """
    out: dict = {"group": group, "normalized": normalize(prediction)}
    if group == "real_asr":
        out["label"] = item["transcript"]
        out["wer"] = corpus_wer([item["transcript"]], [prediction])
        out["correct"] = out["wer"] == 0.0
    elif group in ("real_sound", "real_music"):
        words = list(item.get("keywords", []))
        if group == "real_music":
            words += MUSIC_WORDS
        got = keyword_in(prediction, words)
        out.update(label=item.get("label", ""), extracted=got, correct=got is not None)
    elif group == "real_presence":
        want = "yes" if item.get("kind") == "speech" else "no"
        got = yes_no(prediction)
        out.update(label=want, extracted=got, correct=got == want)
    else:
        raise ValueError(f"unknown real-set group {group!r}")
    return out


def summarize_real(records: Sequence[dict]) -> dict:
    """The real-set metrics of scored records (each: ``kind``, ``label``, ``prediction`` and
    :func:`score_real_item`'s ``group`` and ``correct``); every score has its count ``<key>_n``.

    Keys: ``real_wer`` (corpus WER over the real_asr records) and ``real_wer_ref_words``,
    ``real_sound_acc``, ``real_music_acc``, ``real_speech_presence_acc`` (all items) and its parts
    ``real_presence_speech_acc`` (speech items: yes) / ``real_presence_nonspeech_acc`` (no).
    """
    by_group = _by_group(records, REAL_GROUPS)
    out: dict = {}
    put = _putter(out)

    asr = by_group["real_asr"]
    put("real_wer", corpus_wer([r["label"] for r in asr], [r["prediction"] for r in asr]) if asr else None,
        len(asr))
    out["real_wer_ref_words"] = sum(len(normalize(r["label"]).split()) for r in asr)
    put("real_sound_acc", _acc(by_group["real_sound"]), len(by_group["real_sound"]))
    put("real_music_acc", _acc(by_group["real_music"]), len(by_group["real_music"]))
    presence = by_group["real_presence"]
    put("real_speech_presence_acc", _acc(presence), len(presence))
    for key, want in (("real_presence_speech_acc", "yes"), ("real_presence_nonspeech_acc", "no")):
        sub = [r for r in presence if r["label"] == want]
        put(key, _acc(sub), len(sub))
    return out
