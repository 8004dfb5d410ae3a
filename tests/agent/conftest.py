"""Fixtures for the agent tests: a ChatSALMONN on the session's tiny model and a speech clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salmonn_agent.audio import load_audio

SPEECH_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream"


@pytest.fixture
def chat(tiny_model):
    """A greedy ChatSALMONN on the tiny model (fresh caches and engine per test)."""
    from salmonn_agent.chat_model import ChatSALMONN

    return ChatSALMONN(client=tiny_model, model="tiny-salmonn", temperature=0, max_tokens=8)


@pytest.fixture(scope="session")
def speech() -> np.ndarray:
    """A short espeak-ng utterance ("Yes."), 16 kHz mono float32 (committed fixture)."""
    return load_audio(SPEECH_FIXTURES / "yes.flac")
