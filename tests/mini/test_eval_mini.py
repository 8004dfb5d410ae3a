"""devkit.scoring (tools/eval_mini.py's scoring): fast, no model, no audio."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from devkit import scoring as SC
from devkit import text_bank as T
from salmonn_agent.training.wer import normalize_transcript

ROOT = Path(__file__).resolve().parents[2]


def data_norm(text: str) -> str:
    """make_mini_data's label form, to check that scoring agrees with it."""
    return normalize_transcript(text)


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(("text", "want"), [
    ("Call Michael next week.", "call michael next week"),
    ("  Hello,   is ANYBODY there?! ", "hello is anybody there"),
    ("Set a timer for 15 minutes.", "set a timer for fifteen minutes"),
    ("It's five forty-five at six o\u2019clock.", "it's five forty five at six o'clock"),
    ("Wake me at 7:30, not 6:00 or 5:05.", "wake me at seven thirty not six o'clock or five oh five"),
    ("Room 312 is on the 3rd floor.", "room three hundred and twelve is on the third floor"),
    ("The 21st and 12th.", "the twenty first and twelfth"),
    ("Dim the lights to 50%.", "dim the lights to fifty percent"),
    ("Sarah was born in 1985.", "sarah was born in nineteen eighty five"),
    ("Anna was born in 2007.", "anna was born in two thousand and seven"),
    ("It costs 1,250 dollars.", "it costs one thousand two hundred and fifty dollars"),
    ("The door code is 0421.", "the door code is zero four two one"),
    ("Pi is 3.14", "pi is three point one four"),
    ("He said 'yes'.", "he said yes"),
    ("", ""),
])
def test_normalize(text: str, want: str) -> None:
    assert SC.normalize(text) == want


def test_normalize_keeps_every_label() -> None:
    sentences = [s.text for split in T.sentence_bank().values() for s in split]
    assert len(sentences) > 5000
    assert [s for s in sentences if SC.normalize(data_norm(s)) != data_norm(s)] == []
    assert all(SC.normalize(s) == data_norm(s) for s in sentences)  # all words, no digits in the data
    labels = [q.label for split in T.query_bank().values() for q in split]
    assert [x for x in labels if SC.normalize(x) != x] == []


def test_spell_number_matches_text_bank() -> None:
    for n in (0, 7, 13, 40, 99, 100, 365, 999, 1000, 2024, 9999):
        assert SC.spell_number(str(n)) == T.number_words(n)
    assert SC.spell_number("1999") == "nineteen ninety nine"
    assert SC.spell_number("1900") == "nineteen hundred"


# --------------------------------------------------------------------------- WER


def test_wer_perfect_and_wrong() -> None:
    refs = ["call michael next week", "turn on the kitchen lights"]
    assert SC.corpus_wer(refs, ["Call Michael next week.", "Turn ON the kitchen lights!"]) == 0.0
    assert SC.corpus_wer(["set a timer for fifteen minutes"], ["Set a timer for 15 minutes."]) == 0.0
    # 1 substitution + 1 deletion over 9 reference words
    assert SC.corpus_wer(refs, ["call michelle next week", "turn on the kitchen"]) == pytest.approx(2 / 9)
    assert SC.corpus_wer(refs, ["", ""]) == 1.0
    assert SC.corpus_wer(["a b"], ["x y z w"]) == 2.0  # insertions count too
    with pytest.raises(ValueError):
        SC.corpus_wer(refs, ["one"])


# --------------------------------------------------------------------------- sound classes


@pytest.mark.parametrize("cls", sorted(T.SOUND_TEXT))
def test_every_text_bank_phrasing_maps_back_to_its_class(cls: str) -> None:
    phrasings = SC.class_phrasings(cls)
    st = T.SOUND_TEXT[cls]
    assert st["answer"] in phrasings and all(b in phrasings for b in st["background"])
    assert len(phrasings) >= 8
    for phrase in phrasings:
        assert SC.sound_class_of(phrase) == cls, phrase
        assert SC.sound_classes_in(phrase) == {cls}, phrase  # and names no other class


def test_quoted_speech_is_not_a_sound() -> None:
    sentence = "A loud siren echoed through the empty streets."
    for cls in T.SOUND_TEXT:
        for seed in range(6):
            caption = T.speech_caption("female", sentence, "normal", random.Random(seed), cls)
            assert SC.sound_classes_in(caption) == {cls}, caption
    assert SC.sound_class_of('A man says: "Someone is knocking at the back door."') is None


def test_class_stems_come_from_text_bank_and_are_disjoint() -> None:
    stems = SC.class_stems()
    assert set(stems) == set(T.SOUND_TEXT)
    for cls, st in T.SOUND_TEXT.items():
        assert set(st["label_words"]) <= set(stems[cls])
    flat = [s for v in stems.values() for s in v]
    assert len(flat) == len(set(flat))


@pytest.mark.parametrize(("text", "want"), [
    ("A dog barking.", "dog_bark"),
    ("Dogs are barking loudly", "dog_bark"),
    ("I can hear rainfall.", "rain"),
    ("It is raining.", "rain"),
    ("The background sound is birdsong", "birdsong"),
    ("The doorbell chimes twice.", "doorbell"),
    ("Someone is knocking on a door.", "knocking"),
    ("A metronome.", "ticking"),
    ("A marimba plays a melody.", "music"),
    ("An alarm clock beeping.", "alarm"),  # the first class named wins
    ("A siren, then a dog.", "siren"),
    ("Nothing, the recording is silent.", None),
    ("A man is speaking.", None),
    ("I bought a ticket.", None),  # "tick" is a stem, "ticket" is not a form of it
    ("", None),
])
def test_sound_class_of(text: str, want: str | None) -> None:
    assert SC.sound_class_of(text) == want


# --------------------------------------------------------------------------- short answers


@pytest.mark.parametrize(("text", "want"), [
    ("Yes.", "yes"), ("No.", "no"), ("yes, someone is speaking", "yes"), ("Nope", "no"),
    ("No, there is no speech.", "no"), ("Not at all.", "no"), ("Nothing, the recording is silent.", "no"),
    ("I think yes.", "yes"), ("There is no voice.", "no"), ("Maybe.", None), ("", None),
])
def test_yes_no(text: str, want: str | None) -> None:
    assert SC.yes_no(text) == want


def test_gender_and_number() -> None:
    for _q, male, female in T.GENDER_QUESTIONS:
        assert SC.gender_of(male) == "male" and SC.gender_of(female) == "female"
    assert SC.gender_of("The speaker is a woman.") == "female"
    assert SC.gender_of("A child.") is None
    assert SC.number_of("Three.") == "three"
    assert SC.number_of("I hear 4 knocks") == "four"
    assert SC.number_of("Twice.") == "two"
    assert SC.number_of("one hundred and five apples") == "one hundred and five"
    assert SC.number_of("none") is None


def test_query_correct() -> None:
    assert SC.query_correct("Seven.", "seven")
    assert SC.query_correct("Seven, I think.", "seven")
    assert SC.query_correct("21", "twenty one")
    assert SC.query_correct("B.", "b")
    assert not SC.query_correct("Seventeen.", "seven")
    assert not SC.query_correct("The answer is seven.", "seven")
    assert not SC.query_correct("", "seven")


# --------------------------------------------------------------------------- items and summary


def test_score_items_and_summarize() -> None:
    cases = [  # (item, prediction, correct)
        ({"task": "asr", "kind": "asr_clean", "label": "call michael next week"}, "Call Michael next week.", True),
        ({"task": "asr", "kind": "asr_noisy", "label": "lock the front door"}, "Lock the back door.", False),
        ({"task": "QA", "qa_type": "sound_class", "label": "dog_bark"}, "A dog barking.", True),
        ({"task": "QA", "qa_type": "background_class", "label": "rain"}, "Music.", False),
        ({"task": "QA", "qa_type": "sound_yesno", "label": "no"}, "No.", True),
        ({"task": "QA", "qa_type": "speech_presence", "label": "yes"}, "Yes.", True),
        ({"task": "QA", "qa_type": "speaker_gender", "label": "female"}, "A woman.", True),
        ({"task": "QA", "qa_type": "count", "label": "three"}, "Four.", False),
        ({"task": "speech_query", "label": "fourteen"}, "Fourteen.", True),
        ({"task": "audiocaption", "label": "siren"}, "A siren wails.", True),
    ]
    records = []
    for item, prediction, correct in cases:
        scored = SC.score_item(item, prediction)
        assert scored["correct"] is correct, (item, prediction)
        records.append({**item, "prediction": prediction, **scored})
    assert SC.group_of({"task": "audiocaption", "label": "speech"}) is None
    assert SC.group_of({"task": "audio_story_telling", "label": "rain"}) is None
    m = SC.summarize(records)
    assert m["wer"] == pytest.approx(1 / 8, abs=1e-4) and m["wer_n"] == 2 and m["wer_ref_words"] == 8
    assert m["wer_clean"] == 0.0 and m["wer_noisy_n"] == 1
    assert m["sound_acc"] == pytest.approx(0.6667, abs=1e-4) and m["sound_acc_n"] == 3
    assert m["sound_class_acc"] == 1.0 and m["background_class_acc"] == 0.0 and m["sound_yesno_acc_n"] == 1
    assert (m["speech_presence_acc"], m["gender_acc"], m["count_acc"]) == (1.0, 1.0, 0.0)
    assert m["spoken_query_acc"] == 1.0 and m["caption_class_acc"] == 1.0
    empty = SC.summarize([])
    assert empty["wer"] is None and empty["wer_n"] == 0 and empty["sound_acc"] is None
    score_keys = [k for k in m if not k.endswith("_n") and k != "wer_ref_words"]
    assert all(f"{k}_n" in m for k in score_keys)


def test_eval_tool_selects_groups_and_instructions() -> None:
    spec = importlib.util.spec_from_file_location("eval_mini_tool", ROOT / "tools" / "eval_mini.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    items = [{"task": "asr", "label": "a"}] * 3 + [{"task": "QA", "qa_type": "sound_class", "label": "rain",
                                                     "Q": "What sound is this?"}]
    groups = tool.select(items, 2)
    assert len(groups["asr"]) == 2 and len(groups["sound"]) == 1
    assert tool.instruction_for(items[0], T.PROMPTS) == "Recognize the speech and give me the transcription."
    assert tool.instruction_for(items[3], T.PROMPTS) == "What sound is this?"
    assert tool.bars({"wer": 0.2, "sound_acc": 0.5})["wer"]["pass"] is True
    assert tool.bars({"sound_acc": 0.5})["sound_acc"]["pass"] is False
