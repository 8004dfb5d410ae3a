"""Per-request control of a (batched) generation, as one transformers logits processor.

Each request of a batch has a :class:`RequestControl`. At every decoding step the
:class:`ControlProcessor` hands each request its newly generated tokens (for streaming and for
the grammar), then, for that request's row, either forces the end symbol (the request was
cancelled, ran past its deadline, or produced a stop sequence) or masks the logits to what its
grammar allows. Other rows of the batch carry on: one cancelled request never stops the rest.
Its :attr:`ControlProcessor.handover` (a stopping criterion that never stops anything) hands the
tokens over as soon as they are chosen, a decoding step before the next logits are ready: a
streamed answer's first text then comes with its first token, not one step later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor, StoppingCriteria

from salmonn_agent.chat.grammar import GrammarSession


@dataclass
class RequestControl:
    """What one request asks of its generation, and what happened to it.

    ``on_tokens`` is called (from the generating thread) with all tokens so far whenever new
    ones arrive: as soon as they are chosen when ``generate`` runs the processor's
    :attr:`~ControlProcessor.handover`, else at the next decoding step (and the last one only
    with the final result). ``ended_by`` says why the control stopped the row early:
    ``"cancelled"``, ``"timeout"``, ``"stop_sequence"`` or ``"grammar_error"``.
    """

    cancel: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None
    stop: tuple[str, ...] = ()
    grammar: GrammarSession | None = None
    on_tokens: Callable[[list[int]], None] | None = None
    token_ids: list[int] = field(default_factory=list)
    ended_by: str | None = None
    done: bool = False

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
        self.handover = TokenHandover(self)
        """Pass it to ``generate`` as a stopping criterion to get the tokens as they are chosen."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.take_new(input_ids)
        for index, control in enumerate(self.controls):
            rows = range(index * self.num_beams, (index + 1) * self.num_beams)
            if control.done:
                continue
            reason = control.end_reason(lambda: self._text(control, input_ids, rows))
            if reason is None and control.grammar is not None and control.grammar.error:
                reason = "grammar_error"
            if reason is not None:
                control.ended_by = control.ended_by or reason
                for row in rows:
                    self._force_eos(scores, row)
            elif control.grammar is not None:
                allowed = control.grammar.allowed(len(control.token_ids))[: scores.shape[1]]
                if not allowed.any():
                    self._force_eos(scores, rows[0])
                    continue
                blocked = torch.from_numpy(~allowed).to(scores.device)
                scores[rows[0], : blocked.shape[0]] = scores[rows[0], : blocked.shape[0]].masked_fill(
                    blocked, float("-inf")
                )
                if scores.shape[1] > blocked.shape[0]:
                    scores[rows[0], blocked.shape[0] :] = float("-inf")
        return scores

    def take_new(self, input_ids: torch.LongTensor) -> None:
        """Hand each request the tokens of ``input_ids`` not handed over yet (greedy or sampling)."""
        if input_ids.shape[1] <= self._seen:
            return
        new = input_ids[:, self._seen :].tolist()
        self._seen = input_ids.shape[1]
        if self.num_beams == 1:
            for control, tokens in zip(self.controls, new):
                self._take(control, tokens)

    def _take(self, control: RequestControl, tokens: list[int]) -> None:
        if control.done or not tokens:
            return
        if self.eos_id in tokens:
            tokens = tokens[: tokens.index(self.eos_id) + 1]
            control.done = True
        answer = [t for t in tokens if t != self.eos_id]
        # The grammar allowed the end symbol only where the answer may end: it reads the answer
        # alone (a finished matcher would refuse the end symbol itself).
        if control.grammar is not None and not control.grammar.advance(answer):
            control.ended_by = control.ended_by or "grammar_error"
        control.token_ids.extend(answer)
        if answer and control.on_tokens is not None:
            control.on_tokens(list(control.token_ids))

    def _text(self, control: RequestControl, input_ids: torch.LongTensor, rows: range) -> str:
        if self.num_beams == 1:
            return self.decode(control.token_ids)
        return "\n".join(self.decode(input_ids[row].tolist()) for row in rows)

    def _force_eos(self, scores: torch.FloatTensor, row: int) -> None:
        scores[row] = float("-inf")
        scores[row, self.eos_id] = 0.0


class TokenHandover(StoppingCriteria):
    """Hands a :class:`ControlProcessor`'s requests their tokens right after ``generate`` chose
    them (its stopping criteria run then); it never stops a row itself."""

    def __init__(self, processor: ControlProcessor) -> None:
        self.processor = processor

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        self.processor.take_new(input_ids)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
