"""Per-request control of a (batched) generation, as one transformers logits processor.

Each request of a batch has a :class:`RequestControl`. At every decoding step the
:class:`ControlProcessor` hands each request its newly generated tokens (for streaming and for
the grammar), then, for that request's row, either forces the end symbol (the request was
cancelled, ran past its deadline, produced a stop sequence, or its grammar's JSON is complete)
or masks the logits to what its grammar allows. Other rows of the batch carry on: one cancelled
request never stops the rest. Its :meth:`~ControlProcessor.stopper` ends a row as soon as its
JSON closes, without decoding the end symbol.

A request with tools and ``tool_choice="auto"`` has no grammar at first: its control opens the
call grammar lazily (``open_grammar``) once the answer's text starts with ``{``, and the rest of
the answer is constrained; a plain-text answer stays unconstrained.

A greedy request that runs alone can instead be decoded by the model's guided loop
(``SALMONN.generate_detailed(guide=...)``) through :class:`GuidedControl`: the same choices,
plus the tokens the grammar forces, which the model then takes without a call of their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import LogitsProcessor, StoppingCriteria

from salmonn_agent.chat.grammar import GrammarSession


@dataclass
class RequestControl:
    """What one request asks of its generation, and what happened to it.

    ``on_tokens`` is called (from the generating thread) with all tokens so far whenever new
    ones are settled (right after each decoding step). ``ended_by`` says why the control
    stopped the row early: ``"cancelled"``, ``"timeout"``, ``"stop_sequence"`` or
    ``"grammar_error"``. ``open_grammar`` (auto tool choice) opens a grammar once the answer
    starts a JSON object; ``completed`` says the grammar's JSON closed (the answer ended there,
    without an end symbol); ``forced_tokens`` counts the tokens the grammar forced that the
    guided loop took without a model call of their own. ``heard`` holds Whisper's transcript of
    each of the request's clips once they are encoded (models configured with
    ``speech_transcript``; None otherwise), and ``on_heard`` is called with it then (from the
    generating thread), before the first token.
    """

    cancel: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None
    stop: tuple[str, ...] = ()
    grammar: GrammarSession | None = None
    on_tokens: Callable[[list[int]], None] | None = None
    token_ids: list[int] = field(default_factory=list)
    ended_by: str | None = None
    done: bool = False
    open_grammar: Callable[[], GrammarSession] | None = None
    completed: bool = False
    forced_tokens: int = 0
    heard: list[str | None] | None = None
    on_heard: Callable[[list[str | None]], None] | None = None

    def end_reason(self, text: Callable[[], str]) -> str | None:
        """Why the row must end now, or None; ``text`` decodes the answer so far (lazily)."""
        if self.cancel.is_set():
            return "cancelled"
        if self.deadline is not None and time.monotonic() > self.deadline:
            return "timeout"
        if self.stop and self.token_ids:
            decoded = text()
            if any(s in decoded for s in self.stop):
                return "stop_sequence"
        return None

    def take(self, tokens: list[int], eos_id: int, decode: Callable[[list[int]], str]) -> None:
        """Take newly generated tokens: the grammar follows them, then ``on_tokens`` hears of them."""
        if self.done or not tokens:
            return
        if eos_id in tokens:
            tokens = tokens[: tokens.index(eos_id) + 1]
            self.done = True
        answer = [t for t in tokens if t != eos_id]
        # The grammar allowed the end symbol only where the answer may end: it reads the answer
        # alone (a matcher that has finished refuses the end symbol itself).
        if self.grammar is not None and not self.grammar.advance(answer):
            self.ended_by = self.ended_by or "grammar_error"
        self.token_ids.extend(answer)
        if self.grammar is None and self.open_grammar is not None and answer:
            self._open_lazily(decode)
        if not self.done and self.grammar is not None and not self.grammar.error and self.grammar.complete:
            self.completed = self.done = True
        if answer and self.on_tokens is not None:
            self.on_tokens(list(self.token_ids))

    def _open_lazily(self, decode: Callable[[list[int]], str]) -> None:
        """Open the call grammar if the answer so far starts a JSON object; decide once."""
        text = decode(self.token_ids).lstrip()
        if not text or self.open_grammar is None:
            return
        opener, self.open_grammar = self.open_grammar, None
        if text[0] != "{":
            return
        session = opener()
        # A start the grammar rejects (say, a space before the brace) stays unconstrained, as before.
        if session.advance(self.token_ids) and not session.error:
            self.grammar = session


class ControlProcessor(LogitsProcessor):
    """Applies each request's :class:`RequestControl` to its rows of the batch."""

    def __init__(
        self,
        controls: Sequence[RequestControl],
        *,
        eos_id: int,
        decode: Callable[[list[int]], str],
        num_beams: int = 1,
    ) -> None:
        if num_beams > 1 and any(c.grammar is not None for c in controls):
            raise ValueError("Constrained decoding needs num_beams=1.")
        self.controls = list(controls)
        self.eos_id = eos_id
        self.decode = decode
        self.num_beams = num_beams
        self._seen = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._sync(input_ids)
        for index, control in enumerate(self.controls):
            rows = range(index * self.num_beams, (index + 1) * self.num_beams)
            if control.done:
                if control.completed:  # the JSON closed (and no stopper ended the row): only the end may follow
                    self._force_eos(scores, rows[0])
                continue
            reason = control.end_reason(lambda: self._text(control, input_ids, rows))
            if reason is None and control.grammar is not None and control.grammar.error:
                reason = "grammar_error"
            if reason is not None:
                control.ended_by = control.ended_by or reason
                for row in rows:
                    self._force_eos(scores, row)
            elif control.grammar is not None:
                allowed = control.grammar.allowed(len(control.token_ids))
                if not mask_to_allowed(scores[rows[0]], allowed):
                    self._force_eos(scores, rows[0])
        return scores

    def stopper(self) -> StoppingCriteria:
        """A stopping criterion that ends a row as soon as its grammar's JSON is complete (it also
        hands the rows their tokens right after each step, so they stream without a step's delay)."""
        return _CompletedStopper(self)

    def _sync(self, input_ids: torch.LongTensor) -> None:
        """Hand each request the tokens generated since the last call."""
        if input_ids.shape[1] <= self._seen:
            return
        new = input_ids[:, self._seen :].tolist()
        self._seen = input_ids.shape[1]
        if self.num_beams == 1:
            for control, tokens in zip(self.controls, new):
                control.take(tokens, self.eos_id, self.decode)

    def _text(self, control: RequestControl, input_ids: torch.LongTensor, rows: range) -> str:
        if self.num_beams == 1:
            return self.decode(control.token_ids)
        return "\n".join(self.decode(input_ids[row].tolist()) for row in rows)

    def _force_eos(self, scores: torch.FloatTensor, row: int) -> None:
        scores[row] = float("-inf")
        scores[row, self.eos_id] = 0.0


class _CompletedStopper(StoppingCriteria):
    """See :meth:`ControlProcessor.stopper`."""

    def __init__(self, processor: ControlProcessor) -> None:
        self.processor = processor

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        processor = self.processor
        processor._sync(input_ids)
        done = [False] * input_ids.shape[0]
        if processor.num_beams == 1:
            done = [control.completed for control in processor.controls]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class GuidedControl:
    """One greedy request's control as the model's guided decoding loop asks for it
    (``SALMONN.generate_detailed(guide=...)``): choose a token, take it, say what is forced next.

    ``choose`` masks exactly as :class:`ControlProcessor` does, so the tokens are the same; the
    forced tokens the loop verifies against the model's own choice before taking them.
    """

    def __init__(
        self, control: RequestControl, *, eos_id: int, decode: Callable[[list[int]], str],
        lookup: Sequence[int] = (),
    ) -> None:
        """``lookup``: token ids of what the request says (its transcript, say), from which
        :meth:`speculate` proposes the tokens an answer copies."""
        self.control = control
        self.eos_id = eos_id
        self.decode = decode
        self.lookup = list(lookup)

    def choose(self, scores: torch.Tensor) -> int:
        """The next token for one row of logits ``[vocab]`` (float32; changed in place)."""
        control = self.control
        reason = control.end_reason(lambda: self.decode(control.token_ids))
        if reason is None and control.grammar is not None and control.grammar.error:
            reason = "grammar_error"
        if reason is not None:
            control.ended_by = control.ended_by or reason
            return self.eos_id
        if control.grammar is not None:
            if not mask_to_allowed(scores, control.grammar.allowed(len(control.token_ids))):
                return self.eos_id
        return int(torch.argmax(scores))

    def accept(self, token: int, forced: bool = False) -> bool:
        """Take a chosen (or a forced and verified) token; True once the answer is over."""
        self.control.take([token], self.eos_id, self.decode)
        self.control.forced_tokens += int(forced)
        return self.control.done

    def draft(self, limit: int) -> list[int]:
        """The tokens the grammar forces after those taken, at most ``limit`` (empty without a grammar).

        Their text streams at once (``on_tokens`` hears of the answer with them), before the
        model call that verifies them: the grammar allows no other text there, and a token the
        model prefers instead can only spell the same text another way."""
        control = self.control
        grammar = control.grammar
        if grammar is None or control.done or grammar.error:
            return []
        forced = grammar.forced()[:limit]
        if forced and control.on_tokens is not None:
            control.on_tokens(list(control.token_ids) + forced)
        return forced

    def speculate(self, limit: int) -> list[int]:
        """Tokens the answer may copy next from the request (prompt lookup decoding): where the
        last ``SPECULATION_MATCH`` (down to one) tokens taken occur in ``lookup`` (the latest
        such place), the tokens that follow there, at most ``limit``. Nothing streams: the loop
        takes each only where it is the model's own choice, so the answer stays the same."""
        taken = self.control.token_ids
        lookup = self.lookup
        if limit <= 0 or not lookup or self.control.done:
            return []
        for size in range(min(SPECULATION_MATCH, len(taken)), 0, -1):
            tail = list(taken[-size:])
            for start in range(len(lookup) - size - 1, -1, -1):
                if lookup[start : start + size] == tail:
                    follow = lookup[start + size : start + size + limit]
                    return follow[: follow.index(self.eos_id)] if self.eos_id in follow else follow
        return []


SPECULATION_MATCH = 3
"""The longest run of an answer's last tokens that :meth:`GuidedControl.speculate` looks up."""


def mask_to_allowed(scores: torch.Tensor, allowed: np.ndarray) -> bool:
    """Set the logits of one row (``[vocab]``) that ``allowed`` does not allow to -inf (tokens past
    its end too); False if it allows nothing."""
    allowed = allowed[: scores.shape[-1]]
    if not allowed.any():
        return False
    blocked = torch.from_numpy(~allowed).to(scores.device)
    width = blocked.shape[0]
    scores[:width] = scores[:width].masked_fill(blocked, float("-inf"))
    if scores.shape[-1] > width:
        scores[width:] = float("-inf")
    return True
