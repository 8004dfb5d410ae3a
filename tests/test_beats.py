"""Tests for the BEATs encoder and the Kaldi filterbank (tiny configs, CPU, offline)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from salmonn_agent.errors import AudioError, CheckpointError, ConfigError
from salmonn_agent.model.beats import BEATs, BEATsConfig, relative_position_buckets
from salmonn_agent.model.fbank import kaldi_fbank

SR = 16000

# A tiny model described with the reference cfg's key names (every key the reference knows).
TINY_CFG = {
    "input_patch_size": 16,
    "embed_dim": 32,
    "conv_bias": False,
    "encoder_layers": 2,
    "encoder_embed_dim": 64,
    "encoder_ffn_embed_dim": 128,
    "encoder_attention_heads": 4,
    "activation_fn": "gelu",
    "layer_wise_gradient_decay_ratio": 0.6,
    "layer_norm_first": False,
    "deep_norm": True,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.05,
    "dropout_input": 0.0,
    "conv_pos": 16,
    "conv_pos_groups": 4,
    "relative_position_embedding": True,
    "num_buckets": 32,
    "max_distance": 64,
    "gru_rel_pos": True,
    "finetuned_model": True,
    "predictor_dropout": 0.0,
    "predictor_class": 5,
}

# The reference's BEATsConfig defaults, copied by hand from unilm/beats (as vendored by SALMONN).
UPSTREAM_DEFAULTS = {
    "input_patch_size": -1,
    "embed_dim": 512,
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_wise_gradient_decay_ratio": 1.0,
    "layer_norm_first": False,
    "deep_norm": False,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0,
    "dropout_input": 0.0,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": False,
    "num_buckets": 320,
    "max_distance": 1280,
    "gru_rel_pos": False,
    "finetuned_model": False,
    "predictor_dropout": 0.1,
    "predictor_class": 527,
}


def official_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the reference BEATs state dict for TINY_CFG, written out from the reference.

    Every layer lists the shared relative position embedding; ``pos_conv.0`` is weight-normed
    along the kernel axis (``dim=2``), so ``weight_g`` is ``[1, 1, conv_pos]``.
    """
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (32, 1, 16, 16),
        "layer_norm.weight": (32,),
        "layer_norm.bias": (32,),
        "post_extract_proj.weight": (64, 32),
        "post_extract_proj.bias": (64,),
        "encoder.pos_conv.0.bias": (64,),
        "encoder.pos_conv.0.weight_g": (1, 1, 16),
        "encoder.pos_conv.0.weight_v": (64, 16, 16),
        "encoder.layer_norm.weight": (64,),
        "encoder.layer_norm.bias": (64,),
        "predictor.weight": (5, 64),
        "predictor.bias": (5,),
    }
    for i in range(2):
        p = f"encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{p}self_attn.{proj}.weight"] = (64, 64)
            shapes[f"{p}self_attn.{proj}.bias"] = (64,)
        shapes[f"{p}self_attn.relative_attention_bias.weight"] = (32, 4)
        shapes[f"{p}self_attn.grep_linear.weight"] = (8, 16)
        shapes[f"{p}self_attn.grep_linear.bias"] = (8,)
        shapes[f"{p}self_attn.grep_a"] = (1, 4, 1, 1)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            shapes[f"{p}{norm}.weight"] = (64,)
            shapes[f"{p}{norm}.bias"] = (64,)
        shapes[f"{p}fc1.weight"] = (128, 64)
        shapes[f"{p}fc1.bias"] = (128,)
        shapes[f"{p}fc2.weight"] = (64, 128)
        shapes[f"{p}fc2.bias"] = (64,)
    return shapes


def official_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the official names (LayerNorm weights near 1, the rest small)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_shapes().items():
        value = torch.randn(shape, generator=gen) * 0.1
        if "norm" in key and key.endswith("weight"):
            value += 1.0
        state[key] = value
    shared = state["encoder.layers.0.self_attn.relative_attention_bias.weight"]
    state["encoder.layers.1.self_attn.relative_attention_bias.weight"] = shared
    return state


@pytest.fixture(scope="module")
def tiny_model() -> BEATs:
    return BEATs.from_checkpoint({"cfg": dict(TINY_CFG), "model": official_state_dict()})


def noise(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, int(seconds * SR), generator=gen) * 2 - 1) * 0.3


# ----------------------------------------------------------------------------- config & loading


def test_config_defaults_and_fields_match_upstream() -> None:
    assert BEATsConfig().model_dump() == UPSTREAM_DEFAULTS
    assert BEATsConfig.from_checkpoint_cfg(TINY_CFG).model_dump() == TINY_CFG


def test_unknown_cfg_keys_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        config = BEATsConfig.from_checkpoint_cfg({**TINY_CFG, "label_rate": 50})
    assert config.model_dump() == TINY_CFG
    assert "label_rate" in caplog.text


def test_bad_cfg_values_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        BEATsConfig.from_checkpoint_cfg({**TINY_CFG, "encoder_layers": "many"})
    with pytest.raises(ConfigError, match="input_patch_size"):
        BEATs(BEATsConfig())  # the reference default -1 is not a usable patch size


def test_official_names_load_strictly(tiny_model: BEATs) -> None:
    expected = official_state_dict()
    got = tiny_model.state_dict()
    assert {k: tuple(v.shape) for k, v in got.items()} == official_shapes()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    assert not tiny_model.training
    assert tiny_model.output_dim == 64


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("drop", "encoder.layers.1.fc2.bias"),
        ("drop", "encoder.pos_conv.0.weight_g"),
        ("add", "encoder.layers.2.fc1.weight"),
        ("add", "encoder.pos_conv.0.weight"),
    ],
)
def test_mismatched_keys_are_refused_by_name(change: str, named: str) -> None:
    state = official_state_dict()
    if change == "drop":
        del state[named]
    else:
        state[named] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        BEATs.from_checkpoint({"cfg": TINY_CFG, "model": state})


def test_predictor_keys_need_a_finetuned_cfg() -> None:
    with pytest.raises(CheckpointError, match=r"predictor\.weight"):
        cfg = {**TINY_CFG, "finetuned_model": False}
        BEATs.from_checkpoint({"cfg": cfg, "model": official_state_dict()})


def test_wrong_shape_and_wrong_structure_are_refused() -> None:
    state = official_state_dict()
    state["encoder.layers.0.fc1.weight"] = torch.zeros(128, 65)
    with pytest.raises(CheckpointError, match="fc1"):
        BEATs.from_checkpoint({"cfg": TINY_CFG, "model": state})
    with pytest.raises(CheckpointError, match="'cfg'"):
        BEATs.from_checkpoint({"model": official_state_dict()})


def test_from_checkpoint_file(
    tmp_path, tiny_model: BEATs, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "BEATs_tiny.pt"
    torch.save({"cfg": dict(TINY_CFG), "model": official_state_dict()}, path)
    with caplog.at_level(logging.WARNING):
        loaded = BEATs.from_checkpoint(path)
    assert "weights_only=False" not in caplog.text  # a plain dict of tensors loads safely
    wav = noise(1, 0.5)
    with torch.no_grad():
        assert torch.equal(loaded.extract_features(wav)[0], tiny_model.extract_features(wav)[0])
    with pytest.raises(CheckpointError, match="not found"):
        BEATs.from_checkpoint(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------- filterbank


def numpy_kaldi_fbank(x: np.ndarray, sr: int = SR, n_mels: int = 128) -> np.ndarray:
    """Kaldi's fbank recipe, written from its definition in float64 NumPy."""
    win, hop, nfft = sr * 25 // 1000, sr * 10 // 1000, 512
    count = 1 + (len(x) - win) // hop
    frames = np.stack([x[i * hop : i * hop + win] for i in range(count)]).astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    emphasised = frames.copy()
    emphasised[:, 1:] -= 0.97 * frames[:, :-1]
    emphasised[:, 0] -= 0.97 * frames[:, 0]
    n = np.arange(win)
    povey = (0.5 - 0.5 * np.cos(2 * np.pi * n / (win - 1))) ** 0.85
    power = np.abs(np.fft.rfft(emphasised * povey, n=nfft)) ** 2

    def mel(f: float) -> float:
        return 1127.0 * np.log(1.0 + f / 700.0)

    edges = np.linspace(mel(20.0), mel(sr / 2), n_mels + 2)
    banks = np.zeros((n_mels, nfft // 2 + 1))
    for m in range(n_mels):
        left, center, right = edges[m : m + 3]
        for k in range(nfft // 2):  # Kaldi leaves the Nyquist bin out
            f = mel(k * sr / nfft)
            if left < f <= center:
                banks[m, k] = (f - left) / (center - left)
            elif center < f < right:
                banks[m, k] = (right - f) / (right - center)
    return np.log(np.maximum(power @ banks.T, np.finfo(np.float32).eps))


def fbank_test_signal() -> np.ndarray:
    """1.3 s of tones plus noise with a stretch of digital silence, in 16-bit range."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.3 * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)
    x += 0.05 * rng.standard_normal(t.size)
    x[int(0.5 * SR) : int(0.8 * SR)] = 0.0
    return (x * 2**15).astype(np.float32)


def test_fbank_matches_numpy_kaldi_recipe() -> None:
    x = fbank_test_signal()
    ours = kaldi_fbank(torch.from_numpy(x)).numpy()
    reference = numpy_kaldi_fbank(x)
    assert ours.shape == reference.shape == (1 + (x.size - 400) // 160, 128)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-3)
    silent = ours[60:70]  # frames inside the silence hit the epsilon floor exactly
    np.testing.assert_allclose(silent, np.log(np.finfo(np.float32).eps), rtol=0, atol=1e-6)


def test_fbank_matches_torchaudio_when_available() -> None:
    kaldi = pytest.importorskip("torchaudio.compliance.kaldi")
    x = torch.from_numpy(fbank_test_signal())
    reference = kaldi.fbank(
        x.unsqueeze(0), num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10
    )
    torch.testing.assert_close(kaldi_fbank(x), reference, rtol=0, atol=1e-3)


def test_fbank_batched_rows_equal_single_rows_and_short_audio_is_refused() -> None:
    x = noise(2, 0.4) * 2**15
    batched = kaldi_fbank(x)
    assert batched.shape == (2, 38, 128)
    for i in range(2):
        torch.testing.assert_close(batched[i], kaldi_fbank(x[i]), rtol=0, atol=1e-5)
    with pytest.raises(AudioError):
        kaldi_fbank(torch.zeros(399))


def test_preprocess_scales_and_normalises(tiny_model: BEATs) -> None:
    wav = noise(1, 0.3)
    expected = (kaldi_fbank(wav[0] * 2**15) - 15.41663) / (2 * 6.55582)
    torch.testing.assert_close(tiny_model.preprocess(wav)[0], expected)


# ----------------------------------------------------------------------------- features


def test_relative_position_buckets() -> None:
    buckets = relative_position_buckets(80, 80, 32, 64, torch.device("cpu"))
    offsets = torch.arange(80)[None, :] - torch.arange(80)[:, None]
    assert buckets.shape == (80, 80)
    assert torch.equal(buckets.diagonal(), torch.zeros(80, dtype=torch.long))
    # 32 buckets: 16 for keys before the query (or at it), 16 after; the first 8 of each exact.
    small = offsets.abs() < 8
    assert torch.equal(buckets[small & (offsets <= 0)], -offsets[small & (offsets <= 0)])
    assert torch.equal(buckets[small & (offsets > 0)], offsets[small & (offsets > 0)] + 16)
    assert torch.equal(buckets[offsets < 0].unique() + 16, buckets[offsets > 0].unique())
    # Beyond the exact range, log-spaced: 8 + floor(ln(d / 8) / ln(64 / 8) * 8), capped at 15.
    for d in (8, 20, 49, 63, 64, 79):
        assert buckets[0, d] == 16 + min(15, 8 + int(np.log(d / 8) / np.log(8) * 8))
    assert buckets[0, 79] == 31 and buckets.max() == 31
    assert (buckets[0, 1:].diff() >= 0).all()


def test_thirty_seconds_shapes_and_padding_mask(tiny_model: BEATs) -> None:
    wav = noise(2, 30.0)
    lengths = torch.tensor([30 * SR, 10 * SR])
    padding = torch.arange(wav.size(1))[None, :] >= lengths[:, None]
    wav = wav.masked_fill(padding, 0.0)
    frames = 1 + (30 * SR - 400) // 160
    assert frames == 2998
    assert tiny_model.preprocess(wav).shape == (2, frames, 128)
    with torch.no_grad():
        features, mask = tiny_model.extract_features(wav, padding)
        exact_features, exact_mask = tiny_model.extract_features(wav, padding, mask_mode="exact")
    patches = (frames // 16) * (128 // 16)
    assert patches == 1496
    assert features.shape == exact_features.shape == (2, patches, 64)
    assert mask.shape == exact_mask.shape == (2, patches)
    assert not mask[0].any() and not exact_mask[0].any()
    # Reference pooling: 160-sample groups -> 1000 frames with signal; frame pairs -> 500 patches.
    assert int((~mask[1]).sum()) == 500
    # Exact: 10 s hold 998 whole frames -> 62 full patch rows of 8 patches.
    assert int((~exact_mask[1]).sum()) == 62 * 8
    for m in (mask[1], exact_mask[1]):  # the valid patches are a prefix
        valid = int((~m).sum())
        assert not m[:valid].any() and m[valid:].all()
    assert torch.isfinite(features).all() and torch.isfinite(exact_features).all()


def test_batched_extraction_equals_per_item_for_valid_frames(tiny_model: BEATs) -> None:
    wav = noise(2, 3.0, seed=1)
    short = int(1.7 * SR)
    padding = torch.zeros_like(wav, dtype=torch.bool)
    padding[1, short:] = True
    wav = wav.masked_fill(padding, 0.0)
    with torch.no_grad():
        batched, mask = tiny_model.extract_features(wav, padding, mask_mode="exact")
        alone_long, _ = tiny_model.extract_features(wav[:1])
        alone_short, _ = tiny_model.extract_features(wav[1:, :short])
        upstream_mask = tiny_model.extract_features(wav, padding)[1]
    valid = alone_short.size(1)
    assert valid == ((1 + (short - 400) // 160) // 16) * 8 == 80
    assert int((~mask[1]).sum()) == valid
    torch.testing.assert_close(batched[0], alone_long[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(batched[1, :valid], alone_short[0], rtol=0, atol=1e-5)
    # The reference pooling keeps some patches of the straddling row:
    # 1.7 s in 161-sample groups -> 169 frames with signal -> 85 patches.
    assert int((~upstream_mask[1]).sum()) == 85


def test_eval_is_deterministic_and_too_short_audio_is_refused(tiny_model: BEATs) -> None:
    wav = noise(2, 1.0, seed=2)
    with torch.no_grad():
        first, _ = tiny_model.extract_features(wav)
        second, _ = tiny_model.extract_features(wav)
    assert torch.equal(first, second)
    assert first.shape == (2, ((1 + (SR - 400) // 160) // 16) * 8, 64)
    with pytest.raises(AudioError, match="2800"):
        tiny_model.extract_features(torch.zeros(1, 2799))
    with pytest.raises(AudioError):
        tiny_model.extract_features(torch.zeros(2800))
    with torch.no_grad():
        assert tiny_model.extract_features(torch.zeros(1, 2800))[0].shape == (1, 8, 64)
