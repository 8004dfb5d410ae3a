"""GPU memory of SALMONN-13B and SALMONN-7B per weight format, from the official shapes.

Every part is built on PyTorch's meta device from its configuration numbers alone (no weights,
no download): Whisper large-v2's encoder, BEATs (iter3+, AS2M fine-tuned), the window-level
Q-Former and projection, and the LLM (Vicuna-13B v1.1 / Vicuna-7B v1.5, LLaMA shapes) with
the official LoRA (r=8 on q_proj and v_proj). Bytes per part are counted for:
- ``float32``: every weight in 4 bytes (``--dtype float32``, what ``auto`` picks on CUDA);
- ``float16``: every weight in 2 bytes (``--dtype float16``);
- ``int8`` / ``int4``: ``--quantize``; the LLM's linear layers (LM head excepted) as
  bitsandbytes stores them (:func:`salmonn_agent.model.weight_quant.quantized_linear_bytes`),
  everything else float16.

The allowance on top is the float16 key/value cache of one answer at ``--context`` positions
(batch 1) plus ``--overhead-gib`` for the CUDA context, library workspaces and the activations
of one 30 s chunk (an assumption, not a measurement). ``gpu`` is the smallest common card size
whose memory holds the total with 5 % to spare.

Usage: python tools/model_memory.py --json [--context 2048] [--overhead-gib 1.5] [--table]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from salmonn_agent.config import QFormerConfig, SALMONNConfig  # noqa: E402
from salmonn_agent.model.beats import BEATs, BEATsConfig  # noqa: E402
from salmonn_agent.model.lora import add_lora  # noqa: E402
from salmonn_agent.model.qformer import WindowQFormer  # noqa: E402
from salmonn_agent.model.salmonn import quiet_base_loading  # noqa: E402
from salmonn_agent.model.weight_quant import QUANTIZE_MODES, quantized_linear_bytes  # noqa: E402

GIB = 1024**3
GPU_SIZES_GB = (8, 12, 16, 24, 32, 40, 48, 80, 141)
"""Common GPU memory sizes (GiB as the cards report them)."""
LLMS = {
    # name: (LLM, hidden, layers, heads, intermediate, vocab)
    "SALMONN-13B": ("lmsys/vicuna-13b-v1.1", 5120, 40, 40, 13824, 32000),
    "SALMONN-7B": ("lmsys/vicuna-7b-v1.5", 4096, 32, 32, 11008, 32000),
}
BEATS_CFG = {
    "input_patch_size": 16, "embed_dim": 512, "conv_bias": False, "encoder_layers": 12,
    "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12,
    "conv_pos": 128, "conv_pos_groups": 16, "relative_position_embedding": True, "num_buckets": 320,
    "max_distance": 800, "gru_rel_pos": True, "deep_norm": True, "finetuned_model": True,
}


def build_parts(llm_name: str) -> tuple[dict[str, nn.Module], nn.Module]:
    """The parts of one official model on the meta device, and its LLM (LoRA included)."""
    from transformers import LlamaConfig, LlamaForCausalLM, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    _, hidden, layers, heads, intermediate, vocab = LLMS[llm_name]
    whisper = WhisperConfig(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
                            num_mel_bins=80, max_source_positions=1500)
    config = SALMONNConfig(whisper="openai/whisper-large-v2", llm=LLMS[llm_name][0])
    with torch.device("meta"), quiet_base_loading():
        llm = add_lora(LlamaForCausalLM(LlamaConfig(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=intermediate, vocab_size=vocab, max_position_embeddings=2048,
        )), config)
        beats = BEATs(BEATsConfig.from_checkpoint_cfg(BEATS_CFG))
        qformer = nn.ModuleDict({
            "window_qformer": WindowQFormer(QFormerConfig(), 1280 + beats.output_dim, 0.333333, 0.333333),
            "projection": nn.Linear(QFormerConfig().hidden_size, hidden),
            "ln_speech": nn.LayerNorm(1280), "ln_audio": nn.LayerNorm(beats.output_dim),
        })
        parts = {"whisper": WhisperEncoder(whisper), "beats": beats, "qformer": qformer, "llm": llm}
    return parts, llm


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())


def llm_split(llm: nn.Module) -> dict[str, list[nn.Linear] | int]:
    """The LLM's linear layers ``--quantize`` converts, and the element counts of the rest
    (LoRA's matrices apart)."""
    base = llm.get_base_model()
    head = base.get_output_embeddings()
    quantized = [m for n, m in base.named_modules() if type(m) is nn.Linear and m is not head and "lora_" not in n]
    lora = sum(p.numel() for n, p in base.named_parameters() if "lora_" in n)
    rest = _count(base) - lora - sum(_count(m) for m in quantized)
    return {"quantized": quantized, "lora": lora, "rest": rest}


def report(name: str, context: int, overhead_gib: float) -> dict[str, object]:
    """Parameters per part and, per weight format, bytes per part, allowance, total and GPU."""
    parts, llm = build_parts(name)
    split = llm_split(llm)
    counts = {part: _count(module) for part, module in parts.items()}
    others = {part: n for part, n in counts.items() if part != "llm"}
    lora = split["lora"]
    counts["llm"] -= lora
    counts["lora"] = lora
    _, hidden, layers, _, _, _ = LLMS[name]
    kv_cache = 2 * layers * hidden * context * 2  # keys and values, float16, batch 1
    allowance = kv_cache + overhead_gib * GIB
    modes: dict[str, object] = {}
    for mode in ("float32", "float16", *QUANTIZE_MODES):
        if mode in QUANTIZE_MODES:
            llm_bytes = 2 * split["rest"] + sum(
                quantized_linear_bytes(m.in_features, m.out_features, mode) + 2 * (m.bias.numel() if m.bias is not None else 0)
                for m in split["quantized"]
            )
            width = 2
        else:
            width = 4 if mode == "float32" else 2
            llm_bytes = width * counts["llm"]
        part_bytes = {part: width * n for part, n in others.items()} | {"llm": llm_bytes, "lora": width * lora}
        weights = sum(part_bytes.values())
        total = (weights + allowance) / GIB
        modes[mode] = {
            "parts_gib": {part: round(b / GIB, 2) for part, b in part_bytes.items()},
            "weights_gib": round(weights / GIB, 2),
            "allowance_gib": round(allowance / GIB, 2),
            "total_gib": round(total, 2),
            "gpu": next((f"{size} GB" for size in GPU_SIZES_GB if total <= 0.95 * size), "more than one GPU"),
        }
    return {"llm": LLMS[name][0], "parameters": counts, "kv_cache_gib": round(kv_cache / GIB, 2), "modes": modes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the default output)")
    parser.add_argument("--table", action="store_true", help="print a Markdown table instead")
    parser.add_argument("--context", type=int, default=2048, help="key/value cache positions (batch 1)")
    parser.add_argument("--overhead-gib", type=float, default=1.5,
                        help="CUDA context, workspaces and activations (an assumption)")
    args = parser.parse_args()
    models = {name: report(name, args.context, args.overhead_gib) for name in LLMS}
    if args.table:
        print("| model | float32 | float16 | `--quantize int8` | `--quantize int4` |")
        print("|---|---|---|---|---|")
        for name, model in models.items():
            cells = [f"{m['total_gib']:.1f} GiB: {m['gpu']}" for m in model["modes"].values()]
            print(f"| {name} | " + " | ".join(cells) + " |")
        return 0
    assumptions = {"context_positions": args.context, "batch": 1, "overhead_gib": args.overhead_gib,
                   "kv_cache": "float16", "gpu_headroom": 0.05}
    print(json.dumps({"assumptions": assumptions, "models": models}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
