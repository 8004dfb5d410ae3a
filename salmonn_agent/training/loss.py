"""The training step's module: frozen encoders → trainable Q-Former/projection → LLM loss.

Encoding is split in two: :func:`frozen_features` (``SALMONN.encoder_states``: Whisper's last
hidden state and BEATs' features, no gradients, cacheable) and ``SALMONN.clip_tokens`` (layer
norms, Q-Former and projection, with gradients). The LLM input is upstream's: ``[BOS] + prompt
before <SpeechHere> + audio tokens + prompt after + target text + end_sym``, right-padded, and
the loss covers only target + end_sym: ``SALMONN.forward`` with labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from salmonn_agent.model.inputs import EncodedAudio
from salmonn_agent.sound_tags import SoundTag
from salmonn_agent.training.data import Batch


@torch.no_grad()
def frozen_features(model: nn.Module, batch: Batch) -> tuple[list[torch.Tensor], list[list[torch.Tensor]] | None]:
    """Per sample: Whisper states ``[chunks, frames, width]`` and (with BEATs) per-chunk features.

    Cached samples bring theirs; the others go through the frozen encoders together.
    """
    device, dtype = model.device, model.dtype
    speech_fresh = beats_fresh = None
    if batch.mel is not None:
        speech_fresh, beats_fresh = model.encoder_states(batch.mel, batch.raw_wav, batch.padding_mask)
    speech: list[torch.Tensor] = []
    beats: list[list[torch.Tensor]] | None = [] if model.beats is not None else None
    row = 0
    for sample in batch.samples:
        n = sample["n_chunks"]
        if "cached" in sample:
            speech.append(sample["cached"]["speech"].to(device, dtype))
            if beats is not None:
                beats.append([b.to(device, dtype) for b in sample["cached"]["beats"]])
        else:
            speech.append(speech_fresh[row : row + n])
            if beats is not None:
                beats.append(beats_fresh[row : row + n])
            row += n
    return speech, beats


@dataclass
class StepOutput:
    """Loss (token mean) plus per-sample sums for metrics, and each sample's audio tokens."""

    loss: torch.Tensor
    loss_sum: torch.Tensor  # [B] summed token losses
    correct: torch.Tensor  # [B] argmax hits on target tokens
    count: torch.Tensor  # [B] target tokens
    tokens: list[torch.Tensor]
    hyps: list[str] | None = None  # per-sample transcripts when the objective decodes for free (CTC)


class SALMONNForTraining(nn.Module):
    """Wraps SALMONN with a ``forward`` from frozen features to the loss (what DDP/FSDP wrap and call)."""

    def __init__(self, model: nn.Module, max_txt_len: int = 300) -> None:
        super().__init__()
        self.model = model
        self.max_txt_len = max_txt_len

    def forward(self, speech: list[torch.Tensor], beats: list[list[torch.Tensor]] | None,
                prompts: list[str], texts: list[str], transcripts: list[str] | None = None,
                tags: list[list[SoundTag]] | None = None) -> StepOutput:
        """``transcripts`` / ``tags``: each clip's Whisper transcript and YAMNet tags, for a model
        with ``speech_transcript`` or ``sound_tags`` (they become the clip's hint)."""
        model = self.model
        tokens = audio_tokens(model, speech, beats)
        clips = [[clip] for clip in encoded_clips(tokens, transcripts, tags)]
        labels = [model.answer_ids(t, self.max_txt_len) for t in texts]
        out = model(prompts, clips, labels=labels)
        return StepOutput(out.loss, out.loss_sum, out.correct, out.count, tokens)


def audio_tokens(model: nn.Module, speech: list[torch.Tensor], beats: list[list[torch.Tensor]] | None) -> list[torch.Tensor]:
    """Each sample's audio tokens ``[tokens, hidden]`` from its per-sample encoder states."""
    flat_beats = [b for per in beats for b in per] if beats is not None else None
    return model.clip_tokens(torch.cat(speech), flat_beats, [s.shape[0] for s in speech])


def encoded_clips(tokens: list[torch.Tensor], transcripts: list[str] | None,
                  tags: list[list[SoundTag]] | None) -> list[EncodedAudio]:
    """Each sample's clip as the model reads it: its audio tokens with its transcript and tags."""
    return [EncodedAudio(t, 0.0, transcripts[i] if transcripts is not None else None,
                         tuple(tags[i]) if tags is not None else None) for i, t in enumerate(tokens)]
