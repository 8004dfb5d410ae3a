"""Hearing tools: LangChain tools that give any agent ears, whatever model is its brain.

    tools = HearingTools(ChatSALMONN(...), AudioResolver("~/clips", WindowStore())).tools()
    agent = create_agent(any_chat_model, tools)     # transcribe, describe_audio, ...

Each tool asks SALMONN (a :class:`~salmonn_agent.chat_model.ChatSALMONN`, or anything with
``invoke(messages)`` returning an ``AIMessage``) about one clip and returns its answer as text.
Audio arguments are references resolved by :class:`~salmonn_agent.agent.audio_refs.AudioResolver`
(a window id, a path in the allowed folder, or base64). A bad reference or a failing front-end
becomes a tool error the calling agent reads, never a crash of the agent loop.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import numpy as np
from langchain_core.messages import BaseMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field, ValidationError, model_validator

from salmonn_agent.agent.audio_refs import AudioResolver, WindowStore
from salmonn_agent.audio import SAMPLE_RATE
from salmonn_agent.chat.messages import audio_message
from salmonn_agent.errors import SalmonnError, format_validation_error
from salmonn_agent.stream.config import SegmenterConfig
from salmonn_agent.stream.listener import Listener
from salmonn_agent.stream.sources import AudioChunk, MicrophoneSource, Source
from salmonn_agent.stream.windows import AudioWindow, CloseReason, recording_window

TRANSCRIBE_PROMPT = "Recognize the speech and give me the transcription."
"""The instruction SALMONN was trained on for speech recognition."""
DESCRIBE_PROMPT = "Please describe the audio."
"""The instruction SALMONN was trained on for audio captioning."""
MAX_LISTEN_SECONDS = 60.0
"""The longest fixed-length recording ``listen`` makes."""

AUDIO_REF_HELP = (
    "The audio to hear, as one of: the id of a recent window, e.g. 'w3' (listen returns one); "
    "a file path inside the audio folder, relative to it, e.g. 'meeting.wav'; or a "
    "base64-encoded audio file (WAV, FLAC, OGG, MP3) written 'base64:<data>' or as a data URI "
    "'data:audio/wav;base64,<data>' (raw base64 without a prefix is recognised for WAV, FLAC, "
    "OGG, AIFF and ID3-tagged MP3 files)."
)

F = TypeVar("F", bound=Callable[..., Any])


class HearingError(SalmonnError, ValueError):
    """A hearing request that cannot be carried out as asked (bad listen arguments, a listen
    already running); the message names the fix."""


class AudioArgs(BaseModel):
    """Arguments of ``transcribe`` and ``describe_audio``."""

    audio: str = Field(description=AUDIO_REF_HELP)


class AskArgs(BaseModel):
    """Arguments of ``ask_about_audio``."""

    audio: str = Field(description=AUDIO_REF_HELP)
    question: str = Field(
        min_length=1,
        description="The question about the audio, e.g. 'How many people are speaking?' or 'Is an alarm ringing?'.",
    )


class ListenArgs(BaseModel):
    """Arguments of ``listen``."""

    question: str = Field(
        min_length=1,
        description="What to find out from what is heard, e.g. 'What did the user say?' or 'What is this sound?'.",
    )
    seconds: float | None = Field(
        None,
        gt=0,
        le=MAX_LISTEN_SECONDS,
        description=(
            f"Record exactly this many seconds (at most {MAX_LISTEN_SECONDS:g}) of everything, "
            "speech or not. Leave it out to wait for speech instead."
        ),
    )
    until_end_of_speech: bool = Field(
        True,
        description="Without `seconds`: wait for someone to speak and stop when they finish.",
    )
    timeout_s: float = Field(
        15.0,
        gt=0,
        le=300,
        description="Give up after this many seconds if no speech was heard (a fixed recording gets `seconds` more).",
    )

    @model_validator(mode="after")
    def _one_mode(self) -> ListenArgs:
        if self.seconds is None and not self.until_end_of_speech:
            raise ValueError(
                "nothing to record: give `seconds` for a fixed-length recording, or leave "
                "until_end_of_speech true to wait for speech"
            )
        return self


class HearingTools:
    """Builds the hearing tools around one chat model and one :class:`AudioResolver`.

    ``source_factory`` opens the live input for ``listen`` (default: the default microphone,
    :class:`~salmonn_agent.stream.sources.MicrophoneSource`); ``segmenter`` configures how
    ``listen`` finds the end of speech. Windows ``listen`` records go into the resolver's
    :class:`WindowStore` (when it has one), so their ids work in the other tools.
    """

    def __init__(
        self,
        chat: Any,
        resolver: AudioResolver,
        *,
        source_factory: Callable[[], Source] | None = None,
        segmenter: SegmenterConfig | None = None,
    ) -> None:
        self.chat = chat
        self.resolver = resolver
        self.source_factory: Callable[[], Source] = source_factory or MicrophoneSource
        self.segmenter = segmenter
        self._listening = threading.Lock()

    @property
    def store(self) -> WindowStore | None:
        """Where recorded windows are kept (the resolver's store)."""
        return self.resolver.store

    # ---------------------------------------------------------------- the tools

    def tools(self) -> list[BaseTool]:
        """``[transcribe, describe_audio, ask_about_audio, listen]`` as LangChain tools."""
        has_async = callable(getattr(self.chat, "ainvoke", None))
        return [
            _tool(
                self.transcribe, self.atranscribe if has_async else None, "transcribe", AudioArgs,
                "Write down what is said in an audio clip (speech recognition). Returns the transcript.",
            ),
            _tool(
                self.describe_audio, self.adescribe_audio if has_async else None, "describe_audio", AudioArgs,
                "Describe what can be heard in an audio clip: speech, voices, sounds, music, the scene.",
            ),
            _tool(
                self.ask_about_audio, self.aask_about_audio if has_async else None, "ask_about_audio", AskArgs,
                "Ask any question about an audio clip and get the answer of a model that hears it, "
                "e.g. 'Is a baby crying?', 'What language is spoken?', 'How does the speaker feel?'.",
            ),
            _tool(
                self.listen, None, "listen", ListenArgs,
                "Listen to the microphone now and answer a question about what is heard. By default "
                "it waits for someone to speak and stops when they finish; give `seconds` to record "
                "a fixed length of everything (sounds included). Returns the answer with the id of "
                "the recorded window (e.g. 'w4'), which the other hearing tools accept as `audio`.",
            ),
        ]

    # ---------------------------------------------------------------- clips

    def transcribe(self, audio: str) -> str:
        """What is said in the referenced audio."""
        return self._ask(audio, TRANSCRIBE_PROMPT)

    def describe_audio(self, audio: str) -> str:
        """A description of the referenced audio."""
        return self._ask(audio, DESCRIBE_PROMPT)

    def ask_about_audio(self, audio: str, question: str) -> str:
        """The answer to ``question`` about the referenced audio."""
        return self._ask(audio, question)

    async def atranscribe(self, audio: str) -> str:
        """Asynchronous :meth:`transcribe` (uses the chat model's ``ainvoke``)."""
        return await self._aask(audio, TRANSCRIBE_PROMPT)

    async def adescribe_audio(self, audio: str) -> str:
        """Asynchronous :meth:`describe_audio`."""
        return await self._aask(audio, DESCRIBE_PROMPT)

    async def aask_about_audio(self, audio: str, question: str) -> str:
        """Asynchronous :meth:`ask_about_audio`."""
        return await self._aask(audio, question)

    def _ask(self, ref: str, instruction: str) -> str:
        samples = self.resolver.resolve(ref).samples
        return self._answer(samples, instruction)

    async def _aask(self, ref: str, instruction: str) -> str:
        samples = self.resolver.resolve(ref).samples
        reply = await self.chat.ainvoke([audio_message(samples, instruction, sample_rate=SAMPLE_RATE)])
        return _reply_text(reply)

    def _answer(self, samples: np.ndarray, instruction: str) -> str:
        reply = self.chat.invoke([audio_message(samples, instruction, sample_rate=SAMPLE_RATE)])
        return _reply_text(reply)

    # ---------------------------------------------------------------- live input

    def listen(
        self,
        question: str,
        seconds: float | None = None,
        until_end_of_speech: bool = True,
        timeout_s: float = 15.0,
    ) -> str:
        """Record from the live input, keep the window, and answer ``question`` about it.

        With ``seconds``: records that long, whatever is heard. Otherwise: waits for the first
        speech window (the segmenter closes it at the end of speech). Returns
        ``"Heard w4 (speech, 2.1 s): <answer>"``, or a sentence saying nothing was heard
        within ``timeout_s`` (measured in audio received, or wall-clock time if the input
        stalls).
        """
        try:
            args = ListenArgs(
                question=question, seconds=seconds, until_end_of_speech=until_end_of_speech, timeout_s=timeout_s
            )
        except ValidationError as err:
            raise HearingError(_validation_message(err)) from None
        if not self._listening.acquire(blocking=False):
            raise HearingError("Already listening (another listen call is running): wait for its answer first.")
        try:
            source = self.source_factory()
            if args.seconds is not None:
                window, nothing = self._record(source, args.seconds, args.timeout_s)
            else:
                window, nothing = self._first_speech(source, args.timeout_s)
        finally:
            self._listening.release()
        if window is None:
            return nothing
        window_id = self.store.add(window) if self.store is not None else None
        answer = self._answer(window.samples, args.question)
        heard = f"{window_id} ({window.kind}, {window.duration:.1f} s)" if window_id else f"{window.kind} ({window.duration:.1f} s)"
        return f"Heard {heard}: {answer}"

    def _first_speech(self, source: Source, timeout_s: float) -> tuple[AudioWindow | None, str]:
        bounded = _Bounded(source, timeout_s, deadline_s=timeout_s)
        with Listener(bounded, self.segmenter) as listener:
            for window in listener:
                if window.kind == "speech":  # sounds (a door, a beep) are not what we wait for
                    return window, ""
        if bounded.limit_reached:
            return None, f"Heard no speech within {timeout_s:g} s. Ask the user to speak, then listen again."
        return None, f"The audio input ended after {bounded.seconds_seen:.1f} s without any speech."

    def _record(self, source: Source, seconds: float, timeout_s: float) -> tuple[AudioWindow | None, str]:
        bounded = _Bounded(source, seconds, deadline_s=seconds + timeout_s)
        parts: list[np.ndarray] = []
        first: int | None = None
        pos = 0
        with bounded:
            for chunk in bounded:
                if chunk.samples.size == 0:
                    continue
                if first is None:
                    first = pos = chunk.start_sample
                if chunk.start_sample > pos:  # the source lost audio: keep the timeline with silence
                    parts.append(np.zeros(chunk.start_sample - pos, dtype=np.float32))
                parts.append(chunk.samples)
                pos = chunk.start_sample + chunk.samples.size
        if first is None:
            return None, f"Heard nothing within {seconds + timeout_s:g} s: the audio input delivered no sound."
        samples = np.concatenate(parts).astype(np.float32, copy=False)
        reason: CloseReason = "max_length" if bounded.limit_reached else "end_of_stream"
        vad_mode = (self.segmenter or SegmenterConfig()).vad_mode
        return recording_window(samples, first, reason, vad_mode), ""


# ---------------------------------------------------------------- helpers


class _Bounded(Source):
    """Passes another source's audio through until ``seconds`` of stream time have come, or
    ``deadline_s`` of wall-clock time have passed (checked at every chunk, heartbeats included,
    so a microphone that delivers nothing still times out)."""

    def __init__(self, inner: Source, seconds: float, *, deadline_s: float) -> None:
        super().__init__()
        self.inner = inner
        self.max_samples = round(seconds * SAMPLE_RATE)
        self.deadline_s = deadline_s
        self.limit_reached = False
        self.samples_seen = 0

    @property
    def seconds_seen(self) -> float:
        """Stream time covered so far."""
        return self.samples_seen / SAMPLE_RATE

    @property
    def overflows(self) -> int:
        return self.inner.overflows

    @property
    def dropped_samples(self) -> int:
        return self.inner.dropped_samples

    def start(self) -> None:
        self.inner.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        self.inner.stop()

    def close(self) -> None:
        super().stop()
        self.inner.close()

    def chunks(self) -> Iterator[AudioChunk]:
        deadline = time.monotonic() + self.deadline_s
        for chunk in self.inner:
            if self.stopped:
                return
            room = self.max_samples - chunk.start_sample
            if room <= 0 or time.monotonic() >= deadline:
                self.limit_reached = True
                return
            if chunk.samples.size > room:
                chunk = AudioChunk(chunk.samples[:room], chunk.start_sample)
            self.samples_seen = chunk.start_sample + chunk.samples.size
            yield chunk
            if self.samples_seen >= self.max_samples:
                self.limit_reached = True
                return


def _reply_text(reply: Any) -> str:
    text = reply.text if isinstance(reply, BaseMessage) else str(reply)
    text = text.strip()
    return text or "(the model gave no answer)"


def _validation_message(err: ValidationError) -> str:
    problems = format_validation_error(err, unnamed="arguments")
    return f"Invalid arguments ({problems}). Fix them and call the tool again."


def _tool_errors(func: F) -> F:
    """Turn the project's errors into ToolException, which the tool hands to the agent as text."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SalmonnError as err:
            raise ToolException(str(err)) from err

    return wrapper  # type: ignore[return-value]


def _async_tool_errors(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """:func:`_tool_errors` for coroutine functions."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await func(*args, **kwargs)
        except SalmonnError as err:
            raise ToolException(str(err)) from err

    return wrapper


def _tool(
    func: Callable[..., str],
    coroutine: Callable[..., Awaitable[str]] | None,
    name: str,
    schema: type[BaseModel],
    description: str,
) -> StructuredTool:
    return StructuredTool.from_function(
        func=_tool_errors(func),
        coroutine=_async_tool_errors(coroutine) if coroutine is not None else None,
        name=name,
        description=description,
        args_schema=schema,
        handle_tool_error=True,
        handle_validation_error=_validation_message,
    )
