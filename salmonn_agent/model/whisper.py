"""The Whisper speech encoder and its log-mel features, from transformers.

SALMONN uses only Whisper's encoder. transformers' ``WhisperEncoder`` accepts exactly
``max_source_positions * 2`` mel frames (30 s for the released models); a shorter context is
made here by copying the config with fewer positions and slicing the position table, which
keeps the pretrained weights intact for the first ``chunk_seconds`` seconds.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn
from transformers import WhisperFeatureExtractor, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from salmonn_agent.audio import SAMPLE_RATE

logger = logging.getLogger(__name__)

ENCODER_FRAMES_PER_SECOND = 50
"""Whisper's encoder emits one frame per 20 ms (the mel hop of 10 ms, halved by conv2's stride)."""


def load_whisper_encoder(
    name_or_path: str, chunk_seconds: float = 30.0, dtype: torch.dtype = torch.float32
) -> WhisperEncoder:
    """Load Whisper's encoder (hub id or local directory), cut to ``chunk_seconds`` of context."""
    whisper = WhisperModel.from_pretrained(name_or_path, dtype=dtype)
    encoder = whisper.encoder
    del whisper  # the decoder is not needed
    return shorten_encoder_context(encoder, chunk_seconds)


def shorten_encoder_context(encoder: WhisperEncoder, chunk_seconds: float) -> WhisperEncoder:
    """Make ``encoder`` accept ``chunk_seconds`` of audio by slicing its position embeddings."""
    positions = int(round(chunk_seconds * ENCODER_FRAMES_PER_SECOND))
    full = encoder.config.max_source_positions
    if positions > full:
        raise ValueError(
            f"chunk_seconds={chunk_seconds} needs {positions} encoder positions but this "
            f"Whisper has {full}; use at most {full / ENCODER_FRAMES_PER_SECOND:g} s."
        )
    if positions == full:
        return encoder
    config = copy.deepcopy(encoder.config)
    config.max_source_positions = positions
    table = encoder.embed_positions.weight.data[:positions].clone()
    encoder.embed_positions = nn.Embedding(positions, table.shape[1], _weight=table)
    encoder.embed_positions.requires_grad_(False)
    encoder.config = config
    encoder.max_source_positions = positions
    return encoder


def encoder_view(encoder: WhisperEncoder, positions: torch.Tensor, config: object) -> WhisperEncoder:
    """A Whisper encoder that shares ``encoder``'s convolutions, layers and norm but adds the
    position table ``positions`` (``[frames, width]``), so it reads ``frames * 2`` mel frames:
    the native 30 s context of an encoder that :func:`shorten_encoder_context` cut. No weight
    is copied; ``config`` is the config that goes with the table."""
    view = copy.copy(encoder)
    # nn.Module keeps its children in dicts that a shallow copy shares: give the view its own.
    view._modules = dict(encoder._modules)
    view._parameters = dict(encoder._parameters)
    view._buffers = dict(encoder._buffers)
    view.embed_positions = nn.Embedding(positions.shape[0], positions.shape[1], _weight=positions)
    view.embed_positions.requires_grad_(False)
    view.config = config
    view.max_source_positions = positions.shape[0]
    return view


class WhisperFeatures:
    """Computes Whisper's log-mel input for fixed-length chunks of 16 kHz audio."""

    def __init__(self, extractor: WhisperFeatureExtractor, chunk_seconds: float) -> None:
        self.extractor = copy.deepcopy(extractor)
        # WhisperFeatureExtractor pads/cuts to chunk_length seconds; set it to our chunk size.
        samples = int(round(chunk_seconds * SAMPLE_RATE))
        self.extractor.chunk_length = chunk_seconds
        self.extractor.n_samples = samples
        self.extractor.nb_max_frames = samples // self.extractor.hop_length
        self.chunk_samples = samples

    @classmethod
    def from_pretrained(cls, name_or_path: str, chunk_seconds: float = 30.0) -> "WhisperFeatures":
        """Load the feature extractor saved beside a Whisper model (hub id or directory)."""
        return cls(WhisperFeatureExtractor.from_pretrained(name_or_path), chunk_seconds)

    @property
    def num_mel_bins(self) -> int:
        """Mel bands per frame (80 for large-v2 and tiny, 128 for large-v3)."""
        return int(self.extractor.feature_size)

    def __call__(self, chunks: list[np.ndarray]) -> torch.Tensor:
        """Return log-mel features ``[len(chunks), mel_bins, frames]``, each chunk zero-padded."""
        out = self.extractor(
            chunks,
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            padding="max_length",
            max_length=self.chunk_samples,
            truncation=True,
        )
        return out["input_features"]
