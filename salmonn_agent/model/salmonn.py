"""The SALMONN model: encoders → window-level Q-Former → projection → LLM with LoRA.

Data shapes at each step (official 13B sizes, one 30 s chunk):
audio [480000] → Whisper mel [80, 3000] → Whisper encoder [1500, 1280] → ln_speech;
(BEATs [~1496, 768] → ln_audio → zero-padded to 1500) → concat [1500, 2048]
→ 88 windows of 17 frames → Q-Former [88, 768] → projection [88, 5120] = 88 audio tokens.
Audio longer than one chunk is encoded chunk by chunk and the tokens are concatenated.
The prompt ``[BOS] text <audio tokens> text ...`` is embedded (:mod:`.inputs`) and handed to
the LLM: :meth:`SALMONN.forward` for the training loss, ``generate`` for answers
(:mod:`.generation`). Precision (:mod:`.precision`, :mod:`.half_weights`) and the files
(:mod:`.checkpoint`) have their own modules.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM

from salmonn_agent.audio import SAMPLE_RATE, AudioInput, load_audio
from salmonn_agent.config import AUDIO_PLACEHOLDER, OfficialConfig, SALMONNConfig, looks_local
from salmonn_agent.errors import ConfigError, PromptTooLongError, SalmonnError
from salmonn_agent.model import checkpoint
from salmonn_agent.model.beats import BEATs, pad_waves
from salmonn_agent.model.generation import GenerationMixin
from salmonn_agent.model.half_weights import halve_linear_weights, merge_lora
from salmonn_agent.model.hints import hears_speech, hint_text
from salmonn_agent.model.inputs import IGNORE_INDEX, EncodedAudio, PromptInputs, merge_text_and_audio
from salmonn_agent.model.lora import add_lora, bare_llm, is_lora_layer, scaled_lora
from salmonn_agent.model.precision import BF16_WEIGHTS, INT8, HALF_WEIGHTS, plan_placement, quantize_int8
from salmonn_agent.model.prompt import PromptTokenizer, render_prompt, split_prompt
from salmonn_agent.model.qformer import WindowQFormer
from salmonn_agent.model.transcript import SpeechTranscriber, join_chunk_texts
from salmonn_agent.model.weight_quant import quantize_linears, quiet_kernel_notice
from salmonn_agent.model.whisper import WhisperFeatures, load_whisper_encoder
from salmonn_agent.sound_tags import SoundTag, SoundTagger

logger = logging.getLogger(__name__)

HINT_TAGS = 3
"""How many YAMNet tags a clip's hint lists (models with ``sound_tags``)."""


@dataclass
class LMOutput:
    """What :meth:`SALMONN.forward` returns.

    With labels: ``loss`` (mean over answer tokens), per-sample ``loss_sum``, ``correct``
    (argmax hits) and ``count`` (answer tokens); ``logits`` is None, as the LM head runs only
    where a label follows. Without labels: ``logits`` ``[B, T, vocab]`` of every position.
    """

    loss: torch.Tensor | None = None
    loss_sum: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    count: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class SALMONN(GenerationMixin, nn.Module):
    """SALMONN: hears 16 kHz audio through Whisper (+ BEATs) and answers with an LLM.

    Build one with :meth:`from_config`, :meth:`from_pretrained` (our format) or
    :meth:`from_official` (the official ``.pth`` files). Generation comes from
    :class:`~salmonn_agent.model.generation.GenerationMixin`.
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
        self.llm = add_lora(llm, config) if config.lora.enabled else llm
        self._lora_layers = [m for m in self.llm.modules() if is_lora_layer(m)]
        self._eos_id = tokenizer.token_id(config.end_sym)
        self._init_generation()
        self.quantized = False  # see quantize_llm
        self.half_weights = False  # see halve_llm_weights
        self.weight_quantization: str | None = None  # see quantize_llm_weights
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
        quantize: str | None = None,
    ) -> "SALMONN":
        """Build the model, loading the frozen Whisper / BEATs / LLM it references
        (``quantize``: the LLM's weights in ``int8``/``int4``, see :meth:`quantize_llm_weights`).

        The trainable parts (Q-Former, projection, LoRA) start freshly initialised; load
        weights with :meth:`from_pretrained` or :meth:`from_official`.
        """
        placed_dtype = plan_placement(device, dtype, quantize)[1]  # a bad option fails before minutes of loading
        config = config.model_copy(update={
            "whisper": _resolve(config.whisper, base_dir),
            "llm": _resolve(config.llm, base_dir),
            "beats": _resolve(config.beats, base_dir) if config.beats else None,
        })
        with quiet_base_loading():
            model = cls._build(config, placed_dtype)
        return place_model(model, device, dtype, quantize)

    @classmethod
    def _build(cls, config: SALMONNConfig, llm_dtype: torch.dtype = torch.float32) -> "SALMONN":
        whisper, llm_path = config.whisper, config.llm
        speech_encoder = load_whisper_encoder(whisper, config.chunk_seconds, torch.float32)
        features = WhisperFeatures.from_pretrained(whisper, config.chunk_seconds)
        beats = None
        if config.beats:
            beats = BEATs.from_checkpoint(config.beats)
        llm = AutoModelForCausalLM.from_pretrained(llm_path, dtype=llm_dtype)
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
        quantize: str | None = None,
    ) -> "SALMONN":
        """Load a model saved with :meth:`save_pretrained` (a local directory or a hub id)."""
        directory, config = checkpoint.read_model_dir(path)
        model = cls.from_config(config, base_dir=directory, device="cpu", dtype=loading_dtype(device, dtype, quantize))
        checkpoint.load_trainable(model, checkpoint.read_weights(directory), repr(str(directory)))
        return place_model(model, device, dtype, quantize)

    @classmethod
    def from_official(
        cls,
        config: OfficialConfig | str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str = torch.float32,
        quantize: str | None = None,
    ) -> "SALMONN":
        """Build SALMONN from an official decode YAML (or its parsed form) and load ``model.ckpt``."""
        load_dtype = loading_dtype(device, dtype, quantize)
        official = config if isinstance(config, OfficialConfig) else OfficialConfig.from_yaml(config)
        if not official.model.ckpt:
            raise ConfigError("The config has no model.ckpt: set it to the SALMONN .pth file.")
        model = cls.from_config(SALMONNConfig.from_official(official), device="cpu", dtype=load_dtype)
        if official.model.speech_llama_proj_model:
            raise ConfigError(
                "model.speech_llama_proj_model initialises the projection for training; for decoding "
                "model.ckpt already holds it. Leave speech_llama_proj_model empty."
            )
        report = checkpoint.load_official_state(model, official.model.ckpt)
        logger.info("loaded %d trainable tensors from %s", report.loaded, report.source)
        return place_model(model, device, dtype, quantize)

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``salmonn_config.json`` and the trainable weights (``model.safetensors``) to ``path``."""
        checkpoint.write_model_dir(self.config, self.trainable_state_dict(), path)

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
            for layer in self._lora_layers:
                layer.train()
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters SALMONN trains (see :func:`salmonn_agent.model.checkpoint.trainable_parameters`)."""
        return checkpoint.trainable_parameters(self)

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return self.projection.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating point type of the model's weights."""
        return self.projection.weight.dtype

    # ----------------------------------------------------------------- precision
    def quantize_llm(self) -> None:
        """Quantize the frozen LLM's linear layers to int8 weights (per output channel) with
        activations quantized on the fly; LoRA, the encoders and the Q-Former stay float32.

        For CPU inference (see :mod:`salmonn_agent.model.precision`); accuracy can suffer, so
        nothing uses it by default. The model can no longer be trained.
        """
        if self.device.type != "cpu":
            raise ConfigError(f"int8 quantization runs on the CPU only; the model is on {self.device}.")
        quantize_int8(bare_llm(self.llm))
        self.quantized = True

    def quantize_llm_weights(self, mode: str, device: torch.device, dtype: torch.dtype) -> None:
        """Quantize the frozen LLM's linear weights to ``mode`` (``int8``/``int4``) on ``device``,
        computing in ``dtype``; LoRA stays a separate adapter at each call's scale, and the LM
        head, the encoders and the Q-Former are not quantized. Call it before moving the model
        (:func:`place_model` does), so the unquantized weights never reach ``device``. See
        :mod:`salmonn_agent.model.weight_quant`. The model can no longer be trained.
        """
        quantize_linears(bare_llm(self.llm), mode, device, dtype)
        self.weight_quantization = mode

    def halve_llm_weights(self, dtype: torch.dtype = torch.float16) -> None:
        """Store the frozen LLM's linear weights in float16 (or bfloat16), computing in float32
        (CPU inference).

        With float16, prefill widens each weight back to float32. LoRA is folded into the weights it adapts
        (:meth:`_sync_merged_lora`); its own matrices, the embedding table, the encoders and the
        Q-Former stay float32. See :mod:`salmonn_agent.model.half_weights`. The model can no
        longer be trained.
        """
        if self.dtype != torch.float32:
            raise ConfigError(f"16-bit weights need a float32 model to start from, not {self.dtype}.")
        halve_linear_weights(bare_llm(self.llm), dtype=dtype)
        self.half_weights = True
        self._sync_merged_lora()

    def _sync_merged_lora(self) -> None:
        """With float16 weights, fold each LoRA layer into its weight at the layer's current
        scale (again only where the scale or adapters changed), so decoding skips the LoRA
        products; see :func:`salmonn_agent.model.half_weights.merge_lora`."""
        if self.half_weights:
            for layer in self._lora_layers:
                merge_lora(layer)

    @contextlib.contextmanager
    def lora_scale(self, scale: float | None) -> Iterator[None]:
        """Every LoRA adapter at ``scale`` inside the block (None: the model's own alpha/rank),
        for one generation call or a training run (activation tuning)."""
        try:
            with scaled_lora(self._lora_layers, scale):
                self._sync_merged_lora()
                yield
        finally:
            self._sync_merged_lora()

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
        counts: list[int] = []
        for clip in clips:
            starts = range(0, max(len(clip), 1), self.chunk_samples)
            chunks += [_pad_to(clip[s : s + self.chunk_samples], int(self.config.min_audio_seconds * SAMPLE_RATE))
                       for s in starts]
            counts.append(len(starts))
        speech, beats = self._chunk_states(chunks)
        tags = [self.tag_clip(clip) for clip in clips]
        # The transcript of a clip YAMNet hears no speech in never reaches the prompt (hint_text):
        # it is not worth a second reading in Whisper's native window.
        readable = [clip if t is None or hears_speech(t) else None for clip, t in zip(clips, tags)]
        texts = self.clip_transcripts(speech, counts, readable)
        return [
            EncodedAudio(
                embeds=tokens,
                seconds=len(clip) / SAMPLE_RATE,
                transcript=None if texts is None else texts[i],
                sound_tags=tags[i],
            )
            for i, (clip, tokens) in enumerate(zip(clips, self.clip_tokens(speech, beats, counts)))
        ]

    def encode_chunks(self, chunks: Sequence[np.ndarray]) -> torch.Tensor:
        """Audio tokens ``[len(chunks), tokens_per_chunk, hidden]`` for chunks of at most one context."""
        speech, beats = self._chunk_states(chunks)
        return self.tokens_from_features(speech, beats)

    def _chunk_states(self, chunks: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        wav, padding = pad_waves(chunks) if self.beats is not None else (None, None)
        return self.encoder_states(self.features(list(chunks)), wav, padding)

    def encoder_states(
        self, mel: torch.Tensor, wav: torch.Tensor | None = None, padding: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """The frozen half of encoding: Whisper's last hidden state ``[chunks, frames, width]`` of
        ``mel``, and with BEATs each chunk's valid BEATs frames ``[n_i, width]`` of the padded
        waves ``wav`` ``[chunks, samples]`` (``padding``: True where padded, see
        :func:`salmonn_agent.model.beats.pad_waves`)."""
        speech = self.speech_encoder(mel.to(self.device, self.dtype)).last_hidden_state
        if self.beats is None:
            return speech, None
        # "exact" masking makes a batched clip's features equal to encoding it alone, which is
        # what upstream's single-clip inference (an all-False mask) computes.
        features, frame_padding = self.beats.extract_features(
            wav.to(self.device, self.dtype), padding_mask=padding.to(self.device), mask_mode="exact"
        )
        if frame_padding is None:
            return speech, list(features)
        return speech, [features[row, : int(n)] for row, n in enumerate((~frame_padding).sum(1).tolist())]

    def clip_tokens(
        self, speech: torch.Tensor, beats: Sequence[torch.Tensor] | None, counts: Sequence[int]
    ) -> list[torch.Tensor]:
        """Each clip's audio tokens ``[tokens, hidden]`` from the encoder states of all chunks
        (``counts``: chunks per clip, in order), in one Q-Former pass."""
        tokens = self.tokens_from_features(speech, beats)
        return [t.reshape(-1, t.shape[-1]) for t in torch.split(tokens, list(counts))]

    def clip_transcripts(
        self, speech: torch.Tensor, counts: Sequence[int], clips: Sequence[np.ndarray | None] | None = None
    ) -> list[str] | None:
        """Whisper's transcript of each clip from the encoder states of all chunks ``[chunks,
        frames, width]`` (``counts``: chunks per clip, in order); None when the model is not
        configured with ``speech_transcript``. Given the ``clips`` themselves, a clip longer than
        one chunk or with a looped transcript is transcribed again in Whisper's native window
        (see :mod:`salmonn_agent.model.transcript`); a clip given as None keeps its chunks' text."""
        if self.transcriber is None:
            return None
        texts = join_chunk_texts(self.transcriber.transcribe(speech.detach()), counts)
        if clips is not None:
            again = [i for i, text in enumerate(texts)
                     if clips[i] is not None and self.transcriber.retranscribes(text, counts[i])]
            if again:
                for i, text in zip(again, self.transcriber.transcribe_native([clips[i] for i in again])):  # type: ignore[misc]
                    texts[i] = text
        return texts

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

    # ----------------------------------------------------------------- prompting
    def render_prompt(self, instruction: str) -> str:
        """The model's single-turn prompt around ``instruction`` (the official template for SALMONN)."""
        return render_prompt(self.config.prompt_template, instruction)

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

    def merge_inputs(
        self,
        prompts: Sequence[str],
        audios: Sequence[Sequence[EncodedAudio]],
        *,
        answers: Sequence[list[int]] | None = None,
        padding_side: Literal["left", "right"] = "left",
    ) -> PromptInputs:
        """The LLM input of rendered prompts with their ``<SpeechHere>`` placeholders filled by
        the clips' audio tokens and hints, then each answer's ids (labelled) if given; see
        :func:`salmonn_agent.model.inputs.merge_text_and_audio`."""
        pieces = [self.prompt_piece_ids(prompt) for prompt in prompts]
        for sample_pieces, clips in zip(pieces, audios, strict=True):
            if len(sample_pieces) - 1 != len(clips):
                raise SalmonnError(
                    f"The prompt has {len(sample_pieces) - 1} {AUDIO_PLACEHOLDER} placeholders but "
                    f"{len(clips)} audio clips were given; give one clip per placeholder."
                )
        return merge_text_and_audio(
            self.llm.get_input_embeddings(), pieces,
            [[c.embeds for c in clips] for clips in audios],
            [[self.hint_ids(c.transcript, c.sound_tags) for c in clips] for clips in audios],
            answers=answers, padding_side=padding_side,
        )

    def embed_prompts(
        self, prompts: Sequence[str], audios: Sequence[Sequence[EncodedAudio]]
    ) -> PromptInputs:
        """Embed prompts with ``<SpeechHere>`` placeholders filled by audio tokens, left-padded
        (for generation)."""
        return self.merge_inputs(prompts, audios)

    def answer_ids(self, text: str, max_tokens: int) -> list[int]:
        """Token ids of an answer plus the end symbol, cut at ``max_tokens`` (upstream's truncation)."""
        return (self.tokenizer.encode(text) + [self._eos_id])[:max_tokens]

    def forward(
        self,
        prompts: Sequence[str],
        audios: Sequence[Sequence[EncodedAudio]],
        labels: Sequence[list[int]] | None = None,
    ) -> LMOutput:
        """Run the LLM over rendered prompts with their clips (right-padded).

        ``labels`` are each prompt's answer ids (:meth:`answer_ids`), appended after it: then the
        output holds the next-token cross entropy on them and their token accuracy, computed
        on the answer positions only. Without labels, the logits of every position.
        """
        inputs = self.merge_inputs(prompts, audios, answers=labels, padding_side="right")
        lm = bare_llm(self.llm)
        hidden = lm.get_decoder()(inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask).last_hidden_state
        if inputs.labels is None:
            return LMOutput(logits=lm.get_output_embeddings()(hidden))
        return answer_loss(hidden, inputs.labels, lm.get_output_embeddings())


# --------------------------------------------------------------------- helpers
def answer_loss(hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module) -> LMOutput:
    """Next-token cross entropy on the labelled positions, and token accuracy.

    ``hidden`` is the decoder's last hidden state; ``head`` (the LM head) runs only where a
    label follows: over every prompt and audio position it would be a large share of a
    training step and change nothing in the loss.
    """
    shift_labels = labels[:, 1:]
    valid = shift_labels != IGNORE_INDEX
    rows, cols = valid.nonzero(as_tuple=True)
    logits = head(hidden[:, :-1][rows, cols]).float()
    targets = shift_labels[rows, cols]
    losses = F.cross_entropy(logits, targets, reduction="none")
    batch = labels.shape[0]
    loss_sum = losses.new_zeros(batch).index_add(0, rows, losses)
    hits = (logits.argmax(-1) == targets).long()
    correct = torch.zeros(batch, dtype=torch.long, device=labels.device).index_add(0, rows, hits)
    count = valid.sum(1)
    loss = losses.sum() / count.sum().clamp(min=1)
    return LMOutput(loss, loss_sum.detach(), correct.detach(), count.detach())


def place_model(
    model: SALMONN, device: str | torch.device | None, dtype: torch.dtype | str, quantize: str | None = None
) -> SALMONN:
    """Move a freshly loaded model to ``device`` in ``dtype`` (``int8``: see
    :meth:`SALMONN.quantize_llm`; ``float16-weights`` / ``bfloat16-weights``:
    :meth:`SALMONN.halve_llm_weights`; ``auto``: one of those two on a CPU, see
    :func:`~salmonn_agent.model.precision.cpu_weights`, ``float32`` elsewhere), with the LLM's weights
    quantized to ``quantize`` (``int8``/``int4``, :meth:`SALMONN.quantize_llm_weights`) on the way."""
    target, torch_dtype, conversion = plan_placement(device, dtype, quantize)
    if quantize is not None:
        model.quantize_llm_weights(quantize, target, torch_dtype)
    model = model.to(device=target, dtype=torch_dtype)
    if conversion == INT8:
        model.quantize_llm()
    elif conversion in (HALF_WEIGHTS, BF16_WEIGHTS):
        model.halve_llm_weights(torch.bfloat16 if conversion == BF16_WEIGHTS else torch.float16)
    return model


def loading_dtype(device: str | torch.device | None, dtype: torch.dtype | str, quantize: str | None) -> torch.dtype:
    """The dtype to read the LLM in on the CPU before placing (:func:`place_model`):
    float16 or bfloat16 when the placed model computes in it (half the CPU memory of float32
    while loading a big LLM), else float32; also checks the options before any loading."""
    placed = plan_placement(device, dtype, quantize)[1]
    return placed if placed in (torch.float16, torch.bfloat16) else torch.float32


@contextlib.contextmanager
def quiet_base_loading() -> Iterator[None]:
    """Keep transformers' per-model "Loading weights" bars, peft's use of a deprecated
    transformers helper (a FutureWarning) and bitsandbytes' optional-kernel notice off the
    user's terminal while the base parts load; transformers' progress-bar setting is restored
    afterwards."""
    from transformers.utils import logging as hf_logging

    quiet_kernel_notice()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


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
