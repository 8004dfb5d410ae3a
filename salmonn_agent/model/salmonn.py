"""The SALMONN model: encoders → window-level Q-Former → projection → LLM with LoRA.

Data shapes at each step (official 13B sizes, one 30 s chunk):
audio [480000] → Whisper mel [80, 3000] → Whisper encoder [1500, 1280] → ln_speech;
(BEATs [~1496, 768] → ln_audio → zero-padded to 1500) → concat [1500, 2048]
→ 88 windows of 17 frames → Q-Former [88, 768] → projection [88, 5120] = 88 audio tokens.
Audio longer than one chunk is encoded chunk by chunk and the tokens are concatenated.
The prompt ``[BOS] text <audio tokens> text ...`` is embedded and handed to ``generate``.
A :class:`PrefixCache` keeps the LLM's key/value cache of one conversation between turns, so a
follow-up turn only prefills what is new (see its docstring).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from packaging.version import Version
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    DynamicCache,
    DynamicLayer,
    LogitsProcessorList,
    StoppingCriteriaList,
)

from salmonn_agent.audio import SAMPLE_RATE, AudioInput, load_audio
from salmonn_agent.config import AUDIO_PLACEHOLDER, GenerationConfig, SALMONNConfig, looks_local
from salmonn_agent.errors import ConfigError, PromptTooLongError, SalmonnError
from salmonn_agent.model.generation import (
    CancelOnEvent,
    PrefixCache,
    RecordingStreamer,
    TextStream,
    common_prefix_rows,
    cut_at_eos,
    tensor_version,
)
from salmonn_agent.model.prompt import PromptTokenizer, render_prompt, split_prompt
from salmonn_agent.model.qformer import WindowQFormer
from salmonn_agent.model.hints import hint_text
from salmonn_agent.model.transcript import SpeechTranscriber
from salmonn_agent.sound_tags import SoundTag, SoundTagger
from salmonn_agent.model.whisper import WhisperFeatures, load_whisper_encoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedAudio:
    """Audio tokens of one clip, in the LLM's embedding space: ``embeds`` is ``[tokens, hidden]``.

    ``transcript`` is Whisper's own transcript of the clip and ``sound_tags`` its YAMNet tags,
    when the model is configured with ``speech_transcript`` / ``sound_tags`` (see
    :mod:`salmonn_agent.model.hints`), else None.
    """

    embeds: torch.Tensor
    seconds: float
    transcript: str | None = None
    sound_tags: tuple[SoundTag, ...] | None = None

    @property
    def num_tokens(self) -> int:
        """How many LLM positions the clip takes."""
        return int(self.embeds.shape[0])


@dataclass(frozen=True)
class PromptInputs:
    """A batch ready for the LLM: left-padded embeddings, attention mask and per-item lengths."""

    embeds: torch.Tensor
    attention_mask: torch.Tensor
    text_tokens: list[int]
    audio_tokens: list[int]
    head_tokens: list[int]
    """Per item, the text positions before its first clip (0 without audio)."""


@dataclass(frozen=True)
class Generation:
    """One generated answer with what it cost: token ids, finish reason and prompt sizes."""

    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (end symbol), "length" (max_new_tokens) or "cancelled"
    prompt_text_tokens: int
    prompt_audio_tokens: int


AudioLike = AudioInput | EncodedAudio


# SALMONN's prompt reaches the LLM as embeddings only, so a repetition penalty can only count the
# generated tokens: that is upstream's behaviour too, and transformers' warning about it on every
# call would only clutter answers.
warnings.filterwarnings("ignore", message="Passing `repetition_penalty` with `inputs_embeds`", category=UserWarning)

HINT_TAGS = 3
"""How many YAMNet tags a clip's hint lists (models with ``sound_tags``)."""

# The SALMONN parts that training changes (besides LoRA); everything else is a frozen base model.
TRAINED_PREFIXES = ("window_qformer.", "ln_speech.", "ln_audio.", "projection.")


class SALMONN(nn.Module):
    """SALMONN: hears 16 kHz audio through Whisper (+ BEATs) and answers with an LLM.

    Build one with :meth:`from_config`, :meth:`from_pretrained` (our format) or
    :func:`salmonn_agent.model.checkpoint.load_official` (the official ``.pth`` files).
    """

    def __init__(
        self,
        config: SALMONNConfig,
        speech_encoder: nn.Module,
        features: WhisperFeatures,
        llm: nn.Module,
        tokenizer: PromptTokenizer,
        beats: nn.Module | None = None,
        transcriber: SpeechTranscriber | None = None,
        tagger: SoundTagger | None = None,
    ) -> None:
        super().__init__()
        if config.speech_transcript and transcriber is None:
            raise ConfigError("The config sets speech_transcript but no Whisper decoder was given.")
        if config.sound_tags and tagger is None:
            raise ConfigError("The config sets sound_tags but no sound tagger was given.")
        self.config = config
        self.speech_encoder = speech_encoder
        self.features = features
        self.beats = beats
        self.transcriber = transcriber if config.speech_transcript else None
        self.tagger = tagger if config.sound_tags else None
        self.tokenizer = tokenizer
        speech_width = int(speech_encoder.config.d_model)
        self.ln_speech = nn.LayerNorm(speech_width)
        audio_width = int(beats.output_dim) if beats is not None else 0
        self.ln_audio = nn.LayerNorm(audio_width) if beats is not None else None
        self.window_qformer = WindowQFormer(
            config.qformer, speech_width + audio_width, config.second_per_window, config.second_stride
        )
        self.projection = nn.Linear(config.qformer.hidden_size, llm.config.hidden_size)
        self.llm = _add_lora(llm, config) if config.lora.enabled else llm
        self._lora_layers = [m for m in self.llm.modules() if _is_lora_layer(m)]
        self._eos_id = tokenizer.token_id(config.end_sym)
        self._generate_lock = threading.RLock()
        self._head_cache = PrefixCache()  # see _generate_with_head
        self.head_hits = 0
        """Single requests that reused the keys/values of their prompt's head (see :meth:`generate_detailed`)."""
        self.quantized = False  # see quantize_llm
        self.half_weights = False  # see halve_llm_weights
        self.freeze_base_models()

    # ----------------------------------------------------------------- building
    @classmethod
    def from_config(
        cls,
        config: SALMONNConfig,
        *,
        base_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str = torch.float32,
    ) -> "SALMONN":
        """Build the model, loading the frozen Whisper / BEATs / LLM it references.

        The trainable parts (Q-Former, projection, LoRA) start freshly initialised; load
        weights with :meth:`from_pretrained` or the official checkpoint loader.
        """
        resolve_dtype(dtype)  # an unknown dtype fails before minutes of loading
        config = config.model_copy(update={
            "whisper": _resolve(config.whisper, base_dir),
            "llm": _resolve(config.llm, base_dir),
            "beats": _resolve(config.beats, base_dir) if config.beats else None,
        })
        with quiet_base_loading():
            model = cls._build(config)
        return place_model(model, device, dtype)

    @classmethod
    def _build(cls, config: SALMONNConfig) -> "SALMONN":
        whisper, llm_path = config.whisper, config.llm
        speech_encoder = load_whisper_encoder(whisper, config.chunk_seconds, torch.float32)
        features = WhisperFeatures.from_pretrained(whisper, config.chunk_seconds)
        beats = None
        if config.beats:
            from salmonn_agent.model.beats import BEATs

            beats = BEATs.from_checkpoint(config.beats)
        llm = AutoModelForCausalLM.from_pretrained(llm_path, dtype=torch.float32)
        tokenizer = PromptTokenizer.load(llm_path, config.tokenizer_mode)
        transcriber = SpeechTranscriber.from_pretrained(whisper, speech_encoder) if config.speech_transcript else None
        tagger = SoundTagger.load() if config.sound_tags else None
        return cls(config, speech_encoder, features, llm, tokenizer, beats, transcriber, tagger).eval()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str = torch.float32,
    ) -> "SALMONN":
        """Load a model saved with :meth:`save_pretrained` (a local directory or a hub id)."""
        from salmonn_agent.model.checkpoint import load_pretrained

        return load_pretrained(cls, path, device=device, dtype=dtype)

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``salmonn_config.json`` and the trainable weights (``model.safetensors``) to ``path``."""
        from salmonn_agent.model.checkpoint import save_pretrained

        save_pretrained(self, path)

    def freeze_base_models(self) -> None:
        """Freeze Whisper, BEATs and the LLM's own weights; leave the SALMONN parts trainable."""
        for module in (self.speech_encoder, self.beats, self.transcriber, self.llm):
            if module is not None:
                module.requires_grad_(False)
                module.eval()
        for name, param in self.llm.named_parameters():
            if "lora_" in name:
                param.requires_grad_(True)

    def train(self, mode: bool = True) -> "SALMONN":
        """Set training mode for the SALMONN parts; the frozen encoders and LLM stay in eval mode.

        (LoRA dropout lives inside the LLM's LoRA layers and follows ``mode``.)
        """
        super().train(mode)
        for module in (self.speech_encoder, self.beats, self.transcriber, self.llm):
            if module is not None:
                module.eval()
        if mode:
            for submodule in self.llm.modules():
                if _is_lora_layer(submodule):
                    submodule.train()
        return self

    def quantize_llm(self) -> None:
        """Quantize the frozen LLM's linear layers to int8 weights (per output channel) with
        activations quantized on the fly; LoRA, the encoders and the Q-Former stay float32.

        For CPU inference: decoding one token reads every LLM weight, so it is bound by memory
        bandwidth, and 8-bit weights read a quarter of the bytes (salmonn-mini on 2 cores:
        answers about 2x faster). Accuracy can suffer: on salmonn-mini's held-out split it cost
        far too much (see the README), so nothing uses it by default. The model can no longer
        be trained. Uses PyTorch's own dynamic quantization
        (``torch.ao.quantization.quantize_dynamic``, fbgemm kernels on x86).
        """
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        if self.device.type != "cpu":
            raise ConfigError(f"int8 quantization runs on the CPU only; the model is on {self.device}.")
        lm = self._bare_llm()
        spec = {name: per_channel_dynamic_qconfig for name, module in lm.named_modules()
                if isinstance(module, nn.Linear) and "lora_" not in name}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao's deprecation notice
            quantize_dynamic(lm, spec, dtype=torch.qint8, inplace=True)
        self.quantized = True

    def halve_llm_weights(self) -> None:
        """Store the frozen LLM's linear weights in float16, computing in float32 (CPU inference).

        Decoding reads every LLM weight per token, so half the bytes decode faster: salmonn-mini's
        LLM on 2 cores took 55-66 ms a token instead of 126-130 ms, and its held-out results
        stayed within one item per metric (see the README). Prefill widens each weight back to
        float32. LoRA is folded into the weights it adapts (:meth:`_sync_merged_lora`); its own
        matrices, the embedding table, the encoders and the Q-Former stay float32. See
        :mod:`salmonn_agent.model.half_weights`. The model can no longer be trained.
        """
        from salmonn_agent.model.half_weights import halve_linear_weights

        if self.dtype != torch.float32:
            raise ConfigError(f"float16 weights need a float32 model to start from, not {self.dtype}.")
        lm = self._bare_llm()
        halve_linear_weights(lm)
        self.half_weights = True
        self._sync_merged_lora()

    def _sync_merged_lora(self) -> None:
        """With float16 weights, fold each LoRA layer into its weight at the layer's current
        scale (again only where the scale or adapters changed); see
        :func:`salmonn_agent.model.half_weights.merge_lora`. Decoding then skips the LoRA
        products: salmonn-mini went from about 68 to 54-59 ms a token on 2 cores."""
        if self.half_weights:
            from salmonn_agent.model.half_weights import merge_lora

            for layer in self._lora_layers:
                merge_lora(layer)

    def _bare_llm(self) -> nn.Module:
        """The LLM without peft's wrapper (its LoRA layers stay inside)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters SALMONN trains (Q-Former, queries, layer norms, projection, LoRA).

        Chosen by name, not by ``requires_grad``: a stage that holds the Q-Former fixed
        (``run.freeze_qformer``) still saves it.
        """
        return {
            name: param.detach()
            for name, param in self.named_parameters()
            if name.startswith(TRAINED_PREFIXES) or "lora_" in name
        }

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return self.projection.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating point type of the model's weights."""
        return self.projection.weight.dtype

    # ----------------------------------------------------------------- hearing
    @property
    def chunk_samples(self) -> int:
        """Samples per encoder pass (480000 for 30 s)."""
        return self.features.chunk_samples

    def tokens_per_chunk(self) -> int:
        """Audio tokens one chunk gives (88 for the official 30 s context)."""
        frames = int(self.speech_encoder.config.max_source_positions)
        return self.window_qformer.num_windows(frames) * self.config.qformer.num_query_tokens

    def num_audio_tokens(self, num_samples: int) -> int:
        """Audio tokens a clip of ``num_samples`` 16 kHz samples becomes."""
        chunks = max(1, -(-num_samples // self.chunk_samples))
        return chunks * self.tokens_per_chunk()

    @property
    def max_positions(self) -> int | None:
        """The LLM's context length in positions (None when its config does not say)."""
        value = getattr(self.llm.config.get_text_config(decoder=True), "max_position_embeddings", None)
        return int(value) if value else None

    def prompt_piece_ids(self, prompt: str) -> list[list[int]]:
        """Token ids of a rendered prompt's text pieces (split at its audio placeholders; the
        first piece starts with BOS when the model adds one)."""
        bos = [self.tokenizer.tokenizer.bos_token_id] if self.config.add_bos else []
        return [(bos if i == 0 else []) + self.tokenizer.encode(piece) for i, piece in enumerate(split_prompt(prompt))]

    def count_prompt_text_tokens(self, prompt: str) -> int:
        """Text tokens of a rendered prompt, hints excluded."""
        return sum(len(ids) for ids in self.prompt_piece_ids(prompt))

    def prompt_length(self, text_tokens: int, clips: Sequence[EncodedAudio]) -> int:
        """Positions a prompt of ``text_tokens`` (:meth:`count_prompt_text_tokens`) takes with its
        encoded clips (audio tokens and hints included)."""
        hints = sum(len(self.hint_ids(c.transcript, c.sound_tags)) for c in clips)
        return text_tokens + sum(c.num_tokens for c in clips) + hints

    def check_prompt_length(self, text_tokens: int, audio_tokens: int, max_new_tokens: int) -> None:
        """Raise :class:`PromptTooLongError` when a prompt and its answer cannot fit the context."""
        limit = self.max_positions
        if limit is not None and text_tokens + audio_tokens + max_new_tokens > limit:
            raise PromptTooLongError(
                f"The prompt is {text_tokens + audio_tokens} tokens ({text_tokens} of text, {audio_tokens} of "
                f"audio) and the answer may take {max_new_tokens} more: over the model's context of {limit} "
                "positions. Shorten the text or the audio, or lower max_new_tokens."
            )

    def load(self, audio: AudioInput, sample_rate: int | None = None) -> np.ndarray:
        """Decode and validate one input into 16 kHz mono samples (bounded by max_audio_seconds)."""
        return load_audio(audio, sample_rate, max_seconds=self.config.max_audio_seconds)

    @torch.no_grad()
    def encode_audio(self, audios: Sequence[AudioInput], sample_rate: int | None = None) -> list[EncodedAudio]:
        """Encode clips into audio tokens; all chunks of all clips go through the encoders together."""
        clips = [self.load(a, sample_rate) for a in audios]
        return self.encode_samples(clips)

    def encode_samples(self, clips: Sequence[np.ndarray]) -> list[EncodedAudio]:
        """Audio tokens for already-decoded 16 kHz mono clips (gradients flow if enabled)."""
        chunks: list[np.ndarray] = []
        owners: list[int] = []
        for index, clip in enumerate(clips):
            for start in range(0, max(len(clip), 1), self.chunk_samples):
                chunk = clip[start : start + self.chunk_samples]
                chunks.append(_pad_to(chunk, int(self.config.min_audio_seconds * SAMPLE_RATE)))
                owners.append(index)
        tokens, texts = self._encode_chunks(chunks)
        return [
            EncodedAudio(
                embeds=torch.cat([tokens[i] for i, o in enumerate(owners) if o == index]),
                seconds=len(clip) / SAMPLE_RATE,
                transcript=None if texts is None else join_transcripts(
                    [texts[i] for i, o in enumerate(owners) if o == index]
                ),
                sound_tags=self.tag_clip(clip),
            )
            for index, clip in enumerate(clips)
        ]

    def encode_chunks(self, chunks: Sequence[np.ndarray]) -> torch.Tensor:
        """Audio tokens ``[len(chunks), tokens_per_chunk, hidden]`` for chunks of at most one context."""
        return self._encode_chunks(chunks, transcribe=False)[0]

    def _encode_chunks(
        self, chunks: Sequence[np.ndarray], transcribe: bool = True
    ) -> tuple[torch.Tensor, list[str] | None]:
        mel = self.features(list(chunks)).to(self.device, self.dtype)
        speech = self.speech_encoder(mel).last_hidden_state
        beats = self._beats_features(chunks) if self.beats is not None else None
        texts = self.transcribe_features(speech) if transcribe else None
        return self.tokens_from_features(speech, beats), texts

    def transcribe_features(self, speech: torch.Tensor) -> list[str] | None:
        """Whisper's transcript of each chunk from its encoder states ``[chunks, frames, width]``;
        None when the model is not configured with ``speech_transcript``."""
        if self.transcriber is None:
            return None
        return self.transcriber.transcribe(speech.detach())

    def tag_clip(self, clip: np.ndarray) -> tuple[SoundTag, ...] | None:
        """YAMNet's top tags of a 16 kHz clip; None when the model is not configured with ``sound_tags``."""
        if self.tagger is None:
            return None
        return tuple(self.tagger.tags(clip, top_k=HINT_TAGS))

    def hint_ids(self, transcript: str | None, tags: Sequence[SoundTag] | None) -> list[int]:
        """Prompt tokens that follow a clip's audio tokens (see :mod:`salmonn_agent.model.hints`)."""
        text = hint_text(transcript, tags)
        return self.tokenizer.encode(text) if text else []

    def tokens_from_features(
        self, speech: torch.Tensor, beats: Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The trainable half of encoding: frozen encoder outputs → audio tokens.

        ``speech`` is Whisper's last hidden state ``[chunks, frames, width]``; ``beats`` holds
        each chunk's valid BEATs frames ``[n_i, width]``. As upstream: layer norms, BEATs
        zero-padded (after ``ln_audio``) to Whisper's length, concatenated per frame, then the
        window-level Q-Former and the projection.
        """
        speech = self.ln_speech(speech)
        if beats is not None:
            longest = max(b.shape[0] for b in beats)
            audio = speech.new_zeros(len(beats), longest, beats[0].shape[-1])
            padding = torch.ones(len(beats), longest, dtype=torch.bool, device=speech.device)
            for row, frames in enumerate(beats):
                audio[row, : frames.shape[0]] = frames
                padding[row, : frames.shape[0]] = False
            audio = self.ln_audio(audio).masked_fill(padding.unsqueeze(-1), 0.0)
            speech, audio = _pad_frames(speech, audio)
            speech = torch.cat([speech, audio], dim=-1)
        return self.projection(self.window_qformer(speech))

    def _beats_features(self, chunks: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Each chunk's valid BEATs frames, computed as one padded batch."""
        longest = max(len(c) for c in chunks)
        wav = torch.zeros(len(chunks), longest, dtype=torch.float32)
        padding = torch.ones(len(chunks), longest, dtype=torch.bool)
        for row, chunk in enumerate(chunks):
            wav[row, : len(chunk)] = torch.from_numpy(chunk)
            padding[row, : len(chunk)] = False
        # "exact" masking makes a batched clip's features equal to encoding it alone, which is
        # what upstream's single-clip inference (an all-False mask) computes.
        features, frame_padding = self.beats.extract_features(
            wav.to(self.device, self.dtype), padding_mask=padding.to(self.device), mask_mode="exact"
        )
        if frame_padding is None:
            return list(features)
        return [features[row, : int(n)] for row, n in enumerate((~frame_padding).sum(1).tolist())]

    # ----------------------------------------------------------------- prompting
    def render_prompt(self, instruction: str) -> str:
        """The model's single-turn prompt around ``instruction`` (the official template for SALMONN)."""
        return render_prompt(self.config.prompt_template, instruction)

    def embed_prompts(
        self, prompts: Sequence[str], audios: Sequence[Sequence[EncodedAudio]]
    ) -> PromptInputs:
        """Embed prompts with ``<SpeechHere>`` placeholders filled by audio tokens, left-padded."""
        embed = self.llm.get_input_embeddings()
        rows: list[torch.Tensor] = []
        text_counts: list[int] = []
        audio_counts: list[int] = []
        head_counts: list[int] = []
        for prompt, clips in zip(prompts, audios, strict=True):
            pieces = self.prompt_piece_ids(prompt)
            if len(pieces) - 1 != len(clips):
                raise SalmonnError(
                    f"The prompt has {len(pieces) - 1} {AUDIO_PLACEHOLDER} placeholders but "
                    f"{len(clips)} audio clips were given; give one clip per placeholder."
                )
            parts: list[torch.Tensor] = []
            text_total = 0
            for index, piece_ids in enumerate(pieces):
                if index == 0:
                    head_counts.append(len(piece_ids) if clips else 0)
                text_total += len(piece_ids)
                if piece_ids:
                    parts.append(embed(torch.tensor(piece_ids, device=self.device)))
                if index < len(clips):
                    parts.append(clips[index].embeds.to(self.device, self.dtype))
                    hint = self.hint_ids(clips[index].transcript, clips[index].sound_tags)
                    if hint:
                        parts.append(embed(torch.tensor(hint, device=self.device)))
                        text_total += len(hint)
            rows.append(torch.cat(parts))
            text_counts.append(text_total)
            audio_counts.append(sum(c.num_tokens for c in clips))
        longest = max(r.shape[0] for r in rows)
        hidden = rows[0].shape[1]
        embeds = torch.zeros(len(rows), longest, hidden, device=self.device, dtype=self.dtype)
        mask = torch.zeros(len(rows), longest, device=self.device, dtype=torch.long)
        for i, row in enumerate(rows):
            embeds[i, longest - row.shape[0] :] = row
            mask[i, longest - row.shape[0] :] = 1
        return PromptInputs(embeds, mask, text_counts, audio_counts, head_counts)

    # ----------------------------------------------------------------- generation
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
        prefix_cache: PrefixCache | None = None,
        **options: object,
    ) -> list[Generation]:
        """Like :meth:`generate_from_prompts`, with token ids, finish reasons and prompt sizes.

        ``logits_processor`` is handed to ``generate`` (e.g. constrained decoding of JSON).
        ``prefix_cache`` (one prompt only) reuses and then updates a conversation's key/value
        cache (see :class:`PrefixCache`); greedy answers are the same with or without it.
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
        with self._generation_scope(config):
            output = self._llm_generate(inputs, kwargs, prefix_cache if config.num_beams == 1 else None)
        if prefix_cache is not None and config.num_beams > 1:
            prefix_cache.reused_tokens, prefix_cache.prefilled_tokens = 0, int(inputs.embeds.shape[1])
        results = []
        for row, text_tokens, audio_tokens in zip(output, inputs.text_tokens, inputs.audio_tokens):
            ids, reason = cut_at_eos(row.tolist(), self._eos_id, self.tokenizer.tokenizer.pad_token_id,
                                  config.max_new_tokens)
            results.append(Generation(self.tokenizer.decode(ids).strip(), ids, reason, text_tokens, audio_tokens))
        return results

    def stream(
        self,
        audio: AudioLike,
        instruction: str,
        *,
        sample_rate: int | None = None,
        generation: GenerationConfig | None = None,
        **options: object,
    ) -> "TextStream":
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
    ) -> "TextStream":
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
        streamer = RecordingStreamer(self.tokenizer.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._generate_kwargs(config)
        kwargs["stopping_criteria"] = StoppingCriteriaList([CancelOnEvent(cancel)])
        if logits_processor is not None:
            kwargs["logits_processor"] = logits_processor
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._generation_scope(config):
                    self._llm_generate(inputs, {**kwargs, "streamer": streamer}, prefix_cache)
            except BaseException as err:  # noqa: BLE001 - re-raised in the consumer thread
                errors.append(err)
                streamer.end()

        return TextStream(
            run, streamer, cancel, errors, self._eos_id, config.max_new_tokens,
            inputs.text_tokens[0], inputs.audio_tokens[0],
        )

    def _generate_kwargs(self, config: GenerationConfig) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "max_new_tokens": config.max_new_tokens,
            "num_beams": config.num_beams,
            "do_sample": config.do_sample,
            # Given only inputs_embeds, current transformers subtracts the prompt's length from
            # min_length, so upstream's min_length=1 would allow an empty answer (seen:
            # salmonn-mini ended "hello / hello / how are you" at once). Counting new tokens
            # keeps the config's intent: at least this many tokens before the end.
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
        self, inputs: PromptInputs, kwargs: dict[str, object], prefix_cache: PrefixCache | None
    ) -> torch.Tensor:
        """The LLM's ``generate`` on ``inputs`` (inside :meth:`_generation_scope`), reusing and
        then updating ``prefix_cache`` (batch size 1) when one is given."""
        if prefix_cache is None:
            if inputs.embeds.shape[0] == 1 and inputs.head_tokens[0] > 0 and kwargs.get("num_beams", 1) == 1:
                return self._generate_with_head(inputs, kwargs)
            return self.llm.generate(inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask, **kwargs)
        rows = inputs.embeds[0]
        key = self._prefix_key()
        cache = self._prefix_begin(prefix_cache, rows, key)
        try:
            # ``generate`` slices inputs_embeds to the positions the cache lacks; the full
            # attention mask gives those positions their absolute position ids.
            output = self.llm.generate(
                inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask, **{_CACHE_KWARG: cache}, **kwargs
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

    def _generate_with_head(self, inputs: PromptInputs, kwargs: dict[str, object]) -> torch.Tensor:
        """Generate one prompt reusing the keys/values of its head: the text before its first
        clip, which the prompt template makes the same for every single-turn request (for
        salmonn-mini, the system prompt and the start of the user turn: 27 of a 5 s clip's 99
        prompt positions). Then keep this prompt's head for the next call. Only the head is kept,
        never audio or an answer."""
        head = inputs.head_tokens[0]
        cache = self._head_cache.copy()
        output = self._llm_generate(inputs, kwargs, cache)
        self.head_hits += cache.reused_tokens == head
        # A head not reused in full was missing, stale (another LoRA state) or another template's.
        if cache.reused_tokens < head and cache.cache is not None and cache.num_tokens >= head:
            cache.cache.crop(head - cache.cache.get_seq_length())
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
            cache = DynamicCache(config=self.llm.config.get_text_config(decoder=True))
        else:
            cache.crop(reuse - cache.get_seq_length())
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
        with self._generate_lock, torch.no_grad():
            scale = config.lora_scale
            if scale is None or not self._lora_layers:
                self._sync_merged_lora()
                yield
                return
            saved = [dict(layer.scaling) for layer in self._lora_layers]
            try:
                for layer in self._lora_layers:
                    for adapter in layer.scaling:
                        layer.scaling[adapter] = scale
                self._sync_merged_lora()
                yield
            finally:
                for layer, values in zip(self._lora_layers, saved):
                    layer.scaling.update(values)
                self._sync_merged_lora()

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


# --------------------------------------------------------------------- helpers
_CACHE_KWARG = "cache" if Version(transformers.__version__).release >= (5, 24) else "past_key_values"
"""``generate``'s name for a key/value cache to start from: transformers 5.24 renamed
``past_key_values`` to ``cache`` (the old name is deprecated there); earlier 5.x know only the old."""

INT8 = "int8"
"""The precision name for float32 weights with the LLM's linear layers quantized to 8 bits (CPU)."""
HALF_WEIGHTS = "float16-weights"
"""The precision name for float32 compute with the LLM's linear weights stored in float16."""
AUTO = "auto"
"""The precision name that picks per device: ``float16-weights`` on a CPU, ``float32`` elsewhere."""


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``float32`` / ``bfloat16`` / ``float16`` (or a torch dtype) as a torch dtype; ``int8``,
    ``float16-weights`` and ``auto`` are float32 here (:func:`place_model` converts the LLM
    afterwards)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16, INT8: torch.float32,
             HALF_WEIGHTS: torch.float32, AUTO: torch.float32}
    if dtype not in names:
        raise ConfigError(
            f"Unknown dtype {dtype!r}: use auto, float32, float16-weights, bfloat16, float16 or int8."
        )
    return names[dtype]


@contextlib.contextmanager
def quiet_base_loading() -> Iterator[None]:
    """Keep transformers' per-model "Loading weights" bars and peft's use of a deprecated
    transformers helper (a FutureWarning) off the user's terminal while the base parts load;
    transformers' progress-bar setting is restored afterwards."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def place_model(model: SALMONN, device: str | torch.device | None, dtype: torch.dtype | str) -> SALMONN:
    """Move a freshly loaded model to ``device`` in ``dtype`` (``int8``: see
    :meth:`SALMONN.quantize_llm`; ``float16-weights``: :meth:`SALMONN.halve_llm_weights`;
    ``auto``: ``float16-weights`` on a CPU, ``float32`` elsewhere)."""
    target = resolve_device(device)
    if dtype == AUTO:
        dtype = HALF_WEIGHTS if target.type == "cpu" else torch.float32
    if dtype in (INT8, HALF_WEIGHTS) and target.type != "cpu":
        raise ConfigError(f"dtype {dtype} is for CPU inference, not {target}: use bfloat16 or float16 there.")
    model = model.to(device=target, dtype=resolve_dtype(dtype))
    if dtype == INT8:
        model.quantize_llm()
    elif dtype == HALF_WEIGHTS:
        model.halve_llm_weights()
    return model


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, or the best available one (CUDA, then MPS, then CPU) for ``None``/``auto``."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"Unknown device {device!r} ({err}); use cpu, cuda, cuda:N or mps.") from None


def _resolve(reference: str, base_dir: str | Path | None) -> str:
    """An absolute path for a local reference (relative ones are tried against ``base_dir``
    first, then the working directory); anything else is a hub id and stays as given."""
    candidates = [Path(base_dir) / reference] if base_dir is not None else []
    candidates.append(Path(reference))
    for candidate in candidates:
        if candidate.exists():
            return str(candidate.resolve())
    if looks_local(reference):
        tried = " or ".join(repr(str(c)) for c in candidates)
        raise ConfigError(
            f"The base model path {reference!r} does not exist (tried {tried}); fix it in the model's "
            "salmonn_config.json or the decode config (whisper_path, beats_path, llama_path), or give a hub id."
        )
    return reference


def _add_lora(llm: nn.Module, config: SALMONNConfig) -> nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        inference_mode=False,
        r=config.lora.rank,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
    )
    return get_peft_model(llm, lora)


def _is_lora_layer(module: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return isinstance(module, LoraLayer)


def join_transcripts(texts: Sequence[str]) -> str:
    """One clip's transcript from its chunks' transcripts."""
    return " ".join(t for t in (t.strip() for t in texts) if t)


def _pad_to(chunk: np.ndarray, minimum: int) -> np.ndarray:
    if len(chunk) >= minimum:
        return chunk
    return np.concatenate([chunk, np.zeros(minimum - len(chunk), dtype=np.float32)])


def _pad_frames(speech: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad the shorter of two frame sequences to the longer one, as upstream does."""
    diff = speech.shape[1] - audio.shape[1]
    if diff > 0:
        audio = F.pad(audio, (0, 0, 0, diff))
    elif diff < 0:
        speech = F.pad(speech, (0, 0, 0, -diff))
    return speech, audio
