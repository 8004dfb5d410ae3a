"""Whisper's own transcript beside the audio tokens (the DeSTA2 design, an option of the config).

SALMONN hears speech only through its audio tokens. A small model trained on little data
(salmonn-mini) does not learn to read words from them well enough for real voices, while
Whisper's own decoder, over the very same encoder states, transcribes them well. With
``SALMONNConfig.speech_transcript`` set, every clip is also decoded by Whisper (greedy, per
encoder chunk) and the transcript follows the clip's audio tokens in the prompt as text (see
:mod:`salmonn_agent.model.hints`). The LLM then answers from both: the words from the
transcript, everything else (sounds, voice, music, whether anyone speaks at all) from the audio
tokens. The official SALMONN models never use it.

The decoder runs on the encoder states SALMONN computes anyway (one encoder pass), so the cost
is the decoding alone. The shortened encoder context (see ``whisper.shorten_encoder_context``)
feeds the decoder unchanged: its cross-attention takes any number of encoder frames.

With a shortened encoder context (salmonn-mini's 10 s), Whisper's decoder falls into its
repetition loop on some clips ("Press 1 to call this number. Press 1 to call this number. ...")
and a clip longer than one chunk is cut mid-word at each chunk's end; on Whisper's native 30 s
window the same clips come out right. So a clip longer than one chunk, or one whose transcript
:func:`looks_looped`, is transcribed again from its own log-mel in native 30 s windows, through
a view of the same encoder with its full position table (:func:`~salmonn_agent.model.whisper.encoder_view`):
an extra encoder pass for those clips only, none for the short clean clips of a voice assistant,
and none where YAMNet hears no speech (the prompt then says ``(no speech)`` whatever Whisper wrote).

English-only Whisper models are decoded by a greedy loop written here rather than by
``generate``: the transcript is on the voice assistant's path from the end of speech to the
answer, and ``generate``'s per-step machinery (logits processors, stopping criteria, cache
bookkeeping) weighs on every step of tiny.en's small decoder on a CPU (docs/model-card.md,
"Speed", has the measured gain). The loop applies the
same rules ``generate`` applies for these models without timestamps (start with
``<|startoftranscript|><|notimestamps|>``, ``suppress_tokens`` at every step,
``begin_suppress_tokens`` at the first), so the tokens are the same (tested). Multilingual
models, which need language and task tokens, go through ``generate``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers import WhisperForConditionalGeneration, WhisperTokenizer
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import logging as hf_logging

from salmonn_agent.model.generation import _CACHE_KWARG
from salmonn_agent.model.whisper import ENCODER_FRAMES_PER_SECOND, WhisperFeatures, encoder_view

MAX_TOKENS_PER_CHUNK = 120
"""Decoding limit per encoder chunk: 30 s of fast speech is about 100 Whisper tokens."""
LOOP_COMPRESSION_RATIO = 2.4
"""openai-whisper's test for a repetition loop: text that zlib compresses more than this."""
LOOP_PHRASE_WORDS = 3
"""The shortest phrase that, said twice in a row, marks a transcript as looped."""


def looks_looped(text: str) -> bool:
    """Whether a transcript shows Whisper's repetition loop: a phrase of at least
    :data:`LOOP_PHRASE_WORDS` words twice in a row, or text that compresses more than
    :data:`LOOP_COMPRESSION_RATIO` (openai-whisper's own test)."""
    raw = text.encode("utf-8")
    if raw and len(raw) / len(zlib.compress(raw)) > LOOP_COMPRESSION_RATIO:
        return True
    words = re.findall(r"[\w']+", text.lower())
    for size in range(LOOP_PHRASE_WORDS, len(words) // 2 + 1):
        if any(words[i : i + size] == words[i + size : i + 2 * size] for i in range(len(words) - 2 * size + 1)):
            return True
    return False


def join_chunk_texts(texts: Sequence[str], counts: Sequence[int]) -> list[str]:
    """Each clip's transcript from its chunks' transcripts (``counts``: chunks per clip, in order)."""
    firsts = np.cumsum([0, *counts])
    return [" ".join(t for t in (t.strip() for t in texts[firsts[i] : firsts[i + 1]]) if t) for i in range(len(counts))]


class SpeechTranscriber(nn.Module):
    """Whisper's decoder and LM head, reading encoder states another module computed."""

    def __init__(
        self, whisper: WhisperForConditionalGeneration, tokenizer: WhisperTokenizer, encoder: nn.Module,
        native_features: WhisperFeatures | None = None,
    ) -> None:
        """``native_features``: log-mel of Whisper's native window, for the clips transcribed again
        there (see the module docstring); without it every transcript comes from the given states."""
        super().__init__()
        own = whisper.model.encoder
        self.native_features = None
        self._native_config = own.config
        self._native_view: nn.Module | None = None  # built on first use (_native_encoder)
        if native_features is not None and encoder.config.max_source_positions < own.config.max_source_positions:
            self.native_features = native_features
            # A buffer, not a parameter: it follows .to() but stays out of state_dict (not trained, not saved).
            self.register_buffer("native_positions", own.embed_positions.weight.detach().clone(), persistent=False)
        # SALMONN's speech encoder computes the states; Whisper's generate only reads its conv
        # strides. It is shared, not owned: kept out of this module's parameters (and state_dict)
        # so the encoder's weights are not registered twice.
        del whisper.model.encoder
        object.__setattr__(whisper.model, "encoder", encoder)
        # The saved generation config carries max_length (448); the limit here is max_new_tokens.
        whisper.generation_config.max_length = None
        self.whisper = whisper
        self.tokenizer = tokenizer
        self.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, name_or_path: str, encoder: nn.Module) -> "SpeechTranscriber":
        """Load Whisper's decoder from the Whisper model that SALMONN's ``encoder`` came from."""
        whisper = WhisperForConditionalGeneration.from_pretrained(name_or_path, dtype=torch.float32)
        native = WhisperFeatures.from_pretrained(name_or_path, whisper.config.max_source_positions / ENCODER_FRAMES_PER_SECOND)
        return cls(whisper.eval(), WhisperTokenizer.from_pretrained(name_or_path), encoder, native)

    def retranscribes(self, transcript: str, chunks: int) -> bool:
        """Whether a clip of ``chunks`` encoder chunks with this transcript is transcribed again in
        Whisper's native window (see the module docstring)."""
        return self.native_features is not None and (chunks > 1 or looks_looped(transcript))

    @torch.no_grad()
    def transcribe_native(self, clips: Sequence[np.ndarray]) -> list[str]:
        """Transcripts of whole 16 kHz clips in Whisper's native window: each clip cut into
        windows of that length, decoded greedily, the pieces joined."""
        if self.native_features is None:
            raise ValueError("this transcriber reads Whisper's native window already; use transcribe()")
        size = self.native_features.chunk_samples
        pieces = [clip[s : s + size] for clip in clips for s in range(0, max(len(clip), 1), size)]
        counts = [len(range(0, max(len(clip), 1), size)) for clip in clips]
        encoder = self._native_encoder()
        weight = self.native_positions
        mel = self.native_features(pieces).to(weight.device, weight.dtype)
        return join_chunk_texts(self.transcribe(encoder(mel).last_hidden_state), counts)

    def _native_encoder(self) -> nn.Module:
        """The shared encoder with Whisper's full position table, rebuilt when the table moved."""
        table = self.native_positions
        view = self._native_view
        if view is None or view.embed_positions.weight.data_ptr() != table.data_ptr():
            view = encoder_view(self.whisper.model.encoder, table, self._native_config)
            object.__setattr__(self, "_native_view", view)  # not a submodule: it owns no weights
        return view

    @torch.no_grad()
    def transcribe(self, states: torch.Tensor) -> list[str]:
        """Greedy transcripts of each chunk: ``states`` is the encoder output ``[chunks, frames, width]``."""
        if states.shape[0] == 0:
            return []
        states = states.to(self.whisper.proj_out.weight.dtype)
        ids = self._generate(states) if self.whisper.generation_config.is_multilingual else self.greedy_ids(states)
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def greedy_ids(self, states: torch.Tensor) -> torch.Tensor:
        """Greedy token ids ``[chunks, steps]`` of an English-only model, without timestamps (see the
        module docstring); finished rows continue with end-of-text tokens."""
        config = self.whisper.generation_config
        rows = states.shape[0]
        step_ids = torch.tensor([[config.decoder_start_token_id, config.no_timestamps_token_id]] * rows,
                                device=states.device)
        suppress = torch.tensor(config.suppress_tokens or [], dtype=torch.long, device=states.device)
        suppress_first = torch.tensor(config.begin_suppress_tokens or [], dtype=torch.long, device=states.device)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        done = torch.zeros(rows, dtype=torch.bool, device=states.device)
        generated: list[torch.Tensor] = []
        for step in range(MAX_TOKENS_PER_CHUNK):
            hidden = self.whisper.model.decoder(
                input_ids=step_ids, encoder_hidden_states=states, use_cache=True, **{_CACHE_KWARG: cache}
            ).last_hidden_state
            logits = self.whisper.proj_out(hidden[:, -1]).float()
            logits[:, suppress] = -torch.inf
            if step == 0:
                logits[:, suppress_first] = -torch.inf
            token = torch.where(done, config.eos_token_id, logits.argmax(-1))
            generated.append(token)
            done |= token == config.eos_token_id
            if bool(done.all()):
                break
            step_ids = token[:, None]
        return torch.stack(generated, dim=1)

    def _generate(self, states: torch.Tensor) -> torch.Tensor:
        # Whisper's generate logs advice meant for its own callers (attention masks of equal-length
        # start tokens, max_length defaults) on every call: not the user's concern here.
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            return self.whisper.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=states),
                max_new_tokens=MAX_TOKENS_PER_CHUNK,
                num_beams=1,
                do_sample=False,
            )
        finally:
            hf_logging.set_verbosity(level)
