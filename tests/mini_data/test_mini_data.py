"""tools/make_mini_data.py and salmonn_agent.mini.{sounds,text_bank}: determinism, splits, audio, prompts, classes."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from devkit import sounds as S
from devkit import text_bank as T

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "make_mini_data.py"
SIZES = ["--train", "60", "--valid", "10", "--test", "40"]
TASKS = {"asr", "audiocaption", "QA", "speech_query", "audio_story_telling"}

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def run_tool(out: Path, *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(TOOL), str(out), *SIZES, *args],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "items" in proc.stderr  # progress on stderr
    return json.loads(proc.stdout)


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def annotations(root: Path, split: str) -> list[dict]:
    return json.loads((root / f"{split}.json").read_text())["annotation"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = tmp_path_factory.mktemp("mini") / "data"
    return out, run_tool(out, "--seed", "0", "--workers", "2")


@needs_espeak
def test_summary_and_layout(data: tuple[Path, dict]) -> None:
    out, summary = data
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["sizes"] == {"train": 60, "valid": 10, "test": 40}
    for split, n in summary["sizes"].items():
        anns = annotations(out, split)
        assert len(anns) == n and all(a["split"] == split for a in anns)
    assert set(summary["splits"]["train"]["tasks"]) == TASKS
    assert summary["audio_seconds"] > 0
    stage1 = json.loads((out / "train_stage1.json").read_text())["annotation"]
    stage3 = json.loads((out / "train_stage3.json").read_text())["annotation"]
    assert stage1 and {a["task"] for a in stage1} == {"asr", "audiocaption"}
    assert stage3 and {a["task"] for a in stage3} == {"audio_story_telling"}
    assert all(len(a["text"].split()) >= 80 for a in stage3)


@needs_espeak
def test_same_seed_is_byte_identical_and_other_seed_differs(data: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = data
    run_tool(tmp_path / "again", "--seed", "0", "--workers", "1")  # also independent of the pool size
    first, again = files_of(out), files_of(tmp_path / "again")
    assert first.keys() == again.keys()
    assert [k for k in first if first[k] != again[k]] == []
    run_tool(tmp_path / "other", "--seed", "1", "--workers", "2")
    other = files_of(tmp_path / "other")
    assert other["train.json"] != first["train.json"]
    wavs = [k for k in first if k.endswith(".wav")]
    assert sum(first[k] != other.get(k) for k in wavs) > len(wavs) // 2


@needs_espeak
def test_held_out_split_shares_no_sentence_voice_or_variant(data: tuple[Path, dict]) -> None:
    out, _ = data
    train, valid, test = (annotations(out, s) for s in ("train", "valid", "test"))
    sentences = {s: {a["transcript"] for a in anns if "transcript" in a} for s, anns in
                 (("train", train), ("valid", valid), ("test", test))}
    assert sentences["test"] and not sentences["test"] & sentences["train"]
    assert not sentences["valid"] & sentences["train"] and not sentences["valid"] & sentences["test"]
    variant = lambda a: a["voice"].split("+", 1)[1]  # noqa: E731
    train_variants = {variant(a) for a in train + valid if "voice" in a}
    test_variants = {variant(a) for a in test if "voice" in a}
    assert test_variants and not test_variants & train_variants
    assert test_variants <= S.HELD_OUT_VARIANTS
    for a in test:
        if "voice" in a:
            assert S.is_held_out_value(a["speed"], *S.SPEED_RANGE)
            assert S.is_held_out_value(a["pitch"], *S.PITCH_RANGES[a["speaker_gender"]])
    for a in train + valid:
        if "voice" in a:
            assert not S.is_held_out_value(a["speed"], *S.SPEED_RANGE)
        if "sound_variant" in a:
            assert a["sound_variant"] != S.HELD_OUT_SOUND_VARIANTS[a["sound_class"]]


def test_banks_split_disjointly() -> None:
    sentences = T.sentence_bank()
    texts = {s: {x.text for x in items} for s, items in sentences.items()}
    for a, b in itertools.combinations(T.SPLITS, 2):
        assert not texts[a] & texts[b]
    assert len(texts["train"]) > 5000 and len(texts["test"]) > 800
    assert {x.category for x in sentences["test"]} == set(T.sentence_categories())
    queries = T.query_bank()
    keys = {s: {q.key for q in items} for s, items in queries.items()}
    words = {s: {q.question for q in items} for s, items in queries.items()}
    for a, b in itertools.combinations(T.SPLITS, 2):
        assert not keys[a] & keys[b] and not words[a] & words[b]
    for gender in ("male", "female"):
        assert not set(S.voice_variants(gender, True)) & set(S.voice_variants(gender, False))
        assert S.voice_variants(gender, True) and S.voice_variants(gender, False)
    assert all(not any(ch.isdigit() for ch in x.text) for items in sentences.values() for x in items)


def test_query_answers_are_right() -> None:
    by_question = {q.question: q for items in T.query_bank().values() for q in items}
    assert by_question["What is three plus four?"].answer == "Seven."
    assert by_question["What is nine minus two?"].label == "seven"
    assert by_question["What is six times seven?"].answer == "Forty two."
    assert by_question["What day comes after Sunday?"].answer == "Monday."
    assert by_question["What month comes before January?"].answer == "December."
    assert by_question["What is the opposite of hot?"].answer == "Cold."
    assert by_question["Which is bigger, twelve or nine?"].answer == "Twelve."
    assert by_question["What letter comes after B?"].answer == "C."
    assert T.number_words(0) == "zero" and T.number_words(42) == "forty two"
    assert T.number_words(365) == "three hundred and sixty five" and T.number_words(2005) == "two thousand and five"


@needs_espeak
def test_every_audio_file_is_valid(data: tuple[Path, dict]) -> None:
    out, _ = data
    for split in T.SPLITS:
        for a in annotations(out, split):
            assert not Path(a["path"]).is_absolute() and a["path"].startswith(f"audio/{split}/")
            path = out / a["path"]
            assert path.is_file(), a["path"]
            with wave.open(str(path)) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
                x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
            assert 0.5 <= len(x) / 16000 <= 10.0
            assert abs(len(x) / 16000 - a["duration"]) < 1e-3
            assert np.max(np.abs(x)) < 0.95, a["path"]  # peak-limited to -1 dBFS: never clipped
            assert a["text"].strip() and a["task"] in TASKS
            if a.get("label") != "silence" and a.get("kind") != "qa_presence":
                assert S.rms(x) > 1e-4, a["path"]
            if a["task"] == "QA":
                assert a["Q"].strip()
            if a.get("qa_type") == "count":
                assert a["label"] == T.number_words(a["count"])


@needs_espeak
def test_prompts_and_loader(data: tuple[Path, dict]) -> None:
    from salmonn_agent.training.data import load_annotations
    from salmonn_agent.training.prompts import PromptBank

    out, _ = data
    prompts = json.loads((out / "prompts.json").read_text())
    assert set(prompts) == TASKS
    for task, templates in prompts.items():
        assert len(templates) >= 4
        assert all("<SpeechHere>" in t and t.startswith("<Speech><SpeechHere></Speech>") for t in templates)
        assert all(("{}" in t) == (task == "QA") for t in templates)
    assert prompts["asr"][0].endswith("Recognize the speech and give me the transcription.")
    bank = PromptBank.load(out / "prompts.json", "USER: {}\nASSISTANT:")
    entries = load_annotations(out / "train.json")  # relative paths resolve against OUT
    bank.check_tasks({e["task"] for e in entries}, "train.json")
    assert all(Path(e["path"]).is_file() for e in entries)
    qa = next(e for e in entries if e["task"] == "QA")
    assert qa["Q"] in bank.first("QA", qa["Q"])


def test_every_sound_class_is_produced_and_distinguishable() -> None:
    assert len(S.SOUND_CLASSES) >= 8 and set(S.SOUND_CLASSES) == set(T.SOUND_TEXT)
    feats = {}
    for cls in S.SOUND_CLASSES:
        rows = []
        for i, variant in enumerate(S.SOUND_VARIANTS[cls]):
            held_out = variant == S.HELD_OUT_SOUND_VARIANTS[cls]
            snd = S.synth_sound(cls, np.random.default_rng([11, i]), 3.0, held_out=held_out, variant=variant)
            assert len(snd.audio) == 3 * S.SR and np.all(np.isfinite(snd.audio))
            assert S.rms(snd.audio) > 1e-3 and np.max(np.abs(snd.audio)) <= 0.5 + 1e-6
            assert snd.meta["sound_class"] == cls and snd.meta["variant"] == variant
            assert T.sound_caption(cls, snd.meta, random.Random(0))
            rows.append(S.feature_vector(snd.audio))
        feats[cls] = np.array(rows)
    allf = np.vstack(list(feats.values()))
    scale = allf.std(0) + 1e-9
    for a, b in itertools.combinations(S.SOUND_CLASSES, 2):  # some feature tells every pair apart
        gap = np.abs(feats[a].mean(0) - feats[b].mean(0)) / scale
        assert gap.max() > 0.5, (a, b, gap)
    centroids = {c: (f / scale).mean(0) for c, f in feats.items()}
    hits = 0
    for cls in S.SOUND_CLASSES:  # nearest centroid on fresh renderings
        for i in range(2):
            x = S.synth_sound(cls, np.random.default_rng([99, i]), 3.0).audio
            v = S.feature_vector(x) / scale
            hits += min(centroids, key=lambda c: float(np.sum((v - centroids[c]) ** 2))) == cls
    assert hits >= 0.6 * 2 * len(S.SOUND_CLASSES)


def test_counts_silence_and_mixing() -> None:
    for cls in S.COUNTABLE_CLASSES:
        for want in (1, 2, 3):
            snd = S.synth_sound(cls, np.random.default_rng([3, want]), 9.0, count=want)
            assert snd.meta["count"] == want
    rng = np.random.default_rng(0)
    quiet = [S.silence(np.random.default_rng(i), 2.0) for i in range(12)]
    assert {q.meta["variant"] for q in quiet} == set(S.SILENCE_VARIANTS)
    assert all(S.rms(q.audio) < 0.01 for q in quiet)
    speech = np.sin(2 * np.pi * 200 * np.arange(S.SR) / S.SR).astype(np.float32) * 0.1
    speech[S.SR // 2 :] = 0  # the SNR is measured on active speech, not on the pauses
    noise = rng.standard_normal(S.SR).astype(np.float32)
    mixed = S.mix_at_snr(speech, noise, 10.0)
    assert abs(20 * np.log10(S.rms(speech[: S.SR // 2]) / S.rms(mixed - speech)) - 10.0) < 0.3
    assert np.max(np.abs(S.limit_peak(noise))) <= 0.89 + 1e-6


@needs_espeak
def test_speak_is_deterministic_16k() -> None:
    voice = S.Voice("en-us", "f2", "female", 160, 50, 1)
    a, b = S.speak("-Hello there.", voice), S.speak("-Hello there.", voice)
    assert a.dtype == np.float32 and 0.4 < len(a) / S.SR < 3 and np.array_equal(a, b)
    assert S.wav_bytes(a) == S.wav_bytes(b)
