"""YAMNet's tags: the features it expects, and the classes it names on real and synthetic audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from salmonn_agent.sound_tags import PATCH_FRAMES, PATCH_HOP_FRAMES, SoundTagger, format_tags
from devkit.scenes import tone

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "stream"


@pytest.fixture(scope="module")
def tagger(mini_cache) -> SoundTagger:
    return SoundTagger.load(mini_cache)


def test_patches_are_yamnets_96_by_64_log_mel_every_480_ms(tagger):
    two_seconds = np.zeros(32_000, dtype=np.float32)
    patches = tagger.patches(two_seconds)
    frames = 1 + (32_000 - 400) // 160
    assert patches.shape == (1 + (frames - PATCH_FRAMES) // PATCH_HOP_FRAMES, 96, 64)
    assert np.allclose(patches, np.log(0.001))  # silence: the log offset alone
    assert tagger.patches(np.zeros(800, dtype=np.float32)).shape == (1, 96, 64)  # short clips are padded


def test_speech_is_tagged_speech_and_a_beeping_tone_is_not(tagger):
    speech, rate = sf.read(FIXTURES / "lights.flac", dtype="float32")
    assert rate == 16_000
    assert tagger.tags(speech)[0].label == "Speech"
    assert tagger.events(speech) == [] or tagger.events(speech)[0].label != "Speech"
    beeps = np.concatenate([np.concatenate([tone(2000, 0.25), np.zeros(4000, np.float32)]) for _ in range(6)])
    labels = [t.label for t in tagger.tags(beeps)]
    assert "Speech" not in labels
    assert any(word in label for label in labels for word in ("Beep", "Sine wave", "Alarm", "Buzzer", "Tone")), labels
    assert format_tags([]) == "-"
