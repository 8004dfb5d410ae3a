"""Small, randomly initialised SALMONN models built locally, with no download.

Tests, benchmarks and examples need a complete model (Whisper, optional BEATs, an LLM with
a tokenizer) on a machine without a model hub. :func:`build_tiny_model` writes one to a
directory in a few seconds: a small Whisper, a small Llama with a SentencePiece tokenizer
trained on the spot (the Vicuna tokenizer type), and the SALMONN parts on top. Its answers
are meaningless; its shapes, formats and code paths are the real ones.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

from salmonn_agent.config import LoraSettings, QFormerConfig, SALMONNConfig

logger = logging.getLogger(__name__)

_CORPUS = [
    "USER: <Speech><SpeechHere></Speech> Recognize the speech and give me the transcription.\nASSISTANT:",
    "USER: <Speech><SpeechHere></Speech> Please describe the audio.\nASSISTANT:",
    "hello world, this is a small test of the tiny tokenizer.",
    "the quick brown fox jumps over the lazy dog. A dog is barking; music plays.",
    "Listen to the speech and translate it into German. What is the speaker saying?",
    "0123456789 {}[]:\"',.!?-_ tool call arguments name json",
]

SIZES: dict[str, dict[str, int]] = {
    "tiny": {},
    "small": {"llm_hidden": 576, "llm_layers": 30, "llm_heads": 9, "whisper_width": 384,
              "whisper_layers": 4, "qformer_hidden": 768},
}
"""Named model sizes for the benchmarks: ``build_tiny_model(dir, **SIZES[name])``. ``small`` has
Whisper tiny's encoder shape and SmolLM2-135M's LLM shape."""


def build_tiny_model(
    path: str | os.PathLike,
    *,
    with_beats: bool = False,
    llm_hidden: int = 64,
    llm_layers: int = 2,
    llm_heads: int = 4,
    whisper_width: int = 64,
    whisper_layers: int = 1,
    qformer_hidden: int = 32,
    chunk_seconds: float = 30.0,
    seed: int = 0,
) -> Path:
    """Write a tiny SALMONN model directory (loadable with ``SALMONN.from_pretrained``) to ``path``."""
    from salmonn_agent.model.salmonn import SALMONN

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    whisper_dir = _write_whisper(root / "whisper", whisper_width, whisper_layers)
    llm_dir = _write_llm(root / "llm", llm_hidden, llm_layers, llm_heads)
    beats_file = _write_beats(root / "beats.pt") if with_beats else None
    model_dir = root / "salmonn"
    model_dir.mkdir(exist_ok=True)
    # References relative to the model directory keep the whole tree relocatable.
    config = SALMONNConfig(
        whisper=os.path.relpath(whisper_dir, model_dir),
        llm=os.path.relpath(llm_dir, model_dir),
        beats=os.path.relpath(beats_file, model_dir) if beats_file else None,
        qformer=QFormerConfig(
            hidden_size=qformer_hidden, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=qformer_hidden * 4,
        ),
        lora=LoraSettings(rank=4, alpha=16, dropout=0.0),
        chunk_seconds=chunk_seconds,
    )
    model = SALMONN.from_config(config, base_dir=model_dir, device="cpu")
    with torch.no_grad():  # LoRA B starts at zero; give it weight so LoRA changes outputs
        for name, param in model.llm.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    model.save_pretrained(model_dir)
    return model_dir


def _write_whisper(directory: Path, width: int, layers: int) -> Path:
    config = WhisperConfig(
        d_model=width, encoder_layers=layers, encoder_attention_heads=max(2, width // 64), decoder_layers=1,
        decoder_attention_heads=2, encoder_ffn_dim=width * 2, decoder_ffn_dim=width * 2,
        num_mel_bins=80, max_source_positions=1500, max_target_positions=64, vocab_size=100,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    WhisperModel(config).save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(directory)
    return directory


def _write_llm(directory: Path, hidden: int, layers: int, heads: int) -> Path:
    import sentencepiece as spm

    directory.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS * 20), model_prefix=str(directory / "tokenizer"),
        vocab_size=420, model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, character_coverage=1.0, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, num_threads=1, minloglevel=2,
        hard_vocab_limit=False,
    )
    (directory / "tokenizer.vocab").unlink(missing_ok=True)
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "legacy": True, "add_bos_token": True,
    }))
    vocab = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model")).vocab_size()
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def _write_beats(path: Path) -> Path:
    from salmonn_agent.model.beats import BEATs, BEATsConfig

    cfg = tiny_beats_cfg()
    model = BEATs(BEATsConfig.from_checkpoint_cfg(cfg))
    torch.save({"cfg": cfg, "model": model.state_dict()}, path)
    return path


def tiny_beats_cfg() -> dict[str, object]:
    """A small BEATs ``cfg`` dict with the official key names."""
    return {
        "encoder_layers": 2, "encoder_embed_dim": 48, "encoder_ffn_embed_dim": 96,
        "encoder_attention_heads": 4, "conv_pos": 16, "conv_pos_groups": 4,
        "embed_dim": 64, "input_patch_size": 16, "relative_position_embedding": True,
        "num_buckets": 32, "max_distance": 64, "gru_rel_pos": True, "deep_norm": True,
        "layer_norm_first": False, "finetuned_model": False,
    }
