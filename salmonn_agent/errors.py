"""Exceptions raised by salmonn-agent.

Every error a user can cause derives from :class:`SalmonnError`, so callers (and the CLI)
can catch one type and show its message, which always names the problem and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class SalmonnError(Exception):
    """Base class for every error salmonn-agent raises on purpose."""


class AudioError(SalmonnError, ValueError):
    """Audio input that cannot be decoded, is empty, non-finite or too long."""


class ConfigError(SalmonnError, ValueError):
    """A configuration file or value that cannot be used."""


class CheckpointError(SalmonnError, RuntimeError):
    """A checkpoint that does not match the model (missing or unexpected parameters)."""


class PromptTooLongError(SalmonnError, ValueError):
    """A prompt (text and audio tokens) plus the answer's room does not fit the LLM's context
    (OpenAI's ``context_length_exceeded``); raised before anything is generated."""


class ModelNotAvailableError(SalmonnError, RuntimeError):
    """No model was given and no default model can be found."""


def format_validation_error(
    error: ValidationError, *, unnamed: str | None = "value", first_only: bool = False, bare: bool = False
) -> str:
    """A pydantic validation error as one line: ``field.path: problem; field.path: problem``.

    ``unnamed`` stands for the field path of a problem with the whole value (``None``: no
    prefix); ``first_only`` keeps the first problem; ``bare`` drops pydantic's "Value error, "
    prefix and each problem's closing full stop, for a sentence that lists them.
    """
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or unnamed
        message = str(item["msg"])
        if bare:
            message = message.removeprefix("Value error, ").rstrip(".")
        problems.append(f"{where}: {message}" if where else message)
    return problems[0] if first_only else "; ".join(problems)
