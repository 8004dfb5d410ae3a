"""One generation worker per model: concurrent requests are batched into one ``generate`` call.

Callers (threads or the event loop) :meth:`GenerationEngine.submit` a :class:`Job` and get a
``concurrent.futures.Future``. A worker thread takes the oldest waiting job, waits
``batch_window_s`` for company (each newcomer restarts the wait, up to ``MAX_WINDOWS`` windows
in all, so a burst of requests is not split by a straggler into a second full decoding pass),
and runs every waiting job with the same generation options
(up to ``max_batch_size``) as one batch: the clips nobody has encoded yet go through the
encoders together (:class:`~salmonn_agent.chat.cache.AudioTokenCache`), then
``SALMONN.generate_detailed`` decodes the prompts of equal length at once (one call per
length), each row under its own :class:`~salmonn_agent.chat.controls.RequestControl`. Prompts of
different lengths are not decoded together: left padding changes the attention's arithmetic
enough to flip a near-tie, and an answer must not depend on its batch-mates; so greedy answers
equal those of one-by-one runs. The worker exits when idle and restarts on demand.

A greedy request that runs alone and may be constrained (a grammar, or tools it may call) is
decoded by the model's guided loop (:class:`~salmonn_agent.chat.controls.GuidedControl`): the
tokens its grammar forces cost no model call of their own, and where the answer starts
repeating what its clips' hints say (a note's words from the transcript), the next words of the
hint are checked in the same call as the token before them (prompt lookup decoding; the tokens
stay the model's greedy choices). A request whose JSON answer closes ends there, without
decoding the end symbol.

A request that runs alone (a batch of one, greedy or sampling) goes through the
:class:`~salmonn_agent.chat.cache.PrefixCacheStore`: it reuses the LLM key/value cache of the
earlier turn of its conversation and leaves its own for the next turn. Batched requests run
without prefix caches (``generate`` takes one cache per call, and batching already shares the
work); so does beam search. A follow-up turn of a kept conversation that finds the queue empty
starts at once, without the batch window's wait: only a request of exactly its prompt length
could share its decoding, and alone it prefills only its new text.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from transformers import LogitsProcessorList, StoppingCriteriaList

from salmonn_agent.chat.blocks import AudioClip
from salmonn_agent.chat.cache import AudioTokenCache, PrefixCacheStore
from salmonn_agent.chat.controls import ControlProcessor, GuidedControl, RequestControl
from salmonn_agent.model.threads import use_threads

if TYPE_CHECKING:
    from salmonn_agent.model.generation import Generation
    from salmonn_agent.model.salmonn import SALMONN


@dataclass
class Job:
    """One request: a rendered prompt (and its count of text tokens), its clips, generation options
    and its control."""

    prompt: str
    clips: list[AudioClip]
    options: dict[str, Any]
    text_tokens: int
    control: RequestControl = field(default_factory=RequestControl)
    future: Future = field(default_factory=Future)

    @property
    def batch_key(self) -> tuple[tuple[str, Any], ...]:
        """Jobs with equal keys can share one ``generate`` call."""
        return tuple(sorted(self.options.items()))


MAX_WINDOWS = 4
"""The longest a batch waits for company, in batch windows (see the module docstring)."""


class GenerationEngine:
    """Batches the requests for one model (see the module docstring)."""

    def __init__(
        self,
        model: SALMONN,
        cache: AudioTokenCache,
        *,
        max_batch_size: int = 8,
        batch_window_s: float = 0.005,
        idle_exit_s: float = 5.0,
        prefixes: PrefixCacheStore | None = None,
    ) -> None:
        self.model = model
        self.cache = cache
        self.prefixes = prefixes if prefixes is not None else PrefixCacheStore(0)
        self.max_batch_size = max(1, max_batch_size)
        self.batch_window_s = max(0.0, batch_window_s)
        self.idle_exit_s = idle_exit_s
        self.batches_run = 0
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._torch_threads = torch.get_num_threads()
        """The creating thread's torch thread count, which the worker thread takes on."""

    def submit(self, job: Job) -> Future:
        """Queue ``job``; its future resolves to ``Generation`` (or the error that ended it)."""
        with self._cond:
            self._queue.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="salmonn-chat-engine", daemon=True)
                self._worker.start()
            self._cond.notify_all()
        return job.future

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        use_threads(self._torch_threads)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            idle_until = time.monotonic() + self.idle_exit_s
            while not self._queue:
                remaining = idle_until - time.monotonic()
                if remaining <= 0:
                    self._worker = None
                    return None
                self._cond.wait(remaining)
            start = time.monotonic()
            window_end = start + (0.0 if self._skips_window(self._queue[0]) else self.batch_window_s)
            while len(self._queue) < self.max_batch_size:
                remaining = window_end - time.monotonic()
                if remaining <= 0:
                    break
                waiting = len(self._queue)
                self._cond.wait(remaining)
                if len(self._queue) > waiting:  # a newcomer: wait a window for the rest of its burst
                    window_end = min(time.monotonic() + self.batch_window_s,
                                     start + MAX_WINDOWS * self.batch_window_s)
            first = self._queue[0]
            batch = [job for job in self._queue if job.batch_key == first.batch_key][: self.max_batch_size]
            if "seed" in first.options:  # a seeded sample is reproducible only when decoded alone
                batch = batch[:1]
            for job in batch:
                self._queue.remove(job)
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _skips_window(self, job: Job) -> bool:
        """Whether ``job``, alone in the queue, starts without waiting for company: a follow-up
        turn of a kept conversation (see the module docstring)."""
        return (
            len(self._queue) == 1 and int(job.options.get("num_beams") or 1) == 1
            and self.prefixes.continues(job.prompt, [clip.key for clip in job.clips])
        )

    def _execute(self, batch: list[Job]) -> None:
        live = [job for job in batch if not job.control.cancel.is_set()]
        for job in batch:
            if job not in live:
                job.control.ended_by = "cancelled"
                job.future.set_exception(_Cancelled())
        if not live:
            return
        try:
            results = self._generate(live)
        except BaseException as err:  # noqa: BLE001 - handed to every caller of the batch
            for job in live:
                job.future.set_exception(err)
            return
        for job, result in zip(live, results):
            job.future.set_result(result)

    def _generate(self, batch: list[Job]) -> list[Generation]:
        clips = [clip for job in batch for clip in job.clips]
        tokens = iter(self.cache.resolve(self.model, clips))
        audios = [[next(tokens) for _ in job.clips] for job in batch]
        for job, clip_tokens in zip(batch, audios):
            heard = [clip.transcript for clip in clip_tokens]
            if any(text is not None for text in heard):
                job.control.heard = heard
                if job.control.on_heard is not None:
                    job.control.on_heard(heard)
        # Only prompts of one length decode together: left padding changes the attention's
        # arithmetic enough to flip a near-tie (measured with salmonn-mini in float16 weights),
        # and an answer must not depend on its batch-mates.
        groups: dict[int, list[int]] = {}
        for index, (job, clip_tokens) in enumerate(zip(batch, audios)):
            groups.setdefault(self.model.prompt_length(job.text_tokens, clip_tokens), []).append(index)
        results: dict[int, Generation] = {}
        for indices in groups.values():
            outputs = self._generate_group([batch[i] for i in indices], [audios[i] for i in indices])
            results.update(zip(indices, outputs))
        return [results[i] for i in range(len(batch))]

    def _generate_group(self, batch: list[Job], audios: list[list[Any]]) -> list[Generation]:
        options = dict(batch[0].options)
        seed = options.pop("seed", None)
        if seed is not None:
            torch.manual_seed(seed)  # this worker thread is the only one generating
        processor = ControlProcessor(
            [job.control for job in batch],
            eos_id=self.model._eos_id,
            decode=self.model.tokenizer.decode,
            num_beams=int(options.get("num_beams") or 1),
        )
        self.batches_run += 1
        keys = [clip.key for clip in batch[0].clips]
        prefix = None
        if len(batch) == 1 and int(options.get("num_beams") or 1) == 1:
            prefix = self.prefixes.checkout(batch[0].prompt, keys)
        guide = None
        control = batch[0].control
        if (len(batch) == 1 and int(options.get("num_beams") or 1) == 1 and not options.get("do_sample")
                and (control.grammar is not None or control.open_grammar is not None)):
            # What the request's clips say (their transcript and tags lines) is what a call's
            # arguments copy: the guide proposes it where the answer starts repeating it.
            lookup = [i for clip in audios[0] for i in self.model.hint_ids(clip.transcript, clip.sound_tags)]
            guide = GuidedControl(control, eos_id=self.model._eos_id, decode=self.model.tokenizer.decode,
                                  lookup=lookup)
        results = self.model.generate_detailed(
            [job.prompt for job in batch], audios,
            logits_processor=LogitsProcessorList([processor]),
            stopping_criteria=StoppingCriteriaList([processor.stopper()]), prefix_cache=prefix, guide=guide,
            **options,
        )
        if prefix is not None:  # a failed generation drops the checked-out cache
            self.prefixes.put(batch[0].prompt, keys, results[0].text, prefix)
        return results


class _Cancelled(Exception):
    """The request was cancelled before it started."""
