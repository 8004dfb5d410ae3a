"""Generation: the five entry points, their LLM calls and the key/value caches between calls.

:class:`GenerationMixin` gives ``SALMONN`` ``generate``, ``generate_from_prompts``,
``generate_detailed``, ``stream`` and ``stream_from_prompt``; all of them embed the prompts
(``SALMONN.embed_prompts``) and call the LLM's ``generate`` through :meth:`_llm_generate`.
:class:`PrefixCache` keeps an LLM key/value cache between the turns of one conversation, and a
single request reuses the keys/values of its prompt's head (the text before its first clip).
Streamed text comes from :mod:`salmonn_agent.model.text_stream`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import transformers
from packaging.version import Version
from torch import nn
from transformers import DynamicCache, DynamicLayer, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from salmonn_agent.audio import AudioInput
from salmonn_agent.config import GenerationConfig, SALMONNConfig
from salmonn_agent.errors import ConfigError, SalmonnError
from salmonn_agent.model.compiled import CompiledDecoding
from salmonn_agent.model.inputs import EncodedAudio, PromptInputs
from salmonn_agent.model.prompt import PromptTokenizer
from salmonn_agent.model.text_stream import TextStream, TokenQueue, WorkerThread

# SALMONN's prompt reaches the LLM as embeddings only, so a repetition penalty can only count the
# generated tokens: that is upstream's behaviour too, and transformers' warning about it on every
# call would only clutter answers.
warnings.filterwarnings("ignore", message="Passing `repetition_penalty` with `inputs_embeds`", category=UserWarning)

_CACHE_KWARG = "cache" if Version(transformers.__version__).release >= (5, 24) else "past_key_values"
"""``generate``'s name for a key/value cache to start from: transformers 5.24 renamed
``past_key_values`` to ``cache`` (the old name is deprecated there); earlier 5.x know only the old."""

AudioLike = AudioInput | EncodedAudio

_OTHER_PROCESSORS = (
    "no_repeat_ngram_size", "bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "sequence_bias",
    "forced_bos_token_id", "forced_eos_token_id", "encoder_repetition_penalty", "exponential_decay_length_penalty",
    "renormalize_logits", "watermarking_config",
)
"""Generation-config fields that make ``generate`` add a logits processor the guided loop lacks."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    """One generated answer with what it cost: token ids, finish reason and prompt sizes.

    ``cached_tokens``: prompt positions taken from a conversation's key/value cache (a
    :class:`PrefixCache`) instead of being computed again.
    """

    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (end symbol), "length" (max_new_tokens) or "cancelled"
    prompt_text_tokens: int
    prompt_audio_tokens: int
    cached_tokens: int = 0


class PrefixCache:
    """The LLM's key/value cache of one conversation, kept between its turns (batch size 1).

    Pass the same object as ``prefix_cache=`` to :meth:`SALMONN.generate_detailed` (or
    :meth:`SALMONN.stream_from_prompt`) for every turn of a conversation; it is updated in place:

    * before generating, the new prompt's embedding rows are compared with :attr:`embeds` (the
      rows whose keys/values the cache holds: the previous prompt and the answer generated to
      it). The longest common prefix (exact equality of whole rows) is kept, at most all rows
      but the prompt's last, the cache is cropped to it, and ``generate`` prefills only the
      rest. A later turn (earlier turns, the same audio tokens, the previous answer rendered
      back, then the new question) typically reuses everything up to where the re-tokenized
      answer first differs from the generated tokens;
    * after generating, it holds the keys/values of this prompt and of the answer's tokens
      (all but the last one, which was never fed back).

    The cache is ignored and rebuilt when the device, dtype, LoRA state (the call's
    ``lora_scale``, disabled or switched adapters) or LoRA weights (changed in place, e.g. by
    training) differ from those it was built with. Beam search (``num_beams > 1``) runs without
    it and leaves it unchanged. If generation fails, it is emptied. The model's generation lock
    serialises its use, but one conversation at a time per object is the intended use.

    ``reused_tokens`` / ``prefilled_tokens``: prompt positions of the last call taken from the
    cache / computed. Memory: ``nbytes`` (layers x 2 x positions x key/value width, plus the
    positions' embeddings).
    """

    def __init__(self) -> None:
        self.embeds: torch.Tensor | None = None
        self.cache: DynamicCache | None = None
        self.key: tuple[object, ...] | None = None
        self.reused_tokens = 0
        self.prefilled_tokens = 0

    @property
    def num_tokens(self) -> int:
        """Positions whose keys/values are cached."""
        return 0 if self.embeds is None else int(self.embeds.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory the cached keys/values and embeddings take, in bytes."""
        total = 0 if self.embeds is None else self.embeds.numel() * self.embeds.element_size()
        for layer in self.cache.layers if self.cache is not None else []:
            for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if isinstance(tensor, torch.Tensor):
                    total += tensor.numel() * tensor.element_size()
        return total

    def copy(self) -> PrefixCache:
        """An independent copy (its own tensors), for another conversation that begins the same way."""
        twin = PrefixCache()
        twin.embeds = None if self.embeds is None else self.embeds.clone()
        twin.cache = None if self.cache is None else copy.deepcopy(self.cache)
        twin.key = self.key
        return twin

    def reset(self) -> None:
        """Forget the cached positions (the next call prefills its whole prompt)."""
        self.embeds = None
        self.cache = None
        self.key = None

    def __repr__(self) -> str:
        return f"PrefixCache(num_tokens={self.num_tokens}, reused_tokens={self.reused_tokens})"


def common_prefix_rows(a: torch.Tensor, b: torch.Tensor, limit: int) -> int:
    """How many leading rows of ``a`` and ``b`` (``[n, H]``) are exactly equal, at most ``limit``."""
    n = min(a.shape[0], b.shape[0], limit)
    if n <= 0:
        return 0
    same = (a[:n] == b[:n].to(a.device, a.dtype)).all(dim=-1)
    return n if bool(same.all()) else int(same.logical_not().int().argmax())


def tensor_version(tensor: torch.Tensor) -> int:
    """The in-place modification counter of ``tensor`` (-1 where it has none, e.g. inference tensors)."""
    try:
        return int(tensor._version)
    except RuntimeError:
        return -1


class CancelOnEvent(StoppingCriteria):
    """Stops generation once ``event`` is set (a closed stream or a cancelled request)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class DecodingGuide(Protocol):
    """The controls of a guided greedy decode (one prompt, one beam; see
    :meth:`GenerationMixin.generate_detailed`).

    ``choose`` picks the next token from one row of scores (float32 logits after ``generate``'s
    own processors: the repetition penalty, and no end symbol before ``min_new_tokens``); ``accept`` takes a token (``forced``: a
    drafted token the model's own choice confirmed) and says whether the answer is over;
    ``draft`` gives the tokens the controls force next (a grammar's fast-forward tokens), at
    most ``limit`` of them; ``speculate`` (asked when nothing is forced) the tokens the answer
    may copy next from the request, which the loop takes only where the model's own choice
    confirms each.
    """

    def choose(self, scores: torch.Tensor) -> int: ...

    def accept(self, token: int, forced: bool = False) -> bool: ...

    def draft(self, limit: int) -> list[int]: ...

    def speculate(self, limit: int) -> list[int]: ...


def _crop_to(cache: DynamicCache, length: int) -> None:
    """Drop the cache's positions from ``length`` on. ``crop`` is given the count to remove (a
    negative number), the one form every transformers 5 release reads the same way."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


SPECULATION_TOKENS = 5
"""Most tokens the guided loop feeds on the guide's speculation (:meth:`DecodingGuide.speculate`):
with the chosen token, six rows, within float16 weights' fast row count
(:data:`~salmonn_agent.model.half_weights.HALF_ROWS`)."""


def cut_at_eos(ids: list[int], eos_id: int, pad_id: int | None, max_new_tokens: int) -> tuple[list[int], str]:
    """Cut generated ids at the end symbol; say why generation ended."""
    if eos_id in ids:
        return ids[: ids.index(eos_id)], "stop"
    if pad_id is not None and pad_id != eos_id:
        ids = [i for i in ids if i != pad_id]
    return ids, "length" if len(ids) >= max_new_tokens else "stop"


class GenerationMixin:
    """Text generation for ``SALMONN``: entry points, LLM calls, key/value caches.

    The model provides the attributes annotated here and the methods ``embed_prompts``,
    ``check_prompt_length``, ``render_prompt``, ``encode_audio`` and ``lora_scale``.
    """

    config: SALMONNConfig
    llm: nn.Module
    tokenizer: PromptTokenizer
    device: torch.device
    dtype: torch.dtype
    _eos_id: int
    _lora_layers: list[nn.Module]

    if TYPE_CHECKING:  # provided by SALMONN
        def embed_prompts(self, prompts: Sequence[str], audios: Sequence[Sequence[EncodedAudio]]) -> PromptInputs: ...
        def check_prompt_length(self, text_tokens: int, audio_tokens: int, max_new_tokens: int) -> None: ...
        def render_prompt(self, instruction: str) -> str: ...
        def encode_audio(self, audios: Sequence[AudioInput], sample_rate: int | None = None) -> list[EncodedAudio]: ...
        def lora_scale(self, scale: float | None) -> contextlib.AbstractContextManager[None]: ...

    def _init_generation(self) -> None:
        self._generate_lock = threading.RLock()
        self._head_cache = PrefixCache()  # see _generate_with_head
        self.head_hits = 0
        """Single requests that reused the keys/values of their prompt's head (see :meth:`generate_detailed`)."""
        self.compiled = CompiledDecoding()
        """The decoding path: compiled with a static cache or not (see :meth:`set_compile`)."""
        self._stream_thread = WorkerThread()  # streams generate there, one after another

    def set_compile(self, mode: str, backend: str = "inductor") -> None:
        """Choose compiled decoding: ``auto`` (CUDA, one prompt, no beams), ``on`` or ``off``
        (see :mod:`salmonn_agent.model.compiled`). Beam search always decodes with the default
        dynamic cache; a compiled call bypasses a conversation's :class:`PrefixCache`."""
        self.compiled = CompiledDecoding(mode, backend)

    def generate(
        self,
        audios: AudioLike | Sequence[AudioLike],
        instructions: str | Sequence[str],
        *,
        sample_rate: int | None = None,
        generation: GenerationConfig | None = None,
        **options: object,
    ) -> list[str]:
        """Answer each instruction about its audio clip; returns one string per clip.

        ``audios`` and ``instructions`` are single items or equal-length sequences (one
        instruction may serve all clips). ``options`` override the generation config for this
        call: ``max_new_tokens``, ``num_beams``, ``do_sample``, ``temperature``, ``top_p``,
        ``repetition_penalty``, ``length_penalty``, ``min_length``, ``lora_scale``.
        """
        clips, prompts = self._pair(audios, instructions)
        encoded = self._encode_mixed(clips, sample_rate)
        return self.generate_from_prompts(
            [self.render_prompt(p) for p in prompts], [[e] for e in encoded],
            generation=generation, **options,
        )

    def generate_from_prompts(
        self,
        prompts: Sequence[str],
        audios: Sequence[Sequence[EncodedAudio]],
        *,
        generation: GenerationConfig | None = None,
        **options: object,
    ) -> list[str]:
        """Generate from fully rendered prompts, each with one ``<SpeechHere>`` per clip given."""
        return [g.text for g in self.generate_detailed(prompts, audios, generation=generation, **options)]

    def generate_detailed(
        self,
        prompts: Sequence[str],
        audios: Sequence[Sequence[EncodedAudio]],
        *,
        generation: GenerationConfig | None = None,
        logits_processor: LogitsProcessorList | None = None,
        stopping_criteria: StoppingCriteriaList | None = None,
        prefix_cache: PrefixCache | None = None,
        guide: DecodingGuide | None = None,
        **options: object,
    ) -> list[Generation]:
        """Like :meth:`generate_from_prompts`, with token ids, finish reasons and prompt sizes.

        ``logits_processor`` and ``stopping_criteria`` are handed to ``generate`` (e.g.
        constrained decoding of JSON). ``prefix_cache`` (one prompt only) reuses and then
        updates a conversation's key/value cache (see :class:`PrefixCache`); greedy answers
        are the same with or without it. ``guide`` (a :class:`DecodingGuide`) decodes a greedy
        single prompt in the model's own loop instead (:meth:`_decode_guided`): the guide
        chooses each token, and the tokens it forces go through the model in the same call as
        the token before them; where that loop does not apply (sampling, beams, batches,
        compiled decoding), ``generate`` runs with the processors.
        """
        if prefix_cache is not None and len(prompts) != 1:
            raise SalmonnError(
                f"prefix_cache works with one prompt at a time; got {len(prompts)} prompts. "
                "Generate them one by one, or drop prefix_cache to batch them."
            )
        config = (generation or self.config.generation).updated(**options)
        inputs = self.embed_prompts(prompts, audios)
        for text_tokens, audio_tokens in zip(inputs.text_tokens, inputs.audio_tokens):
            self.check_prompt_length(text_tokens, audio_tokens, config.max_new_tokens)
        kwargs = self._generate_kwargs(config)
        if logits_processor is not None:
            kwargs["logits_processor"] = logits_processor
        if stopping_criteria is not None:
            kwargs["stopping_criteria"] = stopping_criteria
        with self._generation_scope(config):
            output = self._llm_generate(inputs, kwargs, prefix_cache if config.num_beams == 1 else None, guide)
        if prefix_cache is not None and config.num_beams > 1:
            prefix_cache.reused_tokens, prefix_cache.prefilled_tokens = 0, int(inputs.embeds.shape[1])
        cached = prefix_cache.reused_tokens if prefix_cache is not None else 0
        results = []
        for row, text_tokens, audio_tokens in zip(output, inputs.text_tokens, inputs.audio_tokens):
            ids, reason = cut_at_eos(row.tolist(), self._eos_id, self.tokenizer.tokenizer.pad_token_id,
                                     config.max_new_tokens)
            results.append(Generation(self.tokenizer.decode(ids).strip(), ids, reason, text_tokens, audio_tokens,
                                      cached))
        return results

    def stream(
        self,
        audio: AudioLike,
        instruction: str,
        *,
        sample_rate: int | None = None,
        generation: GenerationConfig | None = None,
        **options: object,
    ) -> TextStream:
        """Yield the answer as text pieces while it is generated (greedy or sampling)."""
        (encoded,) = self._encode_mixed([audio], sample_rate)
        return self.stream_from_prompt(
            self.render_prompt(instruction), [encoded], generation=generation, **options
        )

    def stream_from_prompt(
        self,
        prompt: str,
        audios: Sequence[EncodedAudio],
        *,
        generation: GenerationConfig | None = None,
        cancel: threading.Event | None = None,
        logits_processor: LogitsProcessorList | None = None,
        prefix_cache: PrefixCache | None = None,
        **options: object,
    ) -> TextStream:
        """Stream text pieces for one rendered prompt. Closing the iterator (or setting
        ``cancel``) stops generation at the next token. The returned :class:`TextStream` holds
        the token ids and finish reason once exhausted. ``prefix_cache`` works as in
        :meth:`generate_detailed`; it is updated once the stream is exhausted or closed."""
        beams = options.pop("num_beams", None)
        if beams is not None and int(beams) > 1:  # type: ignore[arg-type]
            raise ConfigError("Streaming works with num_beams=1 (greedy or sampling); drop num_beams.")
        config = (generation or self.config.generation).updated(num_beams=1, **options)
        inputs = self.embed_prompts([prompt], [audios])
        self.check_prompt_length(inputs.text_tokens[0], inputs.audio_tokens[0], config.max_new_tokens)
        cancel = cancel or threading.Event()
        tokens = TokenQueue()
        kwargs = self._generate_kwargs(config)
        kwargs["stopping_criteria"] = StoppingCriteriaList([CancelOnEvent(cancel)])
        if logits_processor is not None:
            kwargs["logits_processor"] = logits_processor
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._generation_scope(config):
                    self._llm_generate(inputs, {**kwargs, "streamer": tokens}, prefix_cache)
            except BaseException as err:  # noqa: BLE001 - re-raised in the consumer thread
                errors.append(err)
                tokens.end()

        return TextStream(
            run, tokens, self.tokenizer.decode, cancel, errors, self._eos_id, config.max_new_tokens,
            inputs.text_tokens[0], inputs.audio_tokens[0], start=self._stream_thread.submit,
        )

    def _generate_kwargs(self, config: GenerationConfig) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "max_new_tokens": config.max_new_tokens,
            "num_beams": config.num_beams,
            "do_sample": config.do_sample,
            # Given only inputs_embeds, current transformers subtracts the prompt's length from
            # min_length, so upstream's min_length=1 would allow an empty answer. Counting new
            # tokens keeps the config's intent: at least this many tokens before the end.
            "min_new_tokens": config.min_length,
            "repetition_penalty": config.repetition_penalty,
            "length_penalty": config.length_penalty,
            "eos_token_id": self._eos_id,
            "pad_token_id": self.tokenizer.tokenizer.pad_token_id,
        }
        if config.do_sample:
            kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=0)
        return kwargs

    def _llm_generate(
        self, inputs: PromptInputs, kwargs: dict[str, object], prefix_cache: PrefixCache | None,
        guide: DecodingGuide | None = None,
    ) -> torch.Tensor:
        """The LLM's ``generate`` on ``inputs`` (inside :meth:`_generation_scope`): compiled with
        a static cache where :attr:`compiled` says so, else with a dynamic cache (or the guided
        loop, when ``guide`` is given and applies), reusing and then updating ``prefix_cache``
        (batch size 1) when one is given; a compiled call leaves ``prefix_cache`` empty."""
        batch, positions = int(inputs.embeds.shape[0]), int(inputs.embeds.shape[1])
        beams = int(kwargs.get("num_beams", 1))  # type: ignore[call-overload]
        reason = self.compiled.reason_against(self.device, batch, beams)
        self.compiled.last_reason = reason or "compiled"
        if reason is None:
            if prefix_cache is not None:  # bypassed: see salmonn_agent.model.compiled
                prefix_cache.reset()
                prefix_cache.reused_tokens, prefix_cache.prefilled_tokens = 0, positions
            new_tokens = int(kwargs["max_new_tokens"])  # type: ignore[call-overload]
            static = self.compiled.generate_options(self.device, positions, new_tokens)
            return self.llm.generate(
                inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask, **kwargs, **static
            )
        logger.debug("decoding with the default cache: %s", reason)
        if guide is not None and not self._guided_applies(batch, kwargs):
            guide = None
        if prefix_cache is None and batch == 1 and inputs.head_tokens[0] > 0 and beams == 1:
            return self._generate_with_head(inputs, kwargs, guide)
        return self._generate_dynamic(inputs, kwargs, prefix_cache, guide)

    def _guided_applies(self, batch: int, kwargs: dict[str, object]) -> bool:
        """Whether the guided loop decodes what ``generate`` would with these options: greedy,
        one prompt, one beam (the processors ``generate`` adds then are the repetition penalty
        and ``min_new_tokens``, which the loop applies the same way), and no other processor
        asked for by the LLM's own generation config; and a cache whose layers can be cropped
        back (not sliding-window ones), for the forced tokens the model does not confirm."""
        if batch != 1 or int(kwargs.get("num_beams", 1)) != 1 or kwargs.get("do_sample"):  # type: ignore[call-overload]
            return False
        own = getattr(self.llm, "generation_config", None)
        if any(getattr(own, name, None) for name in _OTHER_PROCESSORS):
            return False
        return all(type(layer) is DynamicLayer for layer in self._new_cache().layers)

    def _generate_dynamic(
        self, inputs: PromptInputs, kwargs: dict[str, object], prefix_cache: PrefixCache | None,
        guide: DecodingGuide | None = None,
    ) -> torch.Tensor:
        """``generate`` (or the guided loop) with a dynamic cache, reusing and updating
        ``prefix_cache`` if given."""
        if prefix_cache is None:
            if guide is not None:
                return self._decode_guided(inputs, kwargs, self._new_cache(), guide)
            return self.llm.generate(inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask, **kwargs)
        rows = inputs.embeds[0]
        key = self._prefix_key()
        cache = self._prefix_begin(prefix_cache, rows, key)
        try:
            if guide is not None:
                output = self._decode_guided(inputs, kwargs, cache, guide)
            else:
                # ``generate`` slices inputs_embeds to the positions the cache lacks; the full
                # attention mask gives those positions their absolute position ids.
                output = self.llm.generate(
                    inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask, **{_CACHE_KWARG: cache},
                    **kwargs,
                )
        except BaseException:
            prefix_cache.reset()
            raise
        full = torch.cat([rows, self.llm.get_input_embeddings()(output[0].to(rows.device)).to(rows.dtype)])
        length = cache.get_seq_length()
        if length > full.shape[0]:  # not what generate leaves behind; do not trust it
            prefix_cache.reset()
        else:
            prefix_cache.embeds, prefix_cache.cache, prefix_cache.key = full[:length], cache, key
        return output

    def _decode_guided(
        self, inputs: PromptInputs, kwargs: dict[str, object], cache: DynamicCache, guide: DecodingGuide
    ) -> torch.Tensor:
        """Greedy decoding of one prompt where ``guide`` chooses each token, and the tokens it
        forces (a grammar's fast-forward tokens) are fed with the chosen token in one LLM call;
        where nothing is forced, the tokens it expects the answer to copy from the request
        (``speculate``, at most :data:`SPECULATION_TOKENS`) are fed so instead.

        Each forced or expected token is taken only where the model's own choice from the logits
        at its position (what step-by-step decoding would pick there) is that token; at the first
        one that is not, the model's choice is taken instead and the cache is cropped to it. So the
        tokens are those of ``generate``'s greedy decoding, up to float differences between a
        multi-token call and one-token calls (which matter only at near-ties). The answer ends
        when the guide says so (the end symbol, a complete JSON answer) or at ``max_new_tokens``.
        Returns the new token ids ``[1, n]``, as ``generate`` does; ``cache`` then holds the
        prompt and the answer (the last token fed or not).
        """
        embeds = inputs.embeds
        device = embeds.device
        positions = int(embeds.shape[1])
        max_new = int(kwargs["max_new_tokens"])  # type: ignore[call-overload]
        min_new = int(kwargs.get("min_new_tokens") or 0)  # type: ignore[call-overload]
        penalty = float(kwargs.get("repetition_penalty") or 1.0)  # type: ignore[arg-type]
        past = cache.get_seq_length()

        def forward(**model_inputs: object) -> torch.Tensor:
            length = cache.get_seq_length()
            fed = int(model_inputs.pop("count"))  # type: ignore[call-overload]
            output = self.llm(
                **model_inputs, attention_mask=torch.ones(1, length + fed, dtype=torch.long, device=device),
                position_ids=torch.arange(length, length + fed, device=device).unsqueeze(0),
                use_cache=True, **{_CACHE_KWARG: cache},
            )
            return output.logits[0].to(dtype=torch.float32)

        def choose(logits: torch.Tensor, made: list[int]) -> int:
            """The guide's choice after generate's own processors (float32, as generate scores)."""
            scores = logits.clone()
            if penalty != 1.0 and made:  # the repetition penalty: generate's counts the new tokens only
                seen = torch.tensor(sorted(set(made)), dtype=torch.long, device=scores.device)
                picked = scores[seen]
                scores[seen] = torch.where(picked < 0, picked * penalty, picked / penalty)
            if len(made) < min_new:  # min_new_tokens: no end symbol before then
                scores[self._eos_id] = float("-inf")
            return guide.choose(scores)

        tokens: list[int] = []
        logits = forward(inputs_embeds=embeds[:, past:], count=positions - past, logits_to_keep=1)[-1]
        token = choose(logits, tokens)
        while True:
            tokens.append(token)
            if guide.accept(token) or token == self._eos_id or len(tokens) >= max_new:
                break
            draft = guide.draft(max_new - len(tokens))
            forcing = bool(draft)
            if not forcing:
                draft = guide.speculate(min(SPECULATION_TOKENS, max_new - len(tokens)))
            start = cache.get_seq_length()
            ids = torch.tensor([[token, *draft]], dtype=torch.long, device=device)
            logits = forward(input_ids=ids, count=1 + len(draft), logits_to_keep=1 + len(draft))
            ended, token = False, -1
            for j, proposed in enumerate(draft):
                choice = choose(logits[j], tokens)
                if choice != proposed:  # the model would not take the drafted token here: keep its choice
                    _crop_to(cache, start + 1 + j)
                    token = choice
                    break
                tokens.append(proposed)
                if guide.accept(proposed, forced=forcing) or len(tokens) >= max_new:
                    ended = True
                    break
            if ended:
                break
            if token < 0:
                token = choose(logits[-1], tokens)
        _crop_to(cache, positions + len(tokens))  # ended inside a draft: drop the rest
        return torch.tensor([tokens], dtype=torch.long, device=device)

    def _new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.llm.config.get_text_config(decoder=True))

    def _generate_with_head(
        self, inputs: PromptInputs, kwargs: dict[str, object], guide: DecodingGuide | None = None
    ) -> torch.Tensor:
        """Generate one prompt reusing the keys/values of its head: the text before its first
        clip, which the prompt template makes the same for every single-turn request (the
        system prompt and the start of the user turn). Then keep this prompt's head for the
        next call. Only the head is kept, never audio or an answer."""
        head = inputs.head_tokens[0]
        cache = self._head_cache.copy()
        output = self._generate_dynamic(inputs, kwargs, cache, guide)
        self.head_hits += cache.reused_tokens == head
        # A head not reused in full was missing, stale (another LoRA state) or another template's.
        if cache.reused_tokens < head and cache.cache is not None and cache.num_tokens >= head:
            _crop_to(cache.cache, head)
            cache.embeds = cache.embeds[:head]
            self._head_cache = cache
        return output

    def _prefix_begin(self, prefix_cache: PrefixCache, rows: torch.Tensor, key: tuple[object, ...]) -> DynamicCache:
        """The cache to hand ``generate`` for prompt ``rows`` ``[T, H]``: the reusable part of
        ``prefix_cache`` (cropped to the common prefix, at most ``T - 1``), or a new one."""
        cache, cached = prefix_cache.cache, prefix_cache.embeds
        reuse = 0
        if (
            cache is not None and cached is not None and prefix_cache.key == key
            and cache.get_seq_length() == cached.shape[0]
            and all(type(layer) is DynamicLayer for layer in cache.layers)  # sliding layers cannot be cropped back
        ):
            reuse = common_prefix_rows(cached, rows, rows.shape[0] - 1)
        if reuse == 0:
            cache = self._new_cache()
        else:
            _crop_to(cache, reuse)
        # Until generation ends the cache and the rows are out of step: keep neither.
        prefix_cache.reset()
        prefix_cache.reused_tokens, prefix_cache.prefilled_tokens = reuse, int(rows.shape[0]) - reuse
        return cache

    def _prefix_key(self) -> tuple[object, ...]:
        """What a prefix cache's keys/values depend on besides the inputs: device, dtype, the
        LoRA layers' scales and state, and the in-place versions of their weights."""
        lora = tuple(
            (tuple(sorted(layer.scaling.items())), bool(layer.disable_adapters), tuple(layer.active_adapters),
             tuple(tensor_version(p) for p in layer.parameters()))
            for layer in self._lora_layers
        )
        return (str(self.device), self.dtype, lora)

    @contextlib.contextmanager
    def _generation_scope(self, config: GenerationConfig) -> Iterator[None]:
        """Hold the model for one generation, with the LoRA scale of this call only."""
        with self._generate_lock, torch.no_grad(), self.lora_scale(config.lora_scale):
            yield

    def _pair(
        self, audios: AudioLike | Sequence[AudioLike], instructions: str | Sequence[str]
    ) -> tuple[list[AudioLike], list[str]]:
        single = isinstance(audios, (str, bytes, bytearray, np.ndarray, EncodedAudio, Path))
        clips = [audios] if single else list(audios)  # type: ignore[list-item]
        prompts = [instructions] if isinstance(instructions, str) else list(instructions)
        if len(prompts) == 1 and len(clips) > 1:
            prompts = prompts * len(clips)
        if not clips or len(prompts) != len(clips):
            raise SalmonnError(
                f"Got {len(clips)} audio clips and {len(prompts)} instructions: give one "
                "instruction per clip, or one for all."
            )
        return clips, prompts

    def _encode_mixed(self, clips: Sequence[AudioLike], sample_rate: int | None) -> list[EncodedAudio]:
        todo = [i for i, c in enumerate(clips) if not isinstance(c, EncodedAudio)]
        fresh = self.encode_audio([clips[i] for i in todo], sample_rate) if todo else []
        out = list(clips)
        for i, encoded in zip(todo, fresh):
            out[i] = encoded
        return out  # type: ignore[return-value]
