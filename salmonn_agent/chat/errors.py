"""Errors of the chat layer; all derive from :class:`salmonn_agent.errors.SalmonnError`."""

from __future__ import annotations

from langchain_core.exceptions import OutputParserException

from salmonn_agent.errors import SalmonnError


class ContentBlockError(SalmonnError, ValueError):
    """A message content block SALMONN cannot use; the message names the block and the fix."""


class ToolCallError(OutputParserException, SalmonnError):
    """A forced tool call or structured answer that could not be completed (e.g. cut by max_tokens)."""


class GenerationTimeout(SalmonnError, TimeoutError):
    """A request ran past its ``timeout``; generation was stopped."""
