"""Make the synthetic training data of the embedded default model "salmonn-mini".

    python tools/make_mini_data.py OUT_DIR [--seed 0] [--train 6000] [--valid 300] [--test 600] [--workers 2]

Writes, in the official SALMONN format (``{"annotation": [...]}``):

* ``OUT/train.json``, ``OUT/valid.json``, ``OUT/test.json`` (test = the held-out split);
* ``OUT/train_stage1.json`` (the train annotations of tasks asr and audiocaption: SALMONN's
  stage 1) and ``OUT/train_stage3.json`` (the audio_story_telling ones: activation tuning);
* ``OUT/prompts.json``: task -> instruction templates with ``<SpeechHere>`` (``{}`` takes ``Q``);
  the first template of each task is the official wording;
* ``OUT/audio/<split>/<split>_NNNNN.wav``: 16 kHz mono 16-bit PCM, at most 10 s each;
* ``OUT/summary.json`` (also printed on stdout): counts per split, task, kind, sound class and
  gender, and audio seconds. Progress and timing go to stderr.

Annotation ``path`` values are **relative to OUT** (``audio/train/train_00012.wav``): the
training loader resolves them against the annotation file's folder, so OUT can be moved.

Every annotation has ``path``, ``text`` (the target answer) and ``task``; QA ones have ``Q``.
Extra metadata: ``kind`` (how the clip was built, e.g. ``asr_noisy``, ``qa_background``),
``split``, ``label`` (the scoring label: normalised transcript, ``yes``/``no``, a sound class,
``male``/``female``, a count word, or the query answer), ``duration``, and where they apply
``transcript``, ``voice``, ``speaker_gender``, ``speed``, ``pitch``, ``sound_class``,
``sound_variant``, ``snr_db``, ``count``, ``qa_type``, ``query_kind``, ``answer``.

Tasks and how their clips are built (kinds; shares of the non-story train/valid items; the test
split has more QA: asr 30 %, audiocaption 11 %, QA 45 %, speech_query 14 %, see ``TEST_MIX``):

* ``asr`` (40 %): a sentence spoken by espeak-ng, clean (``asr_clean``) or over a background sound
  at 10-30 dB SNR (``asr_noisy``). Target: the sentence.
* ``audiocaption`` (20 %): sound-only clips (``cap_sound``), speech (``cap_speech``), speech over a
  background (``cap_mix``) and silence/near silence (``cap_silence``). Captions are generated from
  the synthesis parameters (speaker gender, speed, words, background class at 5-20 dB SNR, event
  counts, music timbre/tempo/mode), e.g. ``A woman says: "Lock the front door." while a siren wails in the background.``
* ``QA`` (27 %): speech presence yes/no (speech, speech over sound, sound only, silence),
  the sound class of a sound-only clip (or "can you hear X?" yes/no), the background class of
  speech over a sound, male/female voice, and event counts (beeps, knocks, barks, doorbell rings).
* ``speech_query`` (13 %): a spoken question (arithmetic, days, months, colours, opposites,
  counting facts, comparisons, letters, number order, parity), sometimes over a quiet background;
  the target is its one deterministic answer ("What is three plus four?" -> "Seven.").
* ``audio_story_telling``: round(N / 500) items, 1 to 12 per split (12 for the default train
  size): long stories grounded in the clip's speaker, words and sounds, for activation tuning.

Split rules (``test`` is the held-out split; ``valid`` is in-domain):

* Sentences: every spoken sentence belongs to one split by a hash of its text (80/5/15 % of a
  fixed bank of ~8,400 sentences); spoken queries by a hash of the *problem* (e.g. ``add:3:4``), so
  no wording of a held-out problem is trained on. The banks do not depend on ``--seed``.
* Voices: the espeak-ng variants in ``sounds.HELD_OUT_VARIANTS`` (whole families: m3, m7, Andy,
  AnxiousAndy, travis, edward, edward2, gustave, marcelo; f3, f5, Andrea, aunty) speak only in
  test; train and valid use the other 74 variants. Accents (8 English espeak-ng languages) are shared.
* Speed (120-220 wpm) and pitch (-p 25-65 male, 40-80 female) ranges, SNRs and every continuous sound parameter are
  cut into 10 bins: bins 3 and 7 only for test, the rest only for train/valid.
* Sound renderings: each class's last synthesis variant (``sounds.HELD_OUT_SOUND_VARIANTS``:
  alarm warble, siren whoop, muffled knocking, mechanical ticking, gusty rain, rough bark,
  triple doorbell, marimba music, warbling birds, motorbike engine) appears only in test; test
  clips draw from all variants of a class. Per-item random seeds differ by split.

Determinism: each item's generator is seeded by (seed, split, index); items are made in a
process pool and written in order, so a seed gives byte-identical JSON and WAV files (for the
same espeak-ng, numpy and soxr versions). espeak-ng gets all its parameters on the command
line and is deterministic. WAV files are written by Python's ``wave`` module (no timestamps).

Second TTS: none. Checked on PyPI (pip download --no-deps): piper-tts, kittentts,
kitten-tts-cpp, kokoro-onnx, tiny-tts and pocket-tts ship no voice model in the wheel (they
download one at run time); espeakng-loader and py-espeak-ng are espeak-ng again. So speech comes
from espeak-ng only, varied by 87 voice variants, 8 accents, speed, pitch and word gap.
(Debian's ``flite`` package ships voices, but it is not on PyPI.)

Defaults (6000 / 300 / 600) are sized for CPU training within about two hours.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit import sounds as S  # noqa: E402
from devkit import text_bank as T  # noqa: E402
from salmonn_agent.training.wer import normalize_transcript  # noqa: E402

SPLIT_IDS = {"train": 0, "valid": 1, "test": 2}
MAX_SECONDS = 10.0
MIX = {  # kind -> share of the non-story items of a split
    "asr_clean": 0.22, "asr_noisy": 0.18,
    "cap_sound": 0.09, "cap_speech": 0.03, "cap_mix": 0.06, "cap_silence": 0.02,
    "qa_presence": 0.07, "qa_sound": 0.07, "qa_background": 0.06, "qa_gender": 0.04, "qa_count": 0.03,
    "query": 0.13,
}
# The held-out split leans towards the measured questions (speech presence, sound class,
# background class), so that their accuracies rest on enough items.
TEST_MIX = {
    "asr_clean": 0.16, "asr_noisy": 0.14,
    "cap_sound": 0.05, "cap_speech": 0.02, "cap_mix": 0.03, "cap_silence": 0.01,
    "qa_presence": 0.14, "qa_sound": 0.12, "qa_background": 0.10, "qa_gender": 0.06, "qa_count": 0.03,
    "query": 0.14,
}
TASK_OF = {"asr": "asr", "cap": "audiocaption", "qa": "QA", "query": "speech_query", "story": "audio_story_telling"}
SNR_RANGE = (5.0, 20.0)  # speech over a background the question or caption is about
ASR_SNR_RANGE = (10.0, 30.0)  # noisy speech recognition: the words must stay intelligible
SPEECH_DB = (-28.0, -18.0)
SOUND_DB = (-32.0, -18.0)


def task_of(kind: str) -> str:
    return TASK_OF[kind.split("_")[0]]


# --------------------------------------------------------------------------- planning


def story_count(n: int) -> int:
    """Stories per split: about one per 500 items, 1 to 12 (0 for an empty split)."""
    return 0 if n <= 0 else int(min(12, max(1, round(n / 500))))


def plan_kinds(n: int, seed: int, split: str) -> list[str]:
    """The kind of every item of a split: exact shares (largest remainder), shuffled by the seed."""
    n_story = story_count(n)
    rest = n - n_story
    mix = TEST_MIX if split == "test" else MIX
    raw = {k: share * rest for k, share in mix.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[: rest - sum(counts.values())]:
        counts[k] += 1
    kinds = [k for k in mix for _ in range(counts[k])] + ["story"] * n_story
    random.Random(f"{seed}/{split}/plan").shuffle(kinds)
    return kinds


@dataclass(frozen=True)
class Job:
    """One item to make: where it goes and how it is seeded."""

    out_dir: str
    seed: int
    split: str
    index: int
    kind: str

    @property
    def rel_path(self) -> str:
        return f"audio/{self.split}/{self.split}_{self.index:05d}.wav"


# --------------------------------------------------------------------------- clip builders


@dataclass
class Clip:
    """Audio plus what is in it."""

    audio: np.ndarray
    meta: dict[str, Any]


class Builder:
    """Builds the clips of one item from its own random generators."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.held_out = job.split == "test"
        self.rng = np.random.default_rng([job.seed, SPLIT_IDS[job.split], job.index, 7919])
        self.py = random.Random(int(self.rng.integers(2**62)))

    def draw(self, lo: float, hi: float) -> float:
        return S.draw(self.rng, lo, hi, self.held_out)

    def sentence(self) -> T.Sentence:
        pool = T.sentence_bank()[self.job.split]
        return pool[self.py.randrange(len(pool))]

    def query(self) -> T.Query:
        pool = T.query_bank()[self.job.split]
        return pool[self.py.randrange(len(pool))]

    def sound_class(self, exclude: str | None = None) -> str:
        classes = [c for c in S.SOUND_CLASSES if c != exclude]
        return classes[self.py.randrange(len(classes))]

    def floor_noise(self, x: np.ndarray) -> np.ndarray:
        """Half of the clips get a faint noise floor (-78..-60 dBFS)."""
        if self.rng.random() < 0.5:
            x = x + S.set_rms_db(self.rng.standard_normal(len(x)).astype(np.float32), float(self.rng.uniform(-78, -60)))
        return x

    def finish(self, x: np.ndarray) -> np.ndarray:
        return S.limit_peak(S.fade(self.floor_noise(x.astype(np.float32)), 0.005))

    def speech(self, text: str, bg_class: str | None = None, snr: tuple[float, float] = SNR_RANGE,
               gender: str | None = None) -> Clip:
        """``text`` spoken by a voice of the split, padded with lead/tail, optionally over a background."""
        voice = S.draw_voice(self.rng, self.held_out, gender)
        x = S.speak(text, voice)
        for _ in range(4):  # keep the clip within 10 s: speak faster if needed
            if len(x) <= S.samples(MAX_SECONDS - 1.0):
                break
            faster = min(300, int(voice.speed * 1.25))
            voice = S.Voice(voice.lang, voice.variant, voice.gender, faster, voice.pitch, voice.gap)
            x = S.speak(text, voice)
        x = S.set_rms_db(x, float(self.rng.uniform(*SPEECH_DB)))
        lead = S.samples(float(self.rng.uniform(0.1, 0.8)))
        tail = S.samples(float(self.rng.uniform(0.1, 0.8)))
        total = min(len(x) + lead + tail, S.samples(MAX_SECONDS))
        speech = np.zeros(total, np.float32)
        S.add_at(speech, x[: total - lead], lead)
        meta: dict[str, Any] = {"transcript": text, "voice": voice.name, "speaker_gender": voice.gender,
                                "speed": voice.speed, "pitch": voice.pitch, "speed_word": voice.speed_word}
        if bg_class is not None:
            bg = S.synth_sound(bg_class, self.rng, S.seconds(total), self.held_out)
            snr_db = self.draw(*snr)
            speech = S.mix_at_snr(speech, bg.audio, snr_db)
            meta.update(sound_class=bg_class, sound_variant=bg.meta["variant"], snr_db=round(snr_db, 1))
        return Clip(self.finish(speech), meta)

    def sound(self, cls: str, duration: float | None = None, count: int | None = None) -> Clip:
        """A sound-only clip of class ``cls``."""
        if duration is None:
            duration = float(self.rng.uniform(2.0, 8.0))
        snd = S.synth_sound(cls, self.rng, duration, self.held_out, count=count)
        x = S.set_rms_db(snd.audio, float(self.rng.uniform(*SOUND_DB)))
        meta = {"sound_class": cls, "sound_variant": snd.meta["variant"], "synth": snd.meta}
        if "count" in snd.meta:
            meta["count"] = snd.meta["count"]
        return Clip(self.finish(x), meta)

    def silence(self) -> Clip:
        snd = S.silence(self.rng, float(self.rng.uniform(1.0, 6.0)), self.held_out)
        return Clip(snd.audio.astype(np.float32), {"silence": snd.meta["variant"]})


# --------------------------------------------------------------------------- items per kind


def make_asr(b: Builder, noisy: bool) -> tuple[Clip, dict[str, Any]]:
    s = b.sentence()
    clip = b.speech(s.text, b.sound_class() if noisy else None, snr=ASR_SNR_RANGE)
    return clip, {"text": s.text, "label": normalize_transcript(s.text), "sentence_category": s.category}


def make_caption(b: Builder, scene: str) -> tuple[Clip, dict[str, Any]]:
    if scene == "sound":
        cls = b.sound_class()
        clip = b.sound(cls)
        return clip, {"text": T.sound_caption(cls, clip.meta["synth"], b.py), "label": cls}
    if scene == "silence":
        clip = b.silence()
        return clip, {"text": b.py.choice(T.SILENCE_CAPTIONS[clip.meta["silence"]]), "label": "silence"}
    s = b.sentence()
    bg = b.sound_class() if scene == "mix" else None
    clip = b.speech(s.text, bg)
    text = T.speech_caption(clip.meta["speaker_gender"], s.text, clip.meta["speed_word"], b.py, bg)
    return clip, {"text": text, "label": bg or "speech"}


def make_presence(b: Builder) -> tuple[Clip, dict[str, Any]]:
    r = b.rng.random()
    if r < 0.25:
        clip, yes = b.speech(b.sentence().text), True
    elif r < 0.5:
        clip, yes = b.speech(b.sentence().text, b.sound_class()), True
    elif r < 0.85:
        clip, yes = b.sound(b.sound_class()), False
    else:
        clip, yes = b.silence(), False
    q = b.py.choice(T.PRESENCE_QUESTIONS)
    return clip, {"Q": q, "text": "Yes." if yes else "No.", "label": "yes" if yes else "no",
                  "qa_type": "speech_presence"}


def make_sound_qa(b: Builder) -> tuple[Clip, dict[str, Any]]:
    cls = b.sound_class()
    clip = b.sound(cls)
    if b.rng.random() < 0.25:  # "can you hear X?" with X the true class or another one
        asked = cls if b.rng.random() < 0.5 else b.sound_class(exclude=cls)
        q = b.py.choice(T.YESNO_SOUND_QUESTIONS).format(noun=T.SOUND_TEXT[asked]["noun"])
        yes = asked == cls
        return clip, {"Q": T.capitalize(q), "text": "Yes." if yes else "No.", "label": "yes" if yes else "no",
                      "qa_type": "sound_yesno", "asked_class": asked}
    q = b.py.choice(T.SOUND_QUESTIONS)
    return clip, {"Q": q, "text": T.SOUND_TEXT[cls]["answer"], "label": cls, "qa_type": "sound_class"}


def make_background_qa(b: Builder) -> tuple[Clip, dict[str, Any]]:
    cls = b.sound_class()
    clip = b.speech(b.sentence().text, cls)
    q = b.py.choice(T.BACKGROUND_QUESTIONS)
    return clip, {"Q": q, "text": T.SOUND_TEXT[cls]["answer"], "label": cls, "qa_type": "background_class"}


def make_gender_qa(b: Builder) -> tuple[Clip, dict[str, Any]]:
    gender = "male" if b.rng.random() < 0.5 else "female"
    bg = b.sound_class() if b.rng.random() < 0.4 else None
    clip = b.speech(b.sentence().text, bg, gender=gender)
    q, male, female = b.py.choice(T.GENDER_QUESTIONS)
    return clip, {"Q": q, "text": male if gender == "male" else female, "label": gender, "qa_type": "speaker_gender"}


COUNT_LIMITS = {"alarm": (2, 6), "knocking": (2, 6), "dog_bark": (1, 5), "doorbell": (1, 2)}


def make_count_qa(b: Builder) -> tuple[Clip, dict[str, Any]]:
    cls = S.COUNTABLE_CLASSES[b.py.randrange(len(S.COUNTABLE_CLASSES))]
    want = S.draw_int(b.rng, *COUNT_LIMITS[cls])
    clip = b.sound(cls, duration=float(b.rng.uniform(6.0, 9.5)), count=want)
    n = clip.meta["count"]  # the true count (events that did not fit are dropped)
    q = b.py.choice(T.SOUND_TEXT[cls]["count_q"])
    words = T.number_words(n)
    return clip, {"Q": q, "text": T.answer_of(words), "label": words, "qa_type": "count"}


def make_query(b: Builder) -> tuple[Clip, dict[str, Any]]:
    q = b.query()
    bg = b.sound_class() if b.rng.random() < 0.3 else None
    clip = b.speech(q.question, bg, snr=(15.0, 30.0))
    return clip, {"text": q.answer, "label": q.label, "answer": q.answer, "query_kind": q.kind}


def make_story(b: Builder) -> tuple[Clip, dict[str, Any]]:
    if b.rng.random() < 0.7:
        s = b.sentence()
        cls = b.sound_class()
        clip = b.speech(s.text, cls, snr=(8.0, 20.0))
        text = T.story(b.py, bg_class=cls, gender=clip.meta["speaker_gender"], sentence=s.text)
    else:
        cls = b.sound_class()
        clip = b.sound(cls, duration=float(b.rng.uniform(4.0, 9.0)))
        detail = T.sound_caption(cls, clip.meta["synth"], b.py)
        text = T.story(b.py, bg_class=cls, gender=None, sentence=None, sound_detail=detail)
    return clip, {"text": text, "label": cls}


def build(b: Builder, kind: str) -> tuple[Clip, dict[str, Any]]:
    """The clip and annotation fields of one item of ``kind``."""
    makers = {
        "asr_clean": lambda: make_asr(b, False), "asr_noisy": lambda: make_asr(b, True),
        "cap_sound": lambda: make_caption(b, "sound"), "cap_speech": lambda: make_caption(b, "speech"),
        "cap_mix": lambda: make_caption(b, "mix"), "cap_silence": lambda: make_caption(b, "silence"),
        "qa_presence": lambda: make_presence(b), "qa_sound": lambda: make_sound_qa(b),
        "qa_background": lambda: make_background_qa(b), "qa_gender": lambda: make_gender_qa(b),
        "qa_count": lambda: make_count_qa(b), "query": lambda: make_query(b), "story": lambda: make_story(b),
    }
    return makers[kind]()


def make_item(job: Job) -> dict[str, Any]:
    """Make one item: write its WAV file and return its annotation."""
    b = Builder(job)
    clip, fields = build(b, job.kind)
    audio = clip.audio[: S.samples(MAX_SECONDS)]
    S.write_wav(Path(job.out_dir) / job.rel_path, audio)
    meta = {k: v for k, v in clip.meta.items() if k not in ("synth", "speed_word")}
    ann: dict[str, Any] = {"path": job.rel_path, "text": fields.pop("text"), "task": task_of(job.kind)}
    if "Q" in fields:
        ann["Q"] = fields.pop("Q")
    ann.update(kind=job.kind, split=job.split, duration=round(len(audio) / S.SR, 3))
    ann.update(fields)
    ann.update(meta)
    return ann


# --------------------------------------------------------------------------- driver


def prepare_dirs(out: Path, sizes: dict[str, int]) -> None:
    """Create OUT/audio/<split> and remove this tool's old WAV files there."""
    for split in sizes:
        d = out / "audio" / split
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob(f"{split}_*.wav"):
            old.unlink()


def run_jobs(jobs: list[Job], workers: int) -> list[dict[str, Any]]:
    """Make all items (in a process pool when ``workers`` > 1), in order, with progress on stderr."""
    out: list[dict[str, Any]] = []
    start = time.perf_counter()
    step = max(1, len(jobs) // 20)

    def report(done: int) -> None:
        if done % step == 0 or done == len(jobs):
            el = time.perf_counter() - start
            print(f"[make_mini_data] {done}/{len(jobs)} items ({100 * done // max(1, len(jobs))} %), "
                  f"{el:.1f} s", file=sys.stderr, flush=True)

    if workers <= 1:
        for job in jobs:
            out.append(make_item(job))
            report(len(out))
        return out
    with mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn").Pool(workers) as pool:
        for ann in pool.imap(make_item, jobs, chunksize=4):
            out.append(ann)
            report(len(out))
    return out


def summarize(anns: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    """Counts per split / task / kind / class / gender, and audio seconds (deterministic)."""
    def count(key: str, items: list[dict[str, Any]]) -> dict[str, int]:
        return dict(sorted(Counter(a[key] for a in items if key in a).items()))

    summary: dict[str, Any] = {"seed": args.seed, "sizes": {s: len(a) for s, a in anns.items()}, "splits": {}}
    total = 0.0
    for split, items in anns.items():
        secs = sum(a["duration"] for a in items)
        total += secs
        summary["splits"][split] = {
            "items": len(items),
            "audio_seconds": round(secs, 1),
            "tasks": count("task", items),
            "kinds": count("kind", items),
            "sound_classes": count("sound_class", items),
            "sound_variants": dict(sorted(Counter(f"{a['sound_class']}/{a['sound_variant']}"
                                                  for a in items if "sound_variant" in a).items())),
            "speaker_gender": count("speaker_gender", items),
            "qa_types": count("qa_type", items),
            "voices": len({a["voice"] for a in items if "voice" in a}),
            "sentences": len({a["transcript"] for a in items if "transcript" in a}),
        }
    summary["audio_seconds"] = round(total, 1)
    summary["audio_hours"] = round(total / 3600, 2)
    return summary


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=6000)
    p.add_argument("--valid", type=int, default=300)
    p.add_argument("--test", type=int, default=600)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    for name in ("train", "valid", "test"):
        if getattr(args, name) < 0:
            p.error(f"--{name} must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not S.espeak_available():
        print("error: espeak-ng not found; install it (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    sizes = {"train": args.train, "valid": args.valid, "test": args.test}
    prepare_dirs(out, sizes)
    jobs = [Job(str(out), args.seed, split, i, kind)
            for split, n in sizes.items() for i, kind in enumerate(plan_kinds(n, args.seed, split))]
    start = time.perf_counter()
    results = run_jobs(jobs, args.workers)
    anns: dict[str, list[dict[str, Any]]] = {s: [] for s in sizes}
    for ann in results:
        anns[ann["split"]].append(ann)
    for split, items in anns.items():
        write_json(out / f"{split}.json", {"annotation": items})
    stage1 = [a for a in anns["train"] if a["task"] in ("asr", "audiocaption")]
    stage3 = [a for a in anns["train"] if a["task"] == "audio_story_telling"]
    write_json(out / "train_stage1.json", {"annotation": stage1})
    write_json(out / "train_stage3.json", {"annotation": stage3})
    write_json(out / "prompts.json", T.PROMPTS)
    summary = summarize(anns, args)
    write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=1))
    print(f"[make_mini_data] {len(jobs)} items, {summary['audio_hours']} h of audio in "
          f"{time.perf_counter() - start:.1f} s with {args.workers} worker(s) -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
