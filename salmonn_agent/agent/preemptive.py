"""Answers started at a pause in the speech, held until the end of the turn is certain.

The front-end ends a turn only after ``hangover_ms`` of silence (600 ms by default), so that a
speaker who pauses mid-request is not cut off. With ``SegmenterConfig.pause_ms`` set it also
emits a ``pause`` window after a shorter silence: the speech so far, exactly the samples the
``speech`` window will hold if no voiced frame comes back. The voice assistant starts the
brain's answer on it at once (a :class:`HeldAnswer`): the brain generates, but nothing is said
and no action runs. When the ``speech`` window comes and holds the same audio, the turn takes
the held answer over (the tokens generated meanwhile are ready); when the speaker went on, the
held answer is cancelled and the longer window is answered from scratch. So the answer gets the
silence between the pause and the end of the turn as a head start, and never differs from the
answer the final window would get (same prompt, same samples, same decoding).

Nothing here is speculative about actions: the held stream is a plain chat-model stream whose
chunks are only buffered; the runtime runs tools from the message it assembles after release.

A held answer also tells what the brain heard before it answers: a brain that reports Whisper's
transcript (``response_metadata["transcripts"]``, see :mod:`salmonn_agent.chat_model`) does so in
its first chunk, which :meth:`HeldAnswer.transcripts` waits for. The adaptive end of turn reads
it (:mod:`salmonn_agent.agent.turn_end`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.messages import BaseMessage

from salmonn_agent.chat.messages import TRANSCRIPTS_KEY
from salmonn_agent.stream.windows import AudioWindow


def same_audio(pause: AudioWindow, window: AudioWindow) -> bool:
    """Whether ``window`` (a ``speech`` window) holds exactly the audio the ``pause`` window held."""
    return window.kind == "speech" and same_event(pause, window)


def same_event(first: AudioWindow, second: AudioWindow) -> bool:
    """Whether two windows hold the same stretch of the stream and the same event (of any kind)."""
    return (
        first.start_sample == second.start_sample
        and first.end_sample == second.end_sample
        and first.event_start == second.event_start
        and first.event_end == second.event_end
    )


class HeldAnswer:
    """A brain's answer streamed from ``stream`` into a buffer from now on, handed out later.

    ``window`` is the ``pause`` window it answers, ``messages`` the exact request, and
    ``started_at`` the ``time.perf_counter()`` at which generation started.
    """

    def __init__(
        self, stream: AsyncIterator[Any], window: AudioWindow, messages: list[BaseMessage]
    ) -> None:
        self.window = window
        self.messages = messages
        self.started_at = time.perf_counter()
        self._chunks: list[Any] = []
        self._error: BaseException | None = None
        self._done = False
        self._changed = asyncio.Event()
        self._told = asyncio.Event()  # the first chunk came, or the stream ended
        self._task = asyncio.ensure_future(self._pump(stream))

    def cancel(self) -> None:
        """Stop generating (the speaker went on, or the turn was interrupted)."""
        self._task.cancel()

    async def aclose(self) -> None:
        """Cancel and wait until the generation has stopped."""
        self.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    async def transcripts(self) -> list[str | None] | None:
        """What the brain reported hearing in the request's clips (``response_metadata
        ["transcripts"]``), once its first chunk came; None when it reports nothing (or failed)."""
        await self._told.wait()
        for chunk in self._chunks:
            heard = (getattr(chunk, "response_metadata", None) or {}).get(TRANSCRIPTS_KEY)
            if heard is not None:
                return list(heard)
        return None

    async def chunks(self, release_at: float) -> AsyncIterator[Any]:
        """The answer's chunks, none before ``release_at`` (``time.perf_counter()``): those
        generated so far at once, then the rest as they come. Leaving early cancels the
        generation; the brain's error, if it failed, is raised here."""
        delay = release_at - time.perf_counter()
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            sent = 0
            while True:
                self._changed.clear()
                while sent < len(self._chunks):
                    yield self._chunks[sent]
                    sent += 1
                if self._done:
                    break
                await self._changed.wait()
            if self._error is not None:
                raise self._error
        finally:
            if not self._done:
                self.cancel()

    async def _pump(self, stream: AsyncIterator[Any]) -> None:
        try:
            async for chunk in stream:
                self._chunks.append(chunk)
                self._changed.set()
                self._told.set()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # handed to the consumer, which reports it as the brain's failure
            self._error = err
        finally:
            self._done = True
            self._changed.set()
            self._told.set()
            close = getattr(stream, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
