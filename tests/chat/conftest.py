"""Fixtures for the chat-model tests: a ChatSALMONN on the session's tiny model, audio files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16_000


@pytest.fixture
def chat(tiny_model):
    """A greedy ChatSALMONN on the tiny model (fresh caches and engine per test)."""
    from salmonn_agent.chat_model import ChatSALMONN

    return ChatSALMONN(client=tiny_model, model="tiny-salmonn", temperature=0, max_tokens=8)


@pytest.fixture(scope="session")
def chirp_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s bird-like chirp at 22.05 kHz stereo (exercises decoding, downmix and resampling)."""
    rate = 22_050
    t = np.arange(2 * rate) / rate
    sweep = np.sin(2 * np.pi * (2000 + 1500 * np.sin(2 * np.pi * 6 * t)) * t) * np.exp(-((t % 0.5) * 6))
    stereo = np.stack([sweep, 0.8 * sweep], axis=1).astype(np.float32) * 0.5
    path = tmp_path_factory.mktemp("audio") / "chirp.wav"
    sf.write(path, stereo, rate)
    return path


@pytest.fixture(scope="session")
def second_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny model (different seed), for per-call model overrides."""
    from devkit.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-b"), seed=1)
