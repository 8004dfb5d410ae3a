"""What the LLM reads: prompt text embeddings with each clip's audio tokens merged in.

One function, :func:`merge_text_and_audio`, builds every LLM input from token ids and audio
tokens: left-padded for generation (``SALMONN.embed_prompts``) and right-padded with labels for
training (``SALMONN.forward``). A sample is ``text_0 <clip_0> hint_0 text_1 <clip_1> hint_1 ...
text_n [answer]``: each clip's audio tokens, then its hint (the transcript and sound tags as text,
see :mod:`salmonn_agent.model.hints`), and the answer's ids last when training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from salmonn_agent.sound_tags import SoundTag

IGNORE_INDEX = -100
"""The label of positions the loss skips (everything but the answer)."""


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
    """A padded batch for the LLM: embeddings, attention mask, labels and per-item lengths."""

    embeds: torch.Tensor
    attention_mask: torch.Tensor
    text_tokens: list[int]
    audio_tokens: list[int]
    head_tokens: list[int]
    """Per item, the text positions before its first clip (0 without audio)."""
    labels: torch.Tensor | None = None
    """With answers: their ids at their positions, :data:`IGNORE_INDEX` elsewhere."""


def merge_text_and_audio(
    embed: nn.Module,
    pieces: Sequence[Sequence[list[int]]],
    clips: Sequence[Sequence[torch.Tensor]],
    hints: Sequence[Sequence[list[int]]],
    *,
    answers: Sequence[list[int]] | None = None,
    padding_side: Literal["left", "right"] = "left",
) -> PromptInputs:
    """Embed each sample's text pieces (``len(clips) + 1`` of them) with its clips' audio tokens
    ``[n, hidden]`` and hint ids between them, then its answer ids (labels) if given; pad the
    batch with zeros on ``padding_side``."""
    weight = embed.weight
    device, dtype = weight.device, weight.dtype
    rows: list[torch.Tensor] = []
    label_rows: list[torch.Tensor] = []
    text_counts: list[int] = []
    head_counts: list[int] = []
    for index, (sample_pieces, sample_clips, sample_hints) in enumerate(zip(pieces, clips, hints, strict=True)):
        parts: list[torch.Tensor] = []
        text_total = 0
        for position, piece_ids in enumerate(sample_pieces):
            text_total += len(piece_ids)
            if piece_ids:
                parts.append(embed(torch.tensor(piece_ids, device=device)))
            if position < len(sample_clips):
                parts.append(sample_clips[position].to(device, dtype))
                hint = sample_hints[position]
                if hint:
                    parts.append(embed(torch.tensor(hint, device=device)))
                    text_total += len(hint)
        answer = answers[index] if answers is not None else []
        if answer:
            parts.append(embed(torch.tensor(answer, device=device)))
        rows.append(torch.cat(parts))
        text_counts.append(text_total)
        head_counts.append(len(sample_pieces[0]) if sample_clips else 0)
        label = torch.full((rows[-1].shape[0],), IGNORE_INDEX, dtype=torch.long, device=device)
        if answer:
            label[-len(answer):] = torch.tensor(answer, dtype=torch.long, device=device)
        label_rows.append(label)
    longest = max(r.shape[0] for r in rows)
    embeds = torch.zeros(len(rows), longest, rows[0].shape[1], device=device, dtype=dtype)
    mask = torch.zeros(len(rows), longest, device=device, dtype=torch.long)
    labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long, device=device)
    for i, (row, label) in enumerate(zip(rows, label_rows)):
        span = slice(longest - row.shape[0], longest) if padding_side == "left" else slice(0, row.shape[0])
        embeds[i, span] = row
        mask[i, span] = 1
        labels[i, span] = label
    audio_counts = [sum(int(c.shape[0]) for c in sample) for sample in clips]
    return PromptInputs(embeds, mask, text_counts, audio_counts, head_counts,
                        labels if answers is not None else None)
