"""The front-end's error type: a :class:`~salmonn_agent.errors.SalmonnError` naming the fix."""

from __future__ import annotations

from salmonn_agent.errors import SalmonnError


class FrontendError(SalmonnError, RuntimeError):
    """The streaming front-end cannot run as asked (no PortAudio, no microphone, bad option...).

    The message always names the problem and the fix, so the CLI can print it as one line.
    """
