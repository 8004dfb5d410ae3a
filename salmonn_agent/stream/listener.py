"""The front-end as one object: a source and a segmenter, iterated for windows.

    with Listener(MicrophoneSource()) as listener:
        for window in listener:            # or: async for window in listener
            print(window.kind, window.start, window.end)

The synchronous iterator runs in the caller's thread. The asynchronous one runs the same loop
in one worker thread that it joins when the iteration ends, is cancelled or the listener is
closed: no thread is left running after ``close()``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

from pydantic import BaseModel

from salmonn_agent.audio import SAMPLE_RATE
from salmonn_agent.stream.config import SegmenterConfig
from salmonn_agent.stream.sources import Source
from salmonn_agent.stream.segmenter import Segmenter
from salmonn_agent.stream.windows import AudioWindow


class FrontendStats(BaseModel):
    """What the front-end has seen so far (seconds at 16 kHz)."""

    seconds_in: float
    seconds_in_windows: float
    seconds_dropped: float
    """Audio received but in no speech/sound window (silence, rejected short events)."""
    seconds_lost: float
    """Audio the source lost (microphone queue overflows)."""
    overflows: int
    windows: dict[str, int]
    stalls: int
    """Times the watchdog closed an event because no audio came."""


class Listener:
    """Turns a :class:`~salmonn_agent.stream.sources.Source` into :class:`AudioWindow` s.

    ``stall_timeout_s``: when the source delivers nothing for this long while a speech or
    sound event is open (a microphone that stopped, a network stream that hung), the event
    is closed and emitted with reason ``stalled`` rather than waiting forever.

    ``on_onset(kind, time)``: called (in the iterating thread) when an event opens, with
    ``"speech"`` or ``"sound"`` (the segmenter's state then; the finished window's ``kind`` may
    differ) and its stream time, long before its window completes. A voice
    assistant uses it for barge-in: the user starts talking while the answer still runs.
    """

    def __init__(
        self,
        source: Source,
        config: SegmenterConfig | None = None,
        *,
        stall_timeout_s: float = 1.0,
        on_onset: Callable[[str, float], None] | None = None,
    ) -> None:
        self.source = source
        self.on_onset = on_onset
        self.segmenter = Segmenter(config)
        self.stall_timeout_s = stall_timeout_s
        self._stalls = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "Listener":
        """Open the source (the microphone starts recording)."""
        self.source.start()
        return self

    def stop(self) -> None:
        """Stop the source; an iteration in progress ends after flushing the open event."""
        self.source.stop()

    def close(self) -> None:
        """Stop, release the source and wait for the worker thread (idempotent)."""
        self._closed = True
        self.source.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def __enter__(self) -> "Listener":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "Listener":
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> FrontendStats:
        """Counters of the source and the segmenter."""
        s = self.segmenter.stats
        sr = float(SAMPLE_RATE)
        return FrontendStats(
            seconds_in=s.samples_in / sr,
            seconds_in_windows=s.samples_in_windows / sr,
            seconds_dropped=s.dropped_samples / sr,
            seconds_lost=s.gap_samples / sr,
            overflows=self.source.overflows,
            windows=dict(s.windows),
            stalls=self._stalls,
        )

    # ---------------------------------------------------------------- iteration

    def __iter__(self) -> Iterator[AudioWindow]:
        return self.windows()

    def windows(self) -> Iterator[AudioWindow]:
        """Windows as they complete, until the source ends or is stopped."""
        seg = self.segmenter
        last_audio = time.monotonic()
        for chunk in self.source:
            if chunk.samples.size:
                last_audio = time.monotonic()
                gap = chunk.start_sample - seg.position_samples
                if gap > 0:  # the source lost audio: close the event, skip the hole
                    yield from seg.skip(gap)
                was_quiet = not seg.in_event
                yield from seg.push(chunk.samples)
                if self.on_onset is not None and was_quiet and seg.in_event:
                    self.on_onset(seg.state, seg.position)
            elif seg.in_event and time.monotonic() - last_audio > self.stall_timeout_s:
                self._stalls += 1
                yield from seg.flush("stalled")
            if self._closed:
                break
        yield from seg.finish()

    def __aiter__(self) -> AsyncIterator[AudioWindow]:
        return self.awindows()

    async def awindows(self) -> AsyncIterator[AudioWindow]:
        """Asynchronous :meth:`windows`: a worker thread feeds an asyncio queue.

        Cancelling the consuming task (or breaking out of ``async for``) stops the source
        and joins the worker before this generator finishes.
        """
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self.source.start()
        thread = self._start_worker(lambda item: loop.call_soon_threadsafe(out.put_nowait, item))
        try:
            while (window := _handed_over(*await out.get())) is not None:
                yield window
        finally:
            self.source.stop()
            while thread.is_alive():
                try:
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    thread.join(timeout=5.0)
                    raise
            thread.join()
            self._thread = None

    def threaded_windows(self) -> Iterator[AudioWindow]:
        """:meth:`windows` made in a worker thread and handed over through a queue, so that a
        slow consumer (a model answering each window) never stalls the capture. Closing the
        iterator stops the source and joins the worker."""
        out: queue.Queue[tuple[str, object]] = queue.Queue()
        self.source.start()
        thread = self._start_worker(out.put)
        try:
            while (window := _handed_over(*out.get())) is not None:
                yield window
        finally:
            self.source.stop()
            thread.join(timeout=5.0)
            self._thread = None

    def _start_worker(self, put: Callable[[tuple[str, object]], object]) -> threading.Thread:
        """A thread that runs :meth:`windows` and hands ``("window", w)``, then ``("end", None)``
        (or ``("error", err)``) to ``put``."""

        def work() -> None:
            try:
                for window in self.windows():
                    put(("window", window))
                    if self.source.stopped and self._closed:
                        break
                put(("end", None))
            except BaseException as err:  # handed to the consumer, re-raised there
                try:
                    put(("error", err))
                except RuntimeError:  # the consumer's event loop is gone
                    pass

        thread = threading.Thread(target=work, name="salmonn-listener", daemon=True)
        self._thread = thread
        thread.start()
        return thread


def _handed_over(kind: str, item: object) -> AudioWindow | None:
    """What the worker thread handed over: a window, None at the end; its error is raised here."""
    if kind == "error":
        raise item  # type: ignore[misc]
    return item if kind == "window" else None  # type: ignore[return-value]
