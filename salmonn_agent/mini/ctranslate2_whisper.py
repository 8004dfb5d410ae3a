"""Convert a CTranslate2 Whisper model directory into a transformers Whisper directory.

CTranslate2 (the engine of faster-whisper) stores a model as ``model.bin`` plus
``config.json`` and the tokenizer files. ``model.bin`` is a flat list of named arrays:

    uint32 binary version (4..6)          uint16-length-prefixed, NUL-terminated strings
    string spec name ("WhisperSpec")      uint32 spec revision (3)
    uint32 variable count, then per variable:
        string name, uint8 rank, uint32 dims[rank], uint8 dtype, uint32 byte count, data
    uint32 alias count, then per alias: string alias, string target

dtype codes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16 (little-endian).

The layer layout is the one CTranslate2's transformers converter writes (``WhisperLoader``):
self-attention q/k/v are fused into ``self_attention/linear_0`` (rows q, k, v), cross-attention
has q in ``attention/linear_0`` and k/v fused in ``attention/linear_1``; the output projection
is the last linear. Whisper's k_proj has no bias: its slice of the fused bias must be zero.

The result is a directory ``WhisperForConditionalGeneration.from_pretrained`` loads, with the
generation config, tokenizer and feature extractor that ``generate``, ``WhisperProcessor`` and
``WhisperFeatureExtractor`` need. Weights are written in float32 (the source is float16, so
the values are exact).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from salmonn_agent.errors import SalmonnError

__all__ = [
    "CTranslate2FormatError",
    "CTranslate2Model",
    "read_ctranslate2_model",
    "ctranslate2_whisper_state_dict",
    "convert_ctranslate2_whisper",
]

SUPPORTED_BINARY_VERSIONS = (4, 5, 6)
"""Binary versions whose variable layout (dtype code + byte count) this reader knows."""
WHISPER_SPEC_REVISION = 3

_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",
}

_GELU = 3  # CTranslate2's common_spec.Activation.GELU (exact erf GELU, what Whisper uses)

# Attributes the spec stores as scalars; checked against Whisper's architecture below.
_SCALARS = {
    "decoder/activation",
    "decoder/alibi",
    "decoder/alignment_heads",
    "decoder/alignment_layer",
    "decoder/num_heads",
    "decoder/pre_norm",
    "decoder/scale_embeddings",
    "decoder/start_from_zero_embedding",
    "encoder/num_heads",
}


class CTranslate2FormatError(SalmonnError, ValueError):
    """A CTranslate2 model directory that this converter cannot read or map to Whisper."""


@dataclass
class CTranslate2Model:
    """The content of a ``model.bin``: spec name, revision, arrays by name, aliases."""

    binary_version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """The array named ``name`` (following an alias), or a clear error if absent."""
        target = self.aliases.get(name, name)
        if target not in self.variables:
            raise CTranslate2FormatError(
                f"The CTranslate2 model has no variable {name!r}: it is not a Whisper model of "
                "the layout this converter knows (CTranslate2's WhisperSpec, revision 3)."
            )
        return self.variables[target]


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read_ctranslate2_model(path: str | Path) -> CTranslate2Model:
    """Read a CTranslate2 ``model.bin`` (or the directory holding it) into NumPy arrays."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    try:
        data = memoryview(path.read_bytes())
    except OSError as exc:
        raise CTranslate2FormatError(f"Cannot read the CTranslate2 model {path}: {exc}") from exc
    offset = 0

    def take(fmt: str):
        nonlocal offset
        size = struct.calcsize(fmt)
        if offset + size > len(data):
            raise CTranslate2FormatError(f"{path} is truncated (at byte {offset}).")
        values = struct.unpack_from(fmt, data, offset)
        offset += size
        return values if len(values) > 1 else values[0]

    def take_string() -> str:
        nonlocal offset
        length = take("<H")
        if length == 0 or offset + length > len(data):
            raise CTranslate2FormatError(f"{path} is truncated or corrupt (at byte {offset}).")
        text = bytes(data[offset : offset + length - 1]).decode("utf-8")
        offset += length
        return text

    version = take("<I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise CTranslate2FormatError(
            f"{path} has CTranslate2 binary version {version}; this reader supports versions "
            f"{', '.join(map(str, SUPPORTED_BINARY_VERSIONS))}."
        )
    spec = take_string()
    revision = take("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("<I")):
        name = take_string()
        rank = take("<B")
        shape = tuple(take("<I") for _ in range(rank))
        code = take("<B")
        nbytes = take("<I")
        if code not in _DTYPES:
            raise CTranslate2FormatError(f"{path}: variable {name!r} has unknown dtype code {code}.")
        if offset + nbytes > len(data):
            raise CTranslate2FormatError(f"{path} is truncated (variable {name!r}).")
        raw = data[offset : offset + nbytes]
        offset += nbytes
        dtype = _DTYPES[code]
        if dtype == "bfloat16":
            array = _bfloat16_to_float32(np.frombuffer(raw, dtype="<u2"))
        else:
            array = np.frombuffer(raw, dtype=dtype)
        count = int(np.prod(shape)) if shape else 1
        if array.size != count:
            raise CTranslate2FormatError(
                f"{path}: variable {name!r} holds {array.size} values, its shape {shape} needs {count}."
            )
        variables[name] = array.reshape(shape)
    aliases: dict[str, str] = {}
    if version >= 3:
        for _ in range(take("<I")):
            alias = take_string()
            aliases[alias] = take_string()
    if offset != len(data):
        raise CTranslate2FormatError(f"{path} has {len(data) - offset} unexpected bytes at its end.")
    return CTranslate2Model(version, spec, revision, variables, aliases)


# --- weights -----------------------------------------------------------------------------


def _count_layers(names: set[str], prefix: str) -> int:
    found = {int(m.group(1)) for n in names if (m := re.match(rf"{prefix}/layer_(\d+)/", n))}
    if found != set(range(len(found))):
        raise CTranslate2FormatError(f"The {prefix} layers are not numbered 0..n-1: {sorted(found)}.")
    return len(found)


def _scalar(model: CTranslate2Model, name: str) -> int:
    return int(model.get(name).reshape(()).item())


def whisper_hparams(model: CTranslate2Model) -> dict[str, int]:
    """The architecture numbers of a CTranslate2 Whisper model, read from its arrays."""
    if model.spec != "WhisperSpec":
        raise CTranslate2FormatError(
            f"The CTranslate2 model is a {model.spec!r}, not a WhisperSpec: only Whisper converts."
        )
    if model.revision != WHISPER_SPEC_REVISION:
        raise CTranslate2FormatError(
            f"The CTranslate2 WhisperSpec has revision {model.revision}; this converter knows "
            f"revision {WHISPER_SPEC_REVISION}."
        )
    names = set(model.variables) | set(model.aliases)
    vocab, d_model = model.get("decoder/embeddings/weight").shape
    expected = {"decoder/pre_norm": 1, "decoder/scale_embeddings": 0, "decoder/alibi": 0,
                "decoder/activation": _GELU, "decoder/start_from_zero_embedding": 0}
    for name, value in expected.items():
        if name in names and _scalar(model, name) != value:
            raise CTranslate2FormatError(
                f"The CTranslate2 model has {name} = {_scalar(model, name)}; Whisper has {value}."
            )
    return {
        "vocab_size": int(vocab),
        "d_model": int(d_model),
        "encoder_layers": _count_layers(names, "encoder"),
        "decoder_layers": _count_layers(names, "decoder"),
        "encoder_attention_heads": _scalar(model, "encoder/num_heads"),
        "decoder_attention_heads": _scalar(model, "decoder/num_heads"),
        "encoder_ffn_dim": int(model.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        "decoder_ffn_dim": int(model.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        "num_mel_bins": int(model.get("encoder/conv1/weight").shape[1]),
        "max_source_positions": int(model.get("encoder/position_encodings/encodings").shape[0]),
        "max_target_positions": int(model.get("decoder/position_encodings/encodings").shape[0]),
    }


def ctranslate2_whisper_state_dict(model: CTranslate2Model) -> dict[str, np.ndarray]:
    """Map a CTranslate2 Whisper model to ``WhisperForConditionalGeneration`` names (float32).

    Every variable of the file must be used, and every Whisper parameter found; anything else
    raises :class:`CTranslate2FormatError` naming the variables.
    """
    hp = whisper_hparams(model)
    d = hp["d_model"]
    used: set[str] = set(_SCALARS)
    out: dict[str, np.ndarray] = {}

    def take(name: str) -> np.ndarray:
        used.add(model.aliases.get(name, name))
        used.add(name)
        return np.asarray(model.get(name), dtype=np.float32)

    def linear(src: str, dst: str, bias: bool = True) -> None:
        out[f"{dst}.weight"] = take(f"{src}/weight")
        if bias:
            out[f"{dst}.bias"] = take(f"{src}/bias")

    def norm(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = take(f"{src}/gamma")
        out[f"{dst}.bias"] = take(f"{src}/beta")

    def split_rows(src: str, dsts: list[str], bias_free: str) -> None:
        weight, bias = take(f"{src}/weight"), take(f"{src}/bias")
        if weight.shape != (d * len(dsts), d) or bias.shape != (d * len(dsts),):
            raise CTranslate2FormatError(
                f"{src} has shape {weight.shape}; expected {(d * len(dsts), d)} (fused projections)."
            )
        for i, dst in enumerate(dsts):
            out[f"{dst}.weight"] = weight[i * d : (i + 1) * d]
            part = bias[i * d : (i + 1) * d]
            if dst.endswith(bias_free):
                if np.any(part != 0):
                    raise CTranslate2FormatError(
                        f"{src}: the key projection has a non-zero bias, which Whisper lacks."
                    )
            else:
                out[f"{dst}.bias"] = part

    def ffn(src: str, dst: str) -> None:
        norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
        linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
        linear(f"{src}/ffn/linear_1", f"{dst}.fc2")

    def self_attention(src: str, dst: str) -> None:
        norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        split_rows(f"{src}/self_attention/linear_0",
                   [f"{dst}.self_attn.{p}_proj" for p in "qkv"], bias_free=".k_proj")
        linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")

    enc, dec = "model.encoder", "model.decoder"
    linear("encoder/conv1", f"{enc}.conv1")
    linear("encoder/conv2", f"{enc}.conv2")
    out[f"{enc}.embed_positions.weight"] = take("encoder/position_encodings/encodings")
    norm("encoder/layer_norm", f"{enc}.layer_norm")
    for i in range(hp["encoder_layers"]):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        self_attention(src, dst)
        ffn(src, dst)

    out[f"{dec}.embed_tokens.weight"] = take("decoder/embeddings/weight")
    out[f"{dec}.embed_positions.weight"] = take("decoder/position_encodings/encodings")
    norm("decoder/layer_norm", f"{dec}.layer_norm")
    for i in range(hp["decoder_layers"]):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        self_attention(src, dst)
        norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        split_rows(f"{src}/attention/linear_1",
                   [f"{dst}.encoder_attn.{p}_proj" for p in "kv"], bias_free=".k_proj")
        linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        ffn(src, dst)

    projection = take("decoder/projection/weight")
    if not np.array_equal(projection, out[f"{dec}.embed_tokens.weight"]):
        raise CTranslate2FormatError(
            "decoder/projection/weight differs from the token embeddings; Whisper ties them."
        )
    if "decoder/projection/bias" in model.variables:
        raise CTranslate2FormatError("decoder/projection has a bias; Whisper's output layer has none.")

    unused = sorted(set(model.variables) - used)
    if unused:
        hint = " (an int8-quantized model? convert it with float16 or float32 weights)" if any(
            n.endswith("weight_scale") for n in unused) else ""
        raise CTranslate2FormatError(
            f"The CTranslate2 model has {len(unused)} variables this converter does not know"
            f"{hint}: {', '.join(unused[:8])}{' ...' if len(unused) > 8 else ''}"
        )
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


# --- tokenizer and configs ---------------------------------------------------------------

_TIMESTAMP = re.compile(r"^<\|\d+\.\d\d\|>$")
_SPECIAL = re.compile(r"^<\|[^|]+\|>$")

_TASK_TOKENS = ("<|translate|>", "<|transcribe|>")
_NON_LANGUAGE = {"<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
                 "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"}


def _read_vocabulary(model_dir: Path) -> list[str]:
    txt, js = model_dir / "vocabulary.txt", model_dir / "vocabulary.json"
    if txt.is_file():
        text = txt.read_text(encoding="utf-8")
        return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    if js.is_file():
        return list(json.loads(js.read_text(encoding="utf-8")))
    raise CTranslate2FormatError(f"{model_dir} has no vocabulary.txt or vocabulary.json.")


def _build_tokenizer(model_dir: Path, vocabulary: list[str]):
    """A ``WhisperTokenizer`` whose ids are exactly those of the CTranslate2 vocabulary."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise CTranslate2FormatError(
            f"{model_dir} has no tokenizer.json; the BPE merges are needed to build the tokenizer."
        )
    spec = json.loads(path.read_text(encoding="utf-8"))
    bpe = spec.get("model", {})
    if bpe.get("type") != "BPE":
        raise CTranslate2FormatError(f"{path} is not a byte-level BPE tokenizer.")
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in bpe["merges"]]
    specials = [t for t in vocabulary if _SPECIAL.match(t) and not _TIMESTAMP.match(t)]
    timestamps = [t for t in vocabulary if _TIMESTAMP.match(t)]
    base = {t: i for t, i in bpe["vocab"].items() if t not in specials}
    english_only = "<|translate|>" not in vocabulary or vocabulary.index("<|endoftext|>") == 50256
    tokenizer = WhisperTokenizer(
        vocab=base, merges=merges, unk_token="<|endoftext|>", bos_token="<|endoftext|>",
        eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        model_max_length=1024,
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [
            AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=True) for t in specials]},
        replace_extra_special_tokens=False,
    )
    tokenizer.add_tokens(
        [AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=False) for t in timestamps]
    )
    if len(tokenizer) != len(vocabulary):
        raise CTranslate2FormatError(
            f"The rebuilt tokenizer has {len(tokenizer)} tokens, the CTranslate2 vocabulary {len(vocabulary)}."
        )
    ids = tokenizer.convert_tokens_to_ids(vocabulary)
    wrong = [i for i, j in enumerate(ids) if i != j]
    if wrong:
        raise CTranslate2FormatError(
            f"The rebuilt tokenizer numbers {len(wrong)} tokens differently from the CTranslate2 "
            f"vocabulary (first: {vocabulary[wrong[0]]!r} is {wrong[0]} there, {ids[wrong[0]]} here)."
        )
    return tokenizer, english_only


def _configs(hp: dict[str, int], vocabulary: list[str], ct2_config: dict, english_only: bool):
    from transformers import GenerationConfig, WhisperConfig

    index = {t: i for i, t in enumerate(vocabulary)}
    eot, sot = index["<|endoftext|>"], index["<|startoftranscript|>"]
    suppress = list(ct2_config.get("suppress_ids") or [])
    begin_suppress = list(ct2_config.get("suppress_ids_begin") or [220, eot])
    config = WhisperConfig(
        **hp,
        activation_function="gelu",
        scale_embedding=False,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
        suppress_tokens=suppress, begin_suppress_tokens=begin_suppress,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        tie_word_embeddings=True,
    )
    config.architectures = ["WhisperForConditionalGeneration"]
    config.dtype = "float32"
    generation = GenerationConfig(
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=sot,
        max_length=hp["max_target_positions"],
        begin_suppress_tokens=begin_suppress, suppress_tokens=suppress,
        no_timestamps_token_id=index["<|notimestamps|>"],
        prev_sot_token_id=index["<|startofprev|>"],
        max_initial_timestamp_index=50,
        return_timestamps=False,
        is_multilingual=not english_only,
    )
    heads = ct2_config.get("alignment_heads")
    if heads:
        generation.alignment_heads = [list(map(int, h)) for h in heads]
    if not english_only:
        languages = [t for t in vocabulary if _SPECIAL.match(t) and t not in _NON_LANGUAGE
                     and not _TIMESTAMP.match(t)]
        generation.lang_to_id = {t: index[t] for t in languages}
        generation.task_to_id = {t.strip("<|>"): index[t] for t in _TASK_TOKENS}
    return config, generation


def convert_ctranslate2_whisper(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Convert the CTranslate2 Whisper model in ``model_dir`` into ``out_dir`` (created).

    ``out_dir`` then holds ``config.json``, ``generation_config.json``, ``model.safetensors``
    (float32), the tokenizer files and ``preprocessor_config.json``: it loads with
    ``WhisperForConditionalGeneration``/``WhisperModel``/``WhisperProcessor.from_pretrained``.
    """
    from safetensors.numpy import save_file
    from transformers import WhisperFeatureExtractor

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "model.bin").is_file():
        raise CTranslate2FormatError(f"{model_dir} is not a CTranslate2 model directory (no model.bin).")
    model = read_ctranslate2_model(model_dir)
    hp = whisper_hparams(model)
    state = ctranslate2_whisper_state_dict(model)
    vocabulary = _read_vocabulary(model_dir)
    if len(vocabulary) != hp["vocab_size"]:
        raise CTranslate2FormatError(
            f"The vocabulary has {len(vocabulary)} tokens, the model's embeddings {hp['vocab_size']}."
        )
    ct2_config_path = model_dir / "config.json"
    ct2_config = json.loads(ct2_config_path.read_text()) if ct2_config_path.is_file() else {}
    tokenizer, english_only = _build_tokenizer(model_dir, vocabulary)
    config, generation = _configs(hp, vocabulary, ct2_config, english_only)

    out_dir.mkdir(parents=True, exist_ok=True)
    # proj_out.weight is tied to the token embeddings: transformers restores it on load.
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(out_dir)
    generation.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    # decode(normalize=True) needs normalizer.json, the British->American spelling map of
    # OpenAI's English normalizer, which the CTranslate2 files lack; an empty map keeps the
    # rest of the normalizer working (spellings are then left as they are).
    (out_dir / "normalizer.json").write_text("{}\n", encoding="utf-8")
    extractor = WhisperFeatureExtractor(
        feature_size=hp["num_mel_bins"], sampling_rate=16000, hop_length=160, chunk_length=30,
        n_fft=400, padding_value=0.0, return_attention_mask=False,
    )
    extractor.save_pretrained(out_dir)
    # The SALMONN loader reads the feature extractor back; fail here, not there.
    WhisperFeatureExtractor.from_pretrained(out_dir)
    return out_dir
