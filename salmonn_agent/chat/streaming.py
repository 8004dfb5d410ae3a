"""Generated token ids → text pieces for streaming, never showing text that may still change.

A piece is emitted only when it is settled: the decoded answer so far, without an incomplete
multi-byte character at its end, without trailing whitespace (the final answer is stripped),
cut at a stop sequence, and without an end that could still become a stop sequence. The
pieces join to the final answer text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from salmonn_agent.chat.controls import cut_at_stop, unsafe_tail


class TextAssembler:
    """Turns growing lists of token ids into new text pieces."""

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = [s for s in stop if s]
        self.emitted = ""

    def update(self, token_ids: list[int]) -> str:
        """The new settled text after ``token_ids`` (all tokens so far); '' if none."""
        text = self._decode(token_ids).lstrip().rstrip("\ufffd")
        text, stopped = cut_at_stop(text, self._stop)
        if not stopped:
            text = text[: len(text) - unsafe_tail(text, self._stop)]
        return self._advance(text.rstrip())

    def finish(self, final_text: str) -> str:
        """What is left to emit once the final answer text is known."""
        return self._advance(final_text)

    def _advance(self, text: str) -> str:
        if len(text) <= len(self.emitted) or not text.startswith(self.emitted):
            return ""
        piece = text[len(self.emitted) :]
        self.emitted = text
        return piece
