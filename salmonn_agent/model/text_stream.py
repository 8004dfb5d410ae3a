"""Generated token ids → text pieces while an answer is generated.

:class:`TextAssembler` is the one way token ids become streamed text, for ``SALMONN.stream``
and for ChatSALMONN's streaming alike. A piece is emitted only when it is settled: the decoded
answer so far, without an incomplete multi-byte character at its end, without trailing
whitespace (the final answer is stripped), cut at a stop sequence, and without an end that
could still become a stop sequence. The pieces join to the final answer text.

:class:`TextStream` runs a generation in another thread (a model's :class:`WorkerThread`) and
hands out its pieces; the tokens reach it through :class:`TokenQueue`, a transformers streamer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import torch
from transformers.generation.streamers import BaseStreamer

from salmonn_agent.model.threads import use_threads


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence, and whether one was found."""
    positions = [text.find(s) for s in stop if s and s in text]
    if not positions:
        return text, False
    return text[: min(positions)], True


def unsafe_tail(text: str, stop: Sequence[str]) -> int:
    """Length of the end of ``text`` that could still grow into a stop sequence (hold it back)."""
    longest = 0
    for s in stop:
        for size in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:size]):
                longest = max(longest, size)
                break
    return longest


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


class TokenQueue(BaseStreamer):
    """Receives ``generate``'s new token ids (the prompt's first call is skipped) for another
    thread to read; None marks the end."""

    def __init__(self) -> None:
        self.token_ids: list[int] = []
        self.queue: queue.Queue[list[int] | None] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        """Take the ids ``generate`` hands over (the prompt first, then each new token)."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        ids = [int(i) for i in value.reshape(-1).tolist()]
        self.token_ids.extend(ids)
        self.queue.put(ids)

    def end(self) -> None:
        """Mark the end of generation."""
        self.queue.put(None)


class TextStream(Iterator[str]):
    """Text pieces of one answer as they are generated; ``close()`` stops generation.

    After the last piece: ``token_ids``, ``finish_reason`` ("stop", "length" or "cancelled"),
    ``prompt_text_tokens`` and ``prompt_audio_tokens``. ``start`` runs ``run`` off the caller's
    thread (e.g. :meth:`WorkerThread.submit`) and returns an event set once it has returned.
    """

    def __init__(
        self, run: Callable[[], None], tokens: TokenQueue, decode: Callable[[list[int]], str],
        cancel: threading.Event, errors: list[BaseException], eos_id: int, max_new_tokens: int,
        prompt_text_tokens: int, prompt_audio_tokens: int,
        start: Callable[[Callable[[], None]], threading.Event],
    ) -> None:
        self._run = run
        self._start = start
        self._finished: threading.Event | None = None
        self._tokens = tokens
        self._decode = decode
        self._assembler = TextAssembler(decode)
        self._cancel = cancel
        self._errors = errors
        self._eos_id = eos_id
        self._max_new_tokens = max_new_tokens
        self.prompt_text_tokens = prompt_text_tokens
        self.prompt_audio_tokens = prompt_audio_tokens
        self.finish_reason: str | None = None
        self._started = False
        self._done = False
        self._ended = False

    @property
    def token_ids(self) -> list[int]:
        """Generated token ids so far, without the end symbol."""
        ids = self._tokens.token_ids
        return ids[: ids.index(self._eos_id)] if self._eos_id in ids else list(ids)

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        if not self._started:
            self._started = True
            self._finished = self._start(self._run)
        while not self._ended:
            if self._tokens.queue.get() is None:
                self._ended = True
                break
            piece = self._assembler.update(self.token_ids)
            if piece:
                return piece
        self._finish()
        if self._errors:
            raise self._errors[0]
        piece = self._assembler.finish(self._decode(self.token_ids).strip())
        if piece:
            return piece
        raise StopIteration

    def close(self) -> None:
        """Stop generating (at the next token) and wait for the worker to finish."""
        if not self._done:
            self._cancel.set()
            self._finish()

    def _finish(self) -> None:
        if self._finished is not None:
            self._finished.wait()
        self._done = True
        if self.finish_reason is None:
            if self._cancel.is_set():
                self.finish_reason = "cancelled"
            elif self._eos_id in self._tokens.token_ids:
                self.finish_reason = "stop"
            else:
                self.finish_reason = "length" if len(self.token_ids) >= self._max_new_tokens else "stop"

    def __del__(self) -> None:
        self._cancel.set()


class WorkerThread:
    """One long-lived daemon thread that runs jobs in turn, started on the first job and ended
    when this object is collected.

    A model's streams generate here rather than each in a new thread: CUDA graphs that
    ``torch.compile`` records belong to the thread that recorded them, so a new thread per
    stream would record them again for every answer.
    """

    def __init__(self, name: str = "salmonn-generate") -> None:
        self.name = name
        self._jobs: queue.Queue[tuple[Callable[[], None], threading.Event] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> threading.Event:
        """Queue ``job``; the returned event is set once it has returned."""
        finished = threading.Event()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # the thread gets the queue only, so that it keeps neither this object nor the model alive
                self._thread = threading.Thread(
                    target=_serve, args=(self._jobs, torch.get_num_threads()), name=self.name, daemon=True
                )
                self._thread.start()
            self._jobs.put((job, finished))
        return finished

    def __del__(self) -> None:
        self._jobs.put(None)


def _serve(jobs: queue.Queue[tuple[Callable[[], None], threading.Event] | None], threads: int) -> None:
    """Run queued jobs until the end mark (None), with the submitting thread's torch thread count."""
    use_threads(threads)
    while (item := jobs.get()) is not None:
        job, finished = item
        try:
            job()
        finally:
            finished.set()
            del job, item  # a finished job's closure (model, inputs) is not kept until the next one
