"""ChatSALMONN: SALMONN as a LangChain chat model that hears.

```python
from salmonn_agent.chat_model import ChatSALMONN, audio_message

chat = ChatSALMONN(model="path/to/salmonn")          # or client=<a loaded SALMONN>
answer = chat.invoke([audio_message("dog.wav", "What do you hear?")])
answer.content, answer.usage_metadata                 # text; tokens with the audio ones
```

Input: text and audio content blocks (standard ``{"type": "audio", "base64": ..., "mime_type":
...}``, ``url`` to a local file, the legacy ``source_type`` form and OpenAI's ``input_audio``),
rendered into SALMONN's prompt format as documented in :mod:`salmonn_agent.chat.render`.
Output: an ``AIMessage`` with ``usage_metadata`` (audio tokens under
``input_token_details["audio"]``, prompt positions reused from the conversation's key/value cache
under ``input_token_details["cache_read"]``) and ``response_metadata`` (``model_name``, ``finish_reason``;
``transcripts``, Whisper's transcript of each clip, with a model that reads it, as salmonn-mini
does: a stream sends it in an empty chunk ahead of the answer, as soon as the audio is encoded).

Decoding defaults to greedy (``num_beams=1``) so answers stream token by token, batch, and can
be constrained; ``num_beams=4`` reproduces the official decode (and streams as one chunk).
Tools follow the prompt protocol of :mod:`salmonn_agent.chat.tools`; a forced ``tool_choice``
and ``with_structured_output`` decode under a JSON grammar (llguidance), so even a small model
returns a valid call; with ``tool_choice="auto"`` the call grammar applies from the answer's
first ``{``. A call streams as ``tool_call_chunks`` and ends at its closing brace; a greedy
request decoded alone feeds the tokens its grammar forces without a model call of their own
(``response_metadata["forced_tokens"]``). Audio tokens are cached by content hash, and
concurrent requests are batched into one ``generate`` (:mod:`salmonn_agent.chat.engine`). The LLM's key/value cache of
the last few conversations is kept (``prefix_cache_size``), so a follow-up turn (the earlier
messages, the answer, a new question) that runs alone only prefills the new part, and a new
conversation that begins like a kept one (the same system prompt and tools) reuses that part.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import (
    convert_to_json_schema,
    convert_to_openai_tool,
)
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field, PrivateAttr

from salmonn_agent.chat.blocks import BlockReader
from salmonn_agent.chat.cache import AudioTokenCache, PrefixCacheStore
from salmonn_agent.chat.controls import RequestControl
from salmonn_agent.chat.engine import GenerationEngine, Job
from salmonn_agent.chat.errors import (
    ContentBlockError,
    GenerationTimeout,
    ToolCallError,
)
from salmonn_agent.chat.grammar import GrammarFactory
from salmonn_agent.chat.messages import TRANSCRIPTS_KEY, audio_block, audio_message
from salmonn_agent.chat.render import render_conversation
from salmonn_agent.chat.tools import (
    ToolChoice,
    call_parts,
    call_schema,
    new_call_id,
    normalize_tool_choice,
    parse_tool_calls,
    render_tools,
    tool_definitions,
)
from salmonn_agent.registry import ModelProfile, load_model, profile_for, resolve_model_name
from salmonn_agent.model.text_stream import TextAssembler, cut_at_stop

__all__ = [
    "ChatSALMONN", "ContentBlockError", "GenerationTimeout", "ToolCallError", "audio_block",
    "audio_message",
]


_PER_CALL = frozenset({
    "temperature", "max_tokens", "timeout", "max_retries", "num_beams", "top_p",
    "repetition_penalty", "lora_scale", "model", "tools", "tool_choice", "response_format",
    "ls_structured_output_format", "stream", "seed",
})
_LOADED: dict[tuple[str, str | None, str, str | None], Any] = {}
_LOAD_LOCK = threading.Lock()


def load_shared_model(
    path: str, device: str | None = None, dtype: str = "auto", quantize: str | None = None
) -> Any:
    """Load a SALMONN model once per process (per path, device, dtype and quantize) and share it.

    ``path`` is a model directory, a hub id, or ``salmonn-mini`` (the embedded default).
    """
    key = (str(path), device, dtype, quantize)
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = load_model(path, device=device, dtype=dtype, quantize=quantize)
        return _LOADED[key]


@dataclass
class _Runtime:
    """What serves one loaded model: its batching engine, audio cache and grammar factory."""

    client: Any
    engine: GenerationEngine
    reader: BlockReader
    _grammar: GrammarFactory | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def grammar(self) -> GrammarFactory:
        with self._lock:
            if self._grammar is None:
                vocab = int(self.client.llm.get_input_embeddings().weight.shape[0])
                self._grammar = GrammarFactory(self.client.tokenizer.tokenizer, vocab)
            return self._grammar


@dataclass
class _Request:
    """A prepared request: the job for the engine and how to read its answer."""

    job: Job
    model_name: str
    stop: tuple[str, ...]
    tool_names: list[str]
    choice: ToolChoice
    constrained: bool
    max_new_tokens: int
    decode: Callable[[list[int]], str]


class ChatSALMONN(BaseChatModel):
    """SALMONN as a LangChain chat model: hears audio content blocks, answers in text.

    Setup: ``ChatSALMONN(model="dir")`` loads the model on first use (shared per process and
    path; ``$SALMONN_AGENT_MODEL`` is the default), or ``ChatSALMONN(client=model)`` uses a
    loaded :class:`~salmonn_agent.model.salmonn.SALMONN`.

    Every generation parameter can also be passed per call (``invoke(..., temperature=0.7)``)
    or bound (``chat.bind(lora_scale=2.0)``).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model: str = Field(default_factory=lambda: resolve_model_name(None))
    """Model directory or hub id to load, or ``salmonn-mini`` (the embedded default); also the
    ``model_name`` reported. Default: ``$SALMONN_AGENT_MODEL``, else ``salmonn-mini``."""
    client: Any = Field(default=None, exclude=True)
    """An already loaded ``SALMONN`` model (then ``model`` is only its reported name)."""
    device: str | None = None
    """Where to load the model (``cpu``, ``cuda``, ...; None picks the best available)."""
    dtype: str = "auto"
    """Precision when loading: ``auto`` (on a CPU ``bfloat16-weights`` where it has native
    bfloat16 arithmetic, else ``float16-weights``; ``float32`` elsewhere), ``float32``,
    ``float16-weights`` / ``bfloat16-weights`` (CPU: float32 compute with the LLM's linear weights
    stored in 16 bits, see ``SALMONN.halve_llm_weights``), ``bfloat16``, ``float16`` or ``int8`` (CPU:
    the LLM's linear layers quantized to 8 bits, see ``SALMONN.quantize_llm``)."""
    quantize: str | None = None
    """The LLM's weights in ``int8`` or ``int4`` (bitsandbytes), for big models on smaller GPUs;
    see ``SALMONN.quantize_llm_weights``. None: unquantized."""

    temperature: float | None = None
    """0 (or None): greedy decoding; above 0: sampling at that temperature."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Most new tokens per answer (None: the model's default, 200)."""
    stop: list[str] | None = None
    """Stop sequences: the answer ends before the first one."""
    timeout: float | None = None
    """Seconds a request may take (queueing, hearing, generating); then it stops with an error."""
    max_retries: int | None = None
    """Accepted for compatibility; local generation has no transient failures to retry."""
    num_beams: int = Field(default=1, ge=1)
    """Beam search width; 1 (default) streams, batches and constrains; 4 is the official decode."""
    top_p: float | None = None
    """Nucleus sampling mass (with temperature > 0)."""
    seed: int | None = None
    """Seed of the sampler (with temperature > 0): the same request with the same seed gets the same
    answer. A seeded request is decoded alone, never batched with others."""
    repetition_penalty: float | None = None
    """Penalty for repeated tokens (1.0: none)."""
    lora_scale: float | None = None
    """LoRA scale for this model's answers (official 4.0; ~2.0 brings out reasoning)."""
    streaming: bool = False
    """Whether ``invoke`` streams internally (callbacks get tokens)."""

    max_audio_bytes: int = Field(default=50_000_000, ge=1)
    """Largest encoded audio clip accepted in one content block, in bytes."""
    allow_remote_audio: bool = False
    """Whether ``http(s)`` audio URLs may be downloaded."""
    local_audio: bool | list[str] = True
    """Which local audio paths (plain or ``file://`` URLs) messages may name: ``True`` any file the
    process can read, ``False`` none (set it when messages come from a network client), or a list
    of directories whose files may be read."""
    audio_cache_size: int = Field(default=32, ge=0)
    """How many clips' audio tokens to keep (LRU, by content hash); 0 turns the cache off."""
    prefix_cache_size: int = Field(default=4, ge=0)
    """How many conversations' LLM key/value caches to keep (LRU), so a follow-up turn reuses
    the prefill of the earlier ones; 0 turns it off. Each takes layers x 2 x positions x
    key/value width values (about 0.8 MB per position for a 13B model in float16). Used by
    requests that run alone; batched ones and beam search run without it."""
    max_batch_size: int = Field(default=8, ge=1)
    """Most concurrent requests decoded together in one ``generate`` call."""
    batch_window_ms: float = Field(default=5.0, ge=0)
    """How long the first waiting request waits for others to batch with; each newcomer restarts
    the wait, up to 4 windows in all. A follow-up turn of a kept conversation (see
    ``prefix_cache_size``) that finds no other request waiting starts without waiting."""

    _runtimes: dict[int, _Runtime] = PrivateAttr(default_factory=dict)
    _runtime_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # ------------------------------------------------------------------ LangChain plumbing
    @property
    def _llm_type(self) -> str:
        return "salmonn"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model_name, "temperature": self.temperature, "max_tokens": self.max_tokens,
            "num_beams": self.num_beams, "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty, "lora_scale": self.lora_scale,
        }

    @property
    def model_name(self) -> str:
        """The name reported in metadata: ``model``, or ``salmonn`` for an unnamed client."""
        return self.model or "salmonn"

    @property
    def model_profile(self) -> ModelProfile:
        """What this model can do, from the registry (see :mod:`salmonn_agent.registry`)."""
        return profile_for(self.model_name)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="salmonn",
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = int(max_tokens)
        if ls_stop := stop or self.stop:
            params["ls_stop"] = list(ls_stop)
        return params

    @property
    def audio_cache(self) -> AudioTokenCache:
        """The audio-token cache of this chat model's (default) model."""
        return self._runtime(None).engine.cache

    @property
    def prefix_cache(self) -> PrefixCacheStore:
        """The conversations' key/value caches of this chat model's (default) model."""
        return self._runtime(None).engine.prefixes

    # ------------------------------------------------------------------ generation
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._prepare(messages, stop, kwargs)
        future = self._runtime(kwargs.get("model")).engine.submit(request.job)
        try:
            generation = future.result()
        except BaseException:
            request.job.control.cancel.set()
            raise
        return ChatResult(generations=[ChatGeneration(message=self._message(request, generation))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        loop = asyncio.get_running_loop()
        request = await loop.run_in_executor(None, lambda: self._prepare(messages, stop, kwargs))
        future = self._runtime(kwargs.get("model")).engine.submit(request.job)
        try:
            generation = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            request.job.control.cancel.set()
            raise
        return ChatResult(generations=[ChatGeneration(message=self._message(request, generation))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._prepare(messages, stop, kwargs)
        updates: queue.Queue[list[int] | dict[str, Any] | None] = queue.Queue()
        future = self._submit_streaming(request, kwargs, updates.put)
        pieces = _PieceFilter(request)
        try:
            while (ids := updates.get()) is not None:
                chunk = _heard_chunk(ids) if isinstance(ids, dict) else pieces.update(ids)
                if chunk is not None:
                    if run_manager:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
            last = self._last_chunk(request, pieces, future.result())
        finally:
            request.job.control.cancel.set()  # no-op once generation has ended
        if run_manager and last.text:
            run_manager.on_llm_new_token(last.text, chunk=last)
        yield last

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        request = await loop.run_in_executor(None, lambda: self._prepare(messages, stop, kwargs))
        updates: asyncio.Queue[list[int] | dict[str, Any] | None] = asyncio.Queue()

        def post(item: list[int] | dict[str, Any] | None) -> None:
            try:
                loop.call_soon_threadsafe(updates.put_nowait, item)
            except RuntimeError:  # the loop is gone: the consumer left
                request.job.control.cancel.set()

        future = self._submit_streaming(request, kwargs, post)
        pieces = _PieceFilter(request)
        try:
            while (ids := await updates.get()) is not None:
                chunk = _heard_chunk(ids) if isinstance(ids, dict) else pieces.update(ids)
                if chunk is not None:
                    if run_manager:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
            last = self._last_chunk(request, pieces, await asyncio.wrap_future(future))
        finally:
            request.job.control.cancel.set()  # cancelled or closed early: stop generating
        if run_manager and last.text:
            await run_manager.on_llm_new_token(last.text, chunk=last)
        yield last

    def _submit_streaming(
        self, request: _Request, kwargs: dict[str, Any], post: Callable[[list[int] | dict[str, Any] | None], None]
    ) -> Future:
        if int(request.job.options.get("num_beams", 1)) == 1:
            request.job.control.on_tokens = post
        # What Whisper heard streams ahead of the answer (a voice assistant's end-of-turn judge reads it).
        request.job.control.on_heard = lambda heard: post({TRANSCRIPTS_KEY: list(heard)})
        future = self._runtime(kwargs.get("model")).engine.submit(request.job)
        future.add_done_callback(lambda _: post(None))
        return future

    # ------------------------------------------------------------------ preparing requests
    def _runtime(self, model: str | None) -> _Runtime:
        """The loaded model (``model`` overrides this instance's per call) and its engine."""
        client = self._client(model)
        with self._runtime_lock:
            runtime = self._runtimes.get(id(client))
            if runtime is None:
                cache = AudioTokenCache(self.audio_cache_size)
                engine = GenerationEngine(
                    client, cache, max_batch_size=self.max_batch_size,
                    batch_window_s=self.batch_window_ms / 1000,
                    prefixes=PrefixCacheStore(self.prefix_cache_size),
                )
                reader = BlockReader(
                    lambda payload: client.load(payload), max_bytes=self.max_audio_bytes,
                    allow_remote=self.allow_remote_audio, local_audio=self.local_audio,
                )
                runtime = self._runtimes[id(client)] = _Runtime(client, engine, reader)
            return runtime

    def _client(self, model: str | None) -> Any:
        if model and model != self.model:
            return load_shared_model(model, self.device, self.dtype, self.quantize)
        if self.client is not None:
            return self.client
        return load_shared_model(self.model, self.device, self.dtype, self.quantize)

    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> _Request:
        unknown = set(kwargs) - _PER_CALL
        if unknown:
            raise TypeError(
                f"ChatSALMONN got unsupported parameters {sorted(unknown)}; per-call parameters "
                f"are {sorted(_PER_CALL - {'ls_structured_output_format', 'stream'})}."
            )
        if not any(_asks_something(message) for message in messages):
            raise ContentBlockError(
                "Nothing to answer: the messages hold no user text, audio or tool result"
                f" ({', '.join(type(m).__name__ for m in messages) or 'no messages'}). Send a user message "
                "with text or an audio block."
            )
        runtime = self._runtime(kwargs.get("model"))
        client = runtime.client
        tools = [convert_to_openai_tool(tool) for tool in kwargs.get("tools") or []]
        tool_names = [d["name"] for d in tool_definitions(tools)]
        choice = normalize_tool_choice(kwargs.get("tool_choice"), tool_names) if tools else ToolChoice("none")
        response_format = kwargs.get("response_format")
        options = self._options(kwargs)
        schema: dict[str, Any] | None = None
        system_parts = []
        call_grammar: dict[str, Any] | None = None  # auto: a call's grammar, opened once the answer starts one
        if tools and choice.mode != "none":
            system_parts.append(render_tools(tools, choice))
            if choice.forced:
                schema = call_schema(tools, choice)
            else:
                call_grammar = call_schema(tools, ToolChoice("any"))
        if response_format:
            schema, text = _response_format(response_format)
            system_parts.append(text)
        if schema is not None:
            options["num_beams"] = 1
        config = client.config.generation.updated(**{k: v for k, v in options.items() if k != "seed"})
        rendered = render_conversation(
            messages, client.config.prompt_template, runtime.reader,
            extra_system="\n\n".join(system_parts) or None,
            follow_up_template=client.config.follow_up_template, answer_end=client.config.answer_end,
        )
        audio_tokens = 0
        for clip in rendered.clips:  # decode now, so a bad block fails in the caller
            cached = runtime.engine.cache.get(clip.key)
            audio_tokens += cached.num_tokens if cached is not None else client.num_audio_tokens(len(clip.load()))
        # Checked here too (the model checks again, hints included), so that a request too long for
        # the context fails alone instead of failing the batch it would have joined.
        text_tokens = client.count_prompt_text_tokens(rendered.prompt)
        client.check_prompt_length(text_tokens, audio_tokens, config.max_new_tokens)
        stops = tuple(s for s in (stop if stop is not None else self.stop or []) if s)
        if schema is not None:  # a stop sequence inside the JSON would break it
            stops = ()
        timeout = kwargs.get("timeout", self.timeout)
        control = RequestControl(
            deadline=time.monotonic() + float(timeout) if timeout else None,
            stop=stops,
            grammar=runtime.grammar.session(runtime.grammar.compile(schema), config.max_new_tokens)
            if schema is not None else None,
        )
        if call_grammar is not None and schema is None and config.num_beams == 1:
            compiled = runtime.grammar.compile(call_grammar)
            control.open_grammar = lambda: runtime.grammar.session(compiled, config.max_new_tokens)
        return _Request(
            job=Job(rendered.prompt, rendered.clips, options, text_tokens, control),
            model_name=str(kwargs.get("model") or self.model_name),
            stop=stops,
            tool_names=tool_names if choice.mode != "none" else [],
            choice=choice,
            constrained=schema is not None,
            max_new_tokens=config.max_new_tokens,
            decode=client.tokenizer.decode,
        )

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Generation options of one call (``GenerationConfig`` fields)."""
        temperature = kwargs.get("temperature", self.temperature)
        options: dict[str, Any] = {
            "num_beams": int(kwargs.get("num_beams", self.num_beams) or 1),
            "max_new_tokens": kwargs.get("max_tokens", self.max_tokens),
            "top_p": kwargs.get("top_p", self.top_p),
            "repetition_penalty": kwargs.get("repetition_penalty", self.repetition_penalty),
            "lora_scale": kwargs.get("lora_scale", self.lora_scale),
        }
        seed = kwargs.get("seed", self.seed)
        if seed is not None and temperature is not None and float(temperature) > 0:
            options["seed"] = int(seed)  # greedy answers need no seed
        if temperature is not None:
            options["do_sample"] = float(temperature) > 0
            if float(temperature) > 0:
                options["temperature"] = float(temperature)
        return {k: v for k, v in options.items() if v is not None}

    # ------------------------------------------------------------------ reading answers
    def _answer(self, request: _Request, generation: Any) -> tuple[str, list[ToolCall], str, str]:
        """Text, tool calls, finish reason and the whole answer text of a finished generation (or
        the error it deserves)."""
        control = request.job.control
        if control.ended_by == "timeout":
            raise GenerationTimeout("The request ran past its timeout; generation was stopped.")
        text, stopped = cut_at_stop(generation.text, request.stop)
        reason = "stop" if stopped or control.completed else generation.finish_reason
        if control.ended_by == "grammar_error":
            raise ToolCallError(f"Constrained decoding failed: {control.grammar.error if control.grammar else ''}")
        constrained = request.constrained or control.grammar is not None  # (auto: opened on the answer's "{")
        if constrained and reason == "length" and not _is_json(text):
            raise ToolCallError(
                f"The JSON answer was cut at max_tokens={request.max_new_tokens} before it was "
                "complete; raise max_tokens.", llm_output=text,
            )
        calls = parse_tool_calls(text, request.tool_names) if request.tool_names else None
        if request.choice.forced and not calls:
            raise ToolCallError(f"Expected a tool call, got {text!r}.", llm_output=text)
        return ("" if calls else text), list(calls or []), reason, text

    def _metadata(
        self, request: _Request, generation: Any, reason: str, streamed: bool = False
    ) -> tuple[UsageMetadata, dict[str, Any]]:
        audio = int(generation.prompt_audio_tokens)
        prompt = int(generation.prompt_text_tokens) + audio
        output = len(generation.token_ids)
        usage = UsageMetadata(
            input_tokens=prompt, output_tokens=output, total_tokens=prompt + output,
            input_token_details={"audio": audio, "cache_read": int(getattr(generation, "cached_tokens", 0))},
        )
        metadata: dict[str, Any] = {"model_name": request.model_name, "finish_reason": reason}
        if request.job.control.grammar is not None:  # tokens the grammar forced, taken without a model call each
            metadata["forced_tokens"] = request.job.control.forced_tokens
        if request.job.control.heard is not None and not streamed:  # a stream sent it ahead
            metadata[TRANSCRIPTS_KEY] = list(request.job.control.heard)
        return usage, metadata

    def _message(self, request: _Request, generation: Any) -> AIMessage:
        text, calls, reason, _ = self._answer(request, generation)
        usage, metadata = self._metadata(request, generation, reason)
        return AIMessage(content=text, tool_calls=calls, usage_metadata=usage, response_metadata=metadata)

    def _last_chunk(self, request: _Request, pieces: "_PieceFilter", generation: Any) -> ChatGenerationChunk:
        text, calls, reason, answer = self._answer(request, generation)
        usage, metadata = self._metadata(request, generation, reason, streamed=True)
        rest = "" if calls else pieces.finish(text)
        chunks = pieces.finish_calls(calls, answer)
        message = AIMessageChunk(
            content=rest, tool_call_chunks=chunks, usage_metadata=usage, response_metadata=metadata,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=message, generation_info={"finish_reason": reason})

    def rendered_prompt(self, messages: list[BaseMessage], **kwargs: Any) -> str:
        """The exact prompt string the model would get for ``messages`` (one ``<SpeechHere>`` per
        clip), with the same per-call parameters as ``invoke`` (``tools``, ``tool_choice``...).

        For debugging prompts and for making training data that matches what the model is sent.
        """
        return self._prepare(list(messages), None, kwargs).job.prompt

    # ------------------------------------------------------------------ tools and structure
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (any form ``convert_to_openai_tool`` takes).

        ``tool_choice``: ``None``/``"auto"`` (the model may call), ``"none"``, ``"any"`` /
        ``"required"`` / ``True`` (must call one) or a tool name (must call that one). Forced
        choices decode under a JSON grammar, so the answer is always a valid call.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        normalize_tool_choice(tool_choice, [t["function"]["name"] for t in formatted])  # validate
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Answers as ``schema`` (pydantic class, TypedDict or JSON schema).

        ``json_schema`` (default): the whole answer is JSON decoded under the schema's grammar;
        ``function_calling``: a forced call of a tool made from the schema (same grammar);
        ``json_mode``: any JSON object (the schema is only described in the prompt).
        ``strict`` is accepted: the grammar always enforces the schema.
        """
        if kwargs:
            raise ValueError(f"Unsupported arguments {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, ls_structured_output_format=trace)
            parser: Runnable = (
                PydanticToolsParser(tools=[schema], first_tool_only=True) if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            json_schema = convert_to_json_schema(schema)
            kind = "json_schema" if method == "json_schema" else "json_object"
            llm = self.bind(response_format={"type": kind, "schema": json_schema}, ls_structured_output_format=trace)
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        else:
            raise ValueError(f"Unknown method {method!r}: use json_schema, function_calling or json_mode.")
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")


def _heard_chunk(metadata: dict[str, Any]) -> ChatGenerationChunk:
    """An empty chunk carrying what Whisper heard (``response_metadata["transcripts"]``)."""
    return ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=metadata))


class _PieceFilter:
    """Stream chunks of one request. An answer that may turn out to be a tool call is held back;
    while a grammar guarantees it is one (a forced call, or auto's call grammar opened on its
    ``{``), the call streams as ``tool_call_chunks``: the name (with the call's id) once its
    string is complete, then the arguments' JSON text as it grows."""

    def __init__(self, request: _Request) -> None:
        self._assembler = TextAssembler(request.decode, request.stop)
        self._may_call = bool(request.tool_names)
        self._control = request.job.control
        self._holding: bool | None = None
        self._held = ""
        self._call: tuple[str, str] | None = None  # (name, id) of the call being streamed
        self._args = ""  # its arguments' text streamed so far

    def update(self, token_ids: list[int]) -> ChatGenerationChunk | None:
        """The chunk for the answer's new tokens (``token_ids``: all so far), or None."""
        piece = self._assembler.update(token_ids)
        if piece and self._holding is None:
            self._holding = self._may_call and piece.lstrip()[:1] in ("{", "[")
        if not self._holding:
            return ChatGenerationChunk(message=AIMessageChunk(content=piece)) if piece else None
        self._held += piece
        if self._control.grammar is None:  # not (yet) sure to be a call: hold it all back
            return None
        name, args = call_parts(self._held)
        args = args or ""
        if self._call is None:
            if name is None:
                return None
            self._call = (name, new_call_id())
            chunk = {"name": name, "args": args, "id": self._call[1], "index": 0, "type": "tool_call_chunk"}
        elif args.startswith(self._args) and len(args) > len(self._args):
            chunk = {"name": None, "args": args[len(self._args):], "id": None, "index": 0, "type": "tool_call_chunk"}
        else:
            return None
        self._args = args
        return ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))

    def finish(self, text: str) -> str:
        """The rest of a text answer once it is known."""
        if self._call is not None:
            raise ToolCallError("The answer streamed as a tool call is not one.", llm_output=text)
        if self._holding:
            return text
        return self._assembler.finish(text)

    def finish_calls(self, calls: list[ToolCall], answer: str) -> list[dict[str, Any]]:
        """The last chunk's ``tool_call_chunks``: every call when none streamed, else the rest of
        the streamed call's arguments."""
        if self._call is None:
            return [
                {"name": c["name"], "args": json.dumps(c["args"], ensure_ascii=False), "id": c["id"],
                 "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(calls)
            ]
        name, args = call_parts(answer)
        if len(calls) != 1 or calls[0]["name"] != self._call[0] or args is None or not args.startswith(self._args):
            raise ToolCallError("The answer streamed as a tool call does not match the final one.", llm_output=answer)
        rest = args[len(self._args):]
        return [{"name": None, "args": rest, "id": None, "index": 0, "type": "tool_call_chunk"}] if rest else []


def _response_format(response_format: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The grammar schema and the system text of a ``response_format`` binding."""
    schema = response_format.get("schema") or {"type": "object"}
    if response_format.get("type") == "json_object":
        text = "Answer with only a JSON object"
        if response_format.get("schema"):
            text += " with the fields of this JSON schema: " + json.dumps(schema, ensure_ascii=False)
        return {"type": "object"}, text + "."
    return schema, "Answer with only a JSON object that matches this JSON schema: " + json.dumps(
        schema, ensure_ascii=False
    )


def _asks_something(message: BaseMessage) -> bool:
    """Whether a message gives the model something to answer: a user turn with text or audio, or a
    tool result."""
    if isinstance(message, ToolMessage):
        return True
    if not isinstance(message, HumanMessage):
        return False
    return any(block.get("type") not in ("text", "reasoning") or str(block.get("text", "")).strip()
               for block in message.content_blocks)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True
