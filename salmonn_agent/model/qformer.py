"""SALMONN's window-level Q-Former, on transformers' ``Blip2QFormerModel``.

Encoder frames are cut into windows of ``kernel`` frames (17 frames ≈ 0.33 s for the
official models) and each window is summarised by ``num_query_tokens`` learned queries.
``Blip2QFormerModel`` without text input has exactly the modules SALMONN keeps (embedding
LayerNorm with no word/position embeddings; per layer self-attention, cross-attention and the
query feed-forward), only under other names: :func:`official_to_ours` maps them.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from salmonn_agent.config import QFormerConfig
from salmonn_agent.model.whisper import ENCODER_FRAMES_PER_SECOND

# Official (BERT-style, LAVIS) names under `speech_Qformer.bert.` → names in Blip2QFormerModel.
_OFFICIAL_RENAMES = (
    ("embeddings.LayerNorm.", "layernorm."),
    (".attention.self.", ".attention.attention."),
    (".crossattention.self.", ".crossattention.attention."),
)


def window_frames(seconds: float) -> int:
    """Frames per window (or stride) the way upstream computes it: round(1500 * s / 30)."""
    return round(ENCODER_FRAMES_PER_SECOND * 30 * seconds / 30.0)


class WindowQFormer(nn.Module):
    """Turns encoder frames ``[B, T, C]`` into audio tokens ``[B, windows * queries, hidden]``."""

    def __init__(
        self,
        config: QFormerConfig,
        encoder_width: int,
        second_per_window: float = 0.333333,
        second_stride: float = 0.333333,
    ) -> None:
        super().__init__()
        self.kernel = window_frames(second_per_window)
        self.stride = window_frames(second_stride)
        if self.kernel < 1 or self.stride < 1:
            raise ValueError("second_per_window and second_stride must cover at least one frame")
        self.qformer = Blip2QFormerModel(
            Blip2QFormerConfig(
                hidden_size=config.hidden_size,
                num_hidden_layers=config.num_hidden_layers,
                num_attention_heads=config.num_attention_heads,
                intermediate_size=config.intermediate_size,
                hidden_act="gelu",
                layer_norm_eps=1e-12,
                cross_attention_frequency=1,
                encoder_hidden_size=encoder_width,
                use_qformer_text_input=False,
                hidden_dropout_prob=config.dropout,
                attention_probs_dropout_prob=config.dropout,
            )
        )
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, config.hidden_size))
        nn.init.normal_(self.query_tokens, std=0.02)

    def num_windows(self, frames: int) -> int:
        """How many windows ``frames`` encoder frames give (88 for 1500 frames)."""
        if frames < self.kernel:
            return 0
        return (frames - self.kernel) // self.stride + 1

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Summarise each window of ``frames`` [B, T, C] into query outputs [B, W * Q, hidden]."""
        batch, _, width = frames.shape
        windows = frames.unfold(1, self.kernel, self.stride)  # [B, W, C, kernel]
        count = windows.shape[1]
        windows = windows.permute(0, 1, 3, 2).reshape(batch * count, self.kernel, width)
        queries = self.query_tokens.expand(windows.shape[0], -1, -1)
        hidden = self.qformer(query_embeds=queries, encoder_hidden_states=windows).last_hidden_state
        return hidden.reshape(batch, count * hidden.shape[1], hidden.shape[2])


def official_to_ours(name: str) -> str:
    """Map a parameter name under ``speech_Qformer.bert.`` to the ``Blip2QFormerModel`` name."""
    for old, new in _OFFICIAL_RENAMES:
        name = name.replace(old, new)
    return name


def ours_to_official(name: str) -> str:
    """Inverse of :func:`official_to_ours`."""
    for old, new in _OFFICIAL_RENAMES:
        name = name.replace(new, old)
    return name
