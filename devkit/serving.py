"""Waiting for a ``salmonn-agent serve`` process to be ready (tests and ``tools/bench_serve.py``)."""

from __future__ import annotations

import subprocess
import time

import httpx


class ServerNotReady(RuntimeError):
    """The server exited, or its model did not load in time."""


def wait_until_healthy(base_url: str, timeout_s: float, process: subprocess.Popen | None = None,
                       poll_s: float = 0.2) -> float:
    """Poll ``GET {base_url}/health`` until it answers 200; returns the seconds waited.

    Raises :class:`ServerNotReady` when ``process`` exits first (with its stderr) or time runs out.
    """
    start = time.monotonic()
    while True:
        if process is not None and process.poll() is not None:
            raise ServerNotReady(f"the server exited: {process.stderr.read() if process.stderr else ''}")
        if time.monotonic() - start > timeout_s:
            raise ServerNotReady(f"{base_url} was not ready within {timeout_s:g} s")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(poll_s)
