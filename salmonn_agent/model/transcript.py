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

import torch
from torch import nn
from transformers import WhisperForConditionalGeneration, WhisperTokenizer
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import logging as hf_logging

from salmonn_agent.model.generation import _CACHE_KWARG

MAX_TOKENS_PER_CHUNK = 120
"""Decoding limit per encoder chunk: 30 s of fast speech is about 100 Whisper tokens."""


class SpeechTranscriber(nn.Module):
    """Whisper's decoder and LM head, reading encoder states another module computed."""

    def __init__(
        self, whisper: WhisperForConditionalGeneration, tokenizer: WhisperTokenizer, encoder: nn.Module
    ) -> None:
        super().__init__()
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
        return cls(whisper.eval(), WhisperTokenizer.from_pretrained(name_or_path), encoder)

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
