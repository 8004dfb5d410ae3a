"""A tiny generated dataset for tests, benchmarks and the examples: distinct tones per sample.

``make_demo_dataset(folder, n)`` writes ``n`` WAV files (each a different chord of sine tones,
so the encoders tell them apart) and ``train.json`` in the official annotation format, plus
``prompts.json``. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from salmonn_agent.audio import SAMPLE_RATE

TRANSCRIPTS = [
    "hello world",
    "the quick brown fox",
    "a dog is barking",
    "music plays",
    "this is a small test",
    "the lazy dog",
    "tool call arguments",
    "please describe the audio",
]


def tone_clip(index: int, seconds: float = 1.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A clip that differs clearly per ``index``: a tone switched on and off in a per-index pattern.

    Slot ``k`` of 8 is loud when bit ``k`` of ``index + 1`` is set (silence otherwise), so
    even a random encoder sees different clips at different positions.
    """
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(index)
    f1 = 200 + 150 * (index % 8)
    clip = 0.4 * np.sin(2 * np.pi * f1 * t) + 0.1 * rng.standard_normal(n)
    gate = np.zeros(n)
    slot = max(1, n // 8)
    for k in range(8):
        if (index + 1) >> k & 1:
            gate[k * slot : (k + 1) * slot] = 1.0
    return (clip * gate + 1e-4 * rng.standard_normal(n)).astype(np.float32)


def make_demo_dataset(folder: str | Path, n: int = 4, *, seconds: float = 1.0, task: str = "asr",
                      name: str = "train.json") -> Path:
    """Write ``n`` clips and an annotation file; returns the annotation path."""
    folder = Path(folder)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        path = folder / "audio" / f"clip{i}.wav"
        sf.write(path, tone_clip(i, seconds), SAMPLE_RATE)
        items.append({"path": str(path), "text": TRANSCRIPTS[i % len(TRANSCRIPTS)], "task": task})
    ann = folder / name
    ann.write_text(json.dumps({"annotation": items}, indent=1))
    (folder / "prompts.json").write_text(json.dumps({
        "asr": ["<Speech><SpeechHere></Speech> Recognize the speech and give me the transcription."],
        "audiocaption": ["<Speech><SpeechHere></Speech> Please describe the audio."],
    }, indent=1))
    return ann
