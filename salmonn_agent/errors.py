"""Exceptions raised by salmonn-agent.

Every error a user can cause derives from :class:`SalmonnError`, so callers (and the CLI)
can catch one type and show its message, which always names the problem and the fix.
"""

from __future__ import annotations


class SalmonnError(Exception):
    """Base class for every error salmonn-agent raises on purpose."""


class AudioError(SalmonnError, ValueError):
    """Audio input that cannot be decoded, is empty, non-finite or too long."""


class ConfigError(SalmonnError, ValueError):
    """A configuration file or value that cannot be used."""


class CheckpointError(SalmonnError, RuntimeError):
    """A checkpoint that does not match the model (missing or unexpected parameters)."""


class ModelNotAvailableError(SalmonnError, RuntimeError):
    """No model was given and no default model can be found."""
