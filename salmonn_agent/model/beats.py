"""BEATs audio encoder (iter3+ AS2M), written for salmonn-agent, loading the official checkpoint.

SALMONN hears non-speech audio through BEATs. The pipeline, from a 16 kHz waveform in [-1, 1]:

1. scale by 2**15 and take 128-bin Kaldi log mel filterbanks (25 ms frames every 10 ms), then
   normalise with ``(x - 15.41663) / (2 * 6.55582)``;
2. cut the ``[frames, 128]`` image into 16x16 patches (a strided Conv2d), flatten them time-major
   (8 frequency patches per 16 frames, so about 50 patches a second), LayerNorm, project to the
   encoder width;
3. add a convolutional position embedding (weight-normed grouped Conv1d, GELU);
4. run post-LayerNorm transformer layers with DeepNorm residual scaling and T5-style relative
   position buckets, whose bias is computed once and gated per layer by the query (``grep_*``).

The module's parameter names are the official ones, so ``ckpt['model']`` loads strictly and
``state_dict()`` gives the same names back. The numerics follow Microsoft's reference code
(unilm/beats, as vendored by SALMONN); see :meth:`BEATs.extract_features` for padding masks.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from salmonn_agent.audio import SAMPLE_RATE
from salmonn_agent.errors import AudioError, CheckpointError, ConfigError
from salmonn_agent.model.fbank import frame_geometry, kaldi_fbank, num_frames

logger = logging.getLogger(__name__)

NUM_MEL_BINS = 128
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
WAVEFORM_SCALE = 2.0**15
"""Waveforms in [-1, 1] are scaled to 16-bit range before the filterbank, as Kaldi expects."""

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
"""Filterbank statistics BEATs was trained with; features are ``(x - mean) / (2 * std)``."""

_ATTENTION_ALPHA = 32.0
"""Logits are computed at 1/32 scale and the row maximum subtracted before scaling back, as the
reference does to keep half-precision attention from overflowing."""

MaskMode = Literal["upstream", "exact"]

_ACTIVATIONS = ("gelu", "gelu_accurate", "relu", "tanh", "linear")


class BEATsConfig(BaseModel):
    """Every field of the reference ``BEATsConfig``, with its defaults.

    Real values come from the checkpoint's ``cfg`` dict (see :meth:`from_checkpoint_cfg`); the
    defaults alone do not describe a usable model (``input_patch_size`` is -1 until set).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_patch_size: int = -1
    """Side of the square patches cut from the filterbank image (16 in released checkpoints)."""
    embed_dim: int = 512
    """Width of the patch embedding."""
    conv_bias: bool = False
    """Whether the patch embedding has a bias."""

    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    """Feed-forward activation: gelu, gelu_accurate, relu, tanh or linear (glu is refused)."""

    layer_wise_gradient_decay_ratio: float = 1.0
    """Gradients are multiplied by this at every layer input during training."""
    layer_norm_first: bool = False
    """Pre-LayerNorm layers (False: post-LayerNorm, as in released checkpoints)."""
    deep_norm: bool = False
    """DeepNorm: residuals scaled by ``(2 * encoder_layers) ** 0.25`` (post-LayerNorm only)."""

    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.0
    dropout_input: float = 0.0

    conv_pos: int = 128
    """Kernel size of the convolutional position embedding."""
    conv_pos_groups: int = 16

    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False
    """Gate the relative position bias with the query (the ``grep_linear`` / ``grep_a`` weights)."""

    finetuned_model: bool = False
    """Fine-tuned checkpoints (such as AS2M) carry a linear ``predictor`` head."""
    predictor_dropout: float = 0.1
    predictor_class: int = 527

    @classmethod
    def from_checkpoint_cfg(cls, cfg: Mapping[str, Any]) -> BEATsConfig:
        """Build the config from a checkpoint's ``cfg`` dict; unknown keys are logged and ignored.

        Values of the wrong type raise :class:`ConfigError`.
        """
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"A BEATs 'cfg' must be a dict; got {type(cfg).__name__}.")
        unknown = sorted(str(key) for key in cfg if key not in cls.model_fields)
        if unknown:
            logger.warning("Ignoring BEATs config keys unknown to this implementation: %s", unknown)
        try:
            return cls(**{key: value for key, value in cfg.items() if key in cls.model_fields})
        except ValidationError as err:
            raise ConfigError(f"Invalid BEATs config in the checkpoint: {err}") from err


def _check_buildable(config: BEATsConfig) -> None:
    """Raise :class:`ConfigError` if ``config`` cannot describe a working model."""
    problems = []
    if config.input_patch_size <= 0 or NUM_MEL_BINS % config.input_patch_size:
        problems.append(
            f"input_patch_size must divide {NUM_MEL_BINS} (got {config.input_patch_size})"
        )
    dim, heads = config.encoder_embed_dim, config.encoder_attention_heads
    groups = config.conv_pos_groups
    if heads <= 0 or dim % heads:
        problems.append("encoder_embed_dim must be a multiple of encoder_attention_heads")
    if config.conv_pos <= 0 or groups <= 0 or dim % groups:
        problems.append("encoder_embed_dim must be a multiple of conv_pos_groups, conv_pos > 0")
    if config.deep_norm and config.layer_norm_first:
        problems.append("deep_norm needs post-LayerNorm layers (layer_norm_first=False)")
    if config.activation_fn not in _ACTIVATIONS:
        problems.append(f"activation_fn {config.activation_fn!r} is not one of {_ACTIVATIONS}")
    if config.relative_position_embedding and not (
        config.num_buckets >= 4 and config.max_distance > config.num_buckets // 4
    ):
        problems.append("relative positions need num_buckets >= 4, max_distance > num_buckets // 4")
    if problems:
        raise ConfigError("Cannot build BEATs: " + "; ".join(problems) + ".")


def relative_position_buckets(
    query_length: int, key_length: int, num_buckets: int, max_distance: int, device: torch.device
) -> torch.Tensor:
    """T5's bidirectional relative position buckets, ``[query_length, key_length]`` (long).

    Half of the buckets serve keys after the query, half the rest. In each half, distances
    below a quarter of ``num_buckets`` get their own bucket; longer ones share logarithmically
    wider buckets up to ``max_distance``, beyond which all fall in the last bucket.
    """
    keys = torch.arange(key_length, device=device)
    offset = keys[None, :] - torch.arange(query_length, device=device)[:, None]
    half = num_buckets // 2
    exact = half // 2
    distance = offset.abs()
    log_ratio = torch.log(distance.clamp_min(exact).float() / exact)
    log_ratio = log_ratio / math.log(max_distance / exact)
    far = (exact + (log_ratio * (half - exact)).long()).clamp_max(half - 1)
    return (offset > 0).long() * half + torch.where(distance < exact, distance, far)


class _PositionalConv(nn.Module):
    """Weight-normalised grouped Conv1d that keeps the sequence length.

    The weight is ``weight_v`` rescaled so that each kernel tap has norm ``weight_g`` (norm taken
    over output and input channels), the parametrisation of ``torch.nn.utils.weight_norm(dim=2)``
    under its parameter names. An even kernel pads one step too many; the last output is dropped.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        std = math.sqrt(4.0 / (kernel_size * channels))
        self.weight_v = nn.Parameter(torch.randn(channels, channels // groups, kernel_size) * std)
        self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is ``[B, C, T]``; returns ``[B, C, T]``."""
        kernel_size = self.weight_v.size(-1)
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        y = F.conv1d(x, weight, self.bias, padding=kernel_size // 2, groups=self.groups)
        return y[..., :-1] if kernel_size % 2 == 0 else y


def _activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "gelu":
        return F.gelu(x.float()).type_as(x)
    if name == "gelu_accurate":
        return F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    return x


class _SelfAttention(nn.Module):
    """Multi-head self-attention with an optional, optionally gated, relative position bias."""

    def __init__(
        self, config: BEATsConfig, relative_attention_bias: nn.Embedding | None
    ) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        self.num_heads = config.encoder_attention_heads
        self.head_dim = dim // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.num_buckets = config.num_buckets
        self.max_distance = config.max_distance
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        # One embedding shared by all layers; every layer lists it, as the reference does.
        self.relative_attention_bias = relative_attention_bias
        self.gated = config.gru_rel_pos
        if self.gated:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor:
        """The relative position bias ``[1, heads, length, length]``."""
        assert self.relative_attention_bias is not None
        buckets = relative_position_buckets(
            length, length, self.num_buckets, self.max_distance, device
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        position_bias: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` is ``[B, L, C]``, ``key_padding_mask`` ``[B, L]`` (True: ignore that key).

        Returns the attended ``[B, L, C]`` and the (ungated) position bias for the next layer,
        computed here if none was passed and this layer has the embedding.
        """
        batch, length, dim = x.shape
        if position_bias is None and self.relative_attention_bias is not None:
            position_bias = self.position_bias(length, x.device)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        logits = (q * self.scaling / _ATTENTION_ALPHA) @ k.transpose(-1, -2)
        logits = (logits - logits.amax(dim=-1, keepdim=True)) * _ATTENTION_ALPHA
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        if position_bias is not None:
            bias = position_bias
            if self.gated:
                gate_logits = self.grep_linear(q).view(batch, self.num_heads, length, 2, 4).sum(-1)
                gates = torch.sigmoid(gate_logits)
                gate_a, gate_b = gates.chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * position_bias
            logits = logits + bias
        weights = F.dropout(logits.softmax(dim=-1), self.dropout, self.training)
        out = (weights @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.out_proj(out), position_bias


class _EncoderLayer(nn.Module):
    """Transformer layer: attention then feed-forward, each with a (DeepNorm-scaled) residual."""

    def __init__(self, config: BEATsConfig, relative_attention_bias: nn.Embedding | None) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        self.self_attn = _SelfAttention(config, relative_attention_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.activation = config.activation_fn
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout
        self.pre_norm = config.layer_norm_first
        self.residual_scale = (2.0 * config.encoder_layers) ** 0.25 if config.deep_norm else 1.0

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _activation(self.activation, self.fc1(x))
        x = F.dropout(x, self.activation_dropout, self.training)
        return F.dropout(self.fc2(x), self.dropout, self.training)

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None,
        position_bias: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pre_norm:
            normed = self.self_attn_layer_norm(x)
            attended, position_bias = self.self_attn(normed, padding_mask, position_bias)
            x = x + F.dropout(attended, self.dropout, self.training)
            return x + self._feed_forward(self.final_layer_norm(x)), position_bias
        attended, position_bias = self.self_attn(x, padding_mask, position_bias)
        attended = F.dropout(attended, self.dropout, self.training)
        x = self.self_attn_layer_norm(x * self.residual_scale + attended)
        x = self.final_layer_norm(x * self.residual_scale + self._feed_forward(x))
        return x, position_bias


class _Encoder(nn.Module):
    """Convolutional position embedding followed by the transformer layers."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        self.pos_conv = nn.Sequential(
            _PositionalConv(dim, config.conv_pos, config.conv_pos_groups), nn.GELU()
        )
        shared_bias = (
            nn.Embedding(config.num_buckets, config.encoder_attention_heads)
            if config.relative_position_embedding
            else None
        )
        self.layers = nn.ModuleList(
            _EncoderLayer(config, shared_bias) for _ in range(config.encoder_layers)
        )
        self.layer_norm = nn.LayerNorm(dim)
        self.pre_norm = config.layer_norm_first
        self.dropout = config.dropout
        self.layerdrop = config.encoder_layerdrop
        self.gradient_decay = config.layer_wise_gradient_decay_ratio

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        """``x`` is ``[B, N, C]``; padded positions are zeroed and never attended to."""
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.pre_norm:
            x = self.layer_norm(x)
        x = F.dropout(x, self.dropout, self.training)
        position_bias = None
        for layer in self.layers:
            if self.gradient_decay != 1.0 and torch.is_grad_enabled():
                # Same values, gradient scaled by the ratio.
                x = x.detach() + (x - x.detach()) * self.gradient_decay
            if self.training and self.layerdrop > 0.0 and torch.rand(()).item() < self.layerdrop:
                continue
            x, position_bias = layer(x, padding_mask, position_bias)
        return self.layer_norm(x) if self.pre_norm else x


def _pool_mask_upstream(mask: torch.Tensor, length: int) -> torch.Tensor:
    """The reference's mask pooling: drop the remainder, pool equal groups, padded if all are."""
    usable = mask.size(1) - mask.size(1) % length
    return mask[:, :usable].reshape(mask.size(0), length, -1).all(dim=-1)


class BEATs(nn.Module):
    """The BEATs encoder: waveform in, one feature vector per 16x16 filterbank patch out."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        _check_buildable(config)
        self.config = config
        patch = config.input_patch_size
        self.patch_embedding = nn.Conv2d(
            1, config.embed_dim, kernel_size=patch, stride=patch, bias=config.conv_bias
        )
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        self.post_extract_proj = (
            nn.Linear(config.embed_dim, config.encoder_embed_dim)
            if config.embed_dim != config.encoder_embed_dim
            else None
        )
        self.encoder = _Encoder(config)
        if config.finetuned_model:
            self.predictor_dropout = nn.Dropout(config.predictor_dropout)
            self.predictor = nn.Linear(config.encoder_embed_dim, config.predictor_class)
        else:
            self.predictor = None
        self._init_weights()

    def _init_weights(self) -> None:
        """BERT-style initialisation (N(0, 0.02) linears and embeddings); checkpoints replace it."""
        for module in self.encoder.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    @property
    def output_dim(self) -> int:
        """Width of the features :meth:`extract_features` returns (``encoder_embed_dim``)."""
        return self.config.encoder_embed_dim

    @property
    def min_samples(self) -> int:
        """The shortest waveform that yields one patch row (2800 samples, 0.175 s, by default)."""
        window, shift, _ = frame_geometry(SAMPLE_RATE, FRAME_LENGTH_MS, FRAME_SHIFT_MS)
        return window + (self.config.input_patch_size - 1) * shift

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_checkpoint(cls, path_or_ckpt: str | os.PathLike[str] | Mapping[str, Any]) -> BEATs:
        """Build BEATs from an official checkpoint ``{'cfg': dict, 'model': state_dict}``.

        ``path_or_ckpt`` is the file or the already loaded dict. Loading is strict: any missing,
        unexpected or wrongly shaped parameter raises :class:`CheckpointError` naming it. The
        model is returned in eval mode, on the CPU.
        """
        ckpt = path_or_ckpt if isinstance(path_or_ckpt, Mapping) else _read_checkpoint(path_or_ckpt)
        if not (isinstance(ckpt.get("cfg"), Mapping) and isinstance(ckpt.get("model"), Mapping)):
            raise CheckpointError(
                "A BEATs checkpoint is a dict with a 'cfg' dict and a 'model' state dict; "
                f"this one has keys {sorted(map(str, ckpt))}. Use the official BEATs .pt file."
            )
        model = cls(BEATsConfig.from_checkpoint_cfg(ckpt["cfg"]))
        model.load_weights(ckpt["model"])
        return model.eval()

    def load_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load official BEATs weights strictly, or raise :class:`CheckpointError` naming why."""
        expected = set(self.state_dict())
        missing = sorted(expected - set(state_dict))
        unexpected = sorted(set(state_dict) - expected)
        if missing or unexpected:
            raise CheckpointError(
                "The BEATs weights do not match the config: "
                f"missing {_name_some(missing)}; unexpected {_name_some(unexpected)}. "
                "Check that the checkpoint's 'cfg' belongs to its 'model' weights."
            )
        _warn_if_shared_bias_differs(state_dict)
        try:
            self.load_state_dict(state_dict, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"The BEATs weights do not fit the model: {err}") from err

    # ------------------------------------------------------------------ features

    def preprocess(
        self,
        waveform: torch.Tensor,
        fbank_mean: float = FBANK_MEAN,
        fbank_std: float = FBANK_STD,
    ) -> torch.Tensor:
        """Normalised filterbanks ``[B, frames, 128]`` (float32) of 16 kHz waveforms ``[B, T]``.

        Waveforms are in [-1, 1]; they are scaled by 2**15 before the filterbank.
        """
        fbank = kaldi_fbank(
            waveform.to(torch.float32) * WAVEFORM_SCALE,
            sample_rate=SAMPLE_RATE,
            num_mel_bins=NUM_MEL_BINS,
            frame_length_ms=FRAME_LENGTH_MS,
            frame_shift_ms=FRAME_SHIFT_MS,
        )
        return (fbank - fbank_mean) / (2.0 * fbank_std)

    def extract_features(
        self,
        waveform: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        *,
        mask_mode: MaskMode = "upstream",
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode 16 kHz waveforms ``[B, T]`` in [-1, 1] into features ``[B, N, output_dim]``.

        N is ``(frames // 16) * 8`` patches, with ``frames = 1 + (T - 400) // 160`` (1496 for
        30 s). ``padding_mask`` ``[B, T]`` marks padded samples with True; padded patches are
        zeroed before the position embedding and never attended to, and the patch-level mask
        ``[B, N]`` is returned (None without a sample mask). ``mask_mode`` picks how the sample
        mask becomes a patch mask:

        - ``"upstream"`` (default), as the reference: split the mask into as many equal groups
          as there are filterbank frames, then the frame mask into as many as there are patches,
          a group being padding if all of it is. Patches in the row that straddles the end of a
          shorter item can count as valid, so its features differ slightly from encoding the
          item alone. This is what SALMONN was trained with.
        - ``"exact"``: a patch is valid only if every sample under it is, so each item's valid
          features equal those of encoding it alone (up to float rounding).
        """
        if waveform.dim() != 2:
            raise AudioError(
                f"BEATs takes a batch of waveforms [B, T]; got shape {tuple(waveform.shape)}."
            )
        if waveform.size(1) < self.min_samples:
            raise AudioError(
                f"BEATs needs at least {self.min_samples} samples "
                f"({self.min_samples / SAMPLE_RATE:.3f} s at {SAMPLE_RATE} Hz); "
                f"got {waveform.size(1)}. Pad short clips (SALMONN pads them to 1 s)."
            )
        if padding_mask is not None:
            if padding_mask.shape != waveform.shape:
                raise AudioError(
                    f"padding_mask must have the waveform's shape {tuple(waveform.shape)}; "
                    f"got {tuple(padding_mask.shape)}."
                )
            padding_mask = padding_mask.to(device=waveform.device, dtype=torch.bool)
        if mask_mode not in ("upstream", "exact"):
            raise ValueError(f"mask_mode must be 'upstream' or 'exact'; got {mask_mode!r}.")

        fbank = self.preprocess(waveform).to(self.patch_embedding.weight.dtype)
        # [B, embed_dim, time patches, frequency patches], flattened time-major.
        patches = self.patch_embedding(fbank.unsqueeze(1))
        features = self.layer_norm(patches.flatten(2).transpose(1, 2))
        patch_mask = None
        if padding_mask is not None:
            if mask_mode == "upstream":
                frame_mask = _pool_mask_upstream(padding_mask, fbank.size(1))
                patch_mask = _pool_mask_upstream(frame_mask, features.size(1))
            else:
                patch_mask = self._exact_patch_mask(padding_mask, patches.size(2), patches.size(3))
            empty = patch_mask.all(dim=1).nonzero().flatten().tolist()
            if empty:
                raise AudioError(
                    f"Batch items {empty} have no unpadded audio long enough for BEATs "
                    f"(at least {self.min_samples} samples each)."
                )
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        features = F.dropout(features, self.config.dropout_input, self.training)
        return self.encoder(features, patch_mask), patch_mask

    def forward(
        self, waveform: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Same as :meth:`extract_features` with the default mask mode."""
        return self.extract_features(waveform, padding_mask)

    def _exact_patch_mask(
        self, padding_mask: torch.Tensor, time_patches: int, freq_patches: int
    ) -> torch.Tensor:
        """Padded patches: those under which any frame holds any padded sample."""
        window, shift, _ = frame_geometry(SAMPLE_RATE, FRAME_LENGTH_MS, FRAME_SHIFT_MS)
        frames = num_frames(padding_mask.size(1), window, shift)
        frame_padded = padding_mask.unfold(1, window, shift)[:, :frames].any(dim=-1)
        patch = self.config.input_patch_size
        rows = frame_padded[:, : time_patches * patch].reshape(-1, time_patches, patch)
        row_padded = rows.any(dim=-1)
        return row_padded.repeat_interleave(freq_patches, dim=1)


def _read_checkpoint(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Load a checkpoint file on the CPU, safely if possible."""
    if not os.path.isfile(path):
        raise CheckpointError(f"BEATs checkpoint not found: {os.fspath(path)!r}. Check the path.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        logger.warning(
            "%s holds objects beyond plain tensors and dicts (%s); loading it with "
            "weights_only=False, which runs its pickled code. Only do this with files you trust.",
            os.fspath(path),
            err,
        )
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as inner:
            raise CheckpointError(f"Cannot read {os.fspath(path)!r}: {inner}") from inner
    except Exception as err:
        raise CheckpointError(f"Cannot read {os.fspath(path)!r}: {err}") from err
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(
            f"{os.fspath(path)!r} holds a {type(ckpt).__name__}, not a BEATs checkpoint dict."
        )
    return ckpt


def _name_some(names: list[str], limit: int = 10) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return f"{len(names)} ({shown}{', ...' if len(names) > limit else ''})"


def _warn_if_shared_bias_differs(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Every layer lists the one shared relative-position embedding; copies should be identical."""
    copies = [
        value
        for key, value in state_dict.items()
        if key.startswith("encoder.layers.")
        and key.endswith(".self_attn.relative_attention_bias.weight")
    ]
    if any(c.shape != copies[0].shape or not torch.equal(c, copies[0]) for c in copies[1:]):
        logger.warning(
            "The checkpoint's per-layer copies of the shared relative position embedding differ; "
            "all layers will use one of them (the last loaded), as the reference does."
        )


def pad_waves(chunks: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """16 kHz chunks of any length as one zero-padded batch ``[chunks, samples]`` and its
    padding mask (True = padding), what :meth:`BEATs.extract_features` reads."""
    longest = max(len(c) for c in chunks)
    wav = torch.zeros(len(chunks), longest, dtype=torch.float32)
    padding = torch.ones(len(chunks), longest, dtype=torch.bool)
    for row, chunk in enumerate(chunks):
        wav[row, : len(chunk)] = torch.from_numpy(chunk)
        padding[row, : len(chunk)] = False
    return wav, padding
