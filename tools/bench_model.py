"""Benchmark SALMONN inference (CPU by default) with a locally built, randomly initialised model.

Sizes: ``small`` has Whisper tiny's encoder shape (384 wide, 4 layers) and SmolLM2-135M's LLM
shape (576 wide, 30 layers, 9 heads); ``tiny`` is the test model. Random weights run at the
same speed as trained ones. Prints one JSON object:
encode_ms (30 s clip → audio tokens), first_token_ms (prompt with audio tokens → first
streamed text), tokens_per_s (greedy decoding, forced length), peak_rss_mb.

``--dtype`` is the CLI's precision (default ``auto``: float16-weights on a CPU); run it twice
(``--dtype float32`` and the default) to compare in one session.

``--quantize int8|int4`` quantizes the LLM's weights (bitsandbytes); ``llm_weights_mb`` is the
memory of the LLM's weights and buffers as stored, to compare with the default.

``--device cuda`` measures on a GPU (``auto`` is float32 there, float16 with ``--quantize``;
try ``--dtype bfloat16``).

``--compile on`` also decodes with the compiled path (static key/value cache + torch.compile;
CUDA graphs on a GPU) and reports ``compiled_tokens_per_s``, ``compile_warmup_s`` (the first
call, which compiles), ``compiled_same_tokens`` (its greedy tokens against the default path's)
and ``compiled_first_token_ms``, beside the default path's numbers from the same run. Decoding
is timed through ``generate_detailed`` with the length forced. ``--compile off`` (the default)
measures the default path only.

Usage: python tools/bench_model.py --json [--size small|tiny] [--tokens 32] [--threads N] [--dtype auto]
       [--quantize int8|int4] [--device cpu|cuda] [--compile on|off]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # devkit/ sits at the repository root, outside the package
    sys.path.insert(0, str(ROOT))

from devkit.tiny import SIZES, build_tiny_model  # noqa: E402
from salmonn_agent.audio import SAMPLE_RATE  # noqa: E402
from salmonn_agent.errors import ConfigError, SalmonnError  # noqa: E402
from salmonn_agent.model.half_weights import weight_format  # noqa: E402
from salmonn_agent.model.lora import bare_llm  # noqa: E402
from salmonn_agent.model.salmonn import SALMONN  # noqa: E402
from salmonn_agent.model.weight_quant import stored_bytes  # noqa: E402

def _median_ms(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--tokens", type=int, default=32, help="tokens to decode for tokens_per_s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--dtype", default="auto", help="as the CLI's --dtype (default: auto)")
    parser.add_argument("--quantize", default=None, help="as the CLI's --quantize: int8 or int4 (default: none)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    parser.add_argument("--compile", default="off", help="on: also measure compiled decoding; off (default)")
    args = parser.parse_args()
    if args.compile not in ("on", "off"):
        raise ConfigError(f"Unknown --compile {args.compile!r}: use on or off.")
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        model = SALMONN.from_pretrained(build_tiny_model(tmp, **SIZES[args.size]), device=args.device,
                                      dtype=args.dtype, quantize=args.quantize)
    model.set_compile("off")  # the default path first; --compile on measures the compiled one after
    clip = (np.random.default_rng(0).standard_normal(30 * SAMPLE_RATE) * 0.1).astype(np.float32)
    samples = model.load(clip, SAMPLE_RATE)
    model.encode_samples([samples])  # warm-up
    with torch.no_grad():
        encode_ms = _median_ms(lambda: model.encode_samples([samples]), args.repeats, model.device)
        encoded = model.encode_samples([samples])[0]
    prompt = model.render_prompt("Please describe the audio.")

    def first_token() -> None:
        stream = model.stream_from_prompt(prompt, [encoded], max_new_tokens=args.tokens)
        next(stream, None)
        stream.close()

    first_token()  # warm-up
    first_token_ms = _median_ms(first_token, args.repeats, model.device)

    inputs = model.embed_prompts([prompt], [[encoded]])
    forced = {"max_new_tokens": args.tokens, "min_length": args.tokens, "num_beams": 1, "do_sample": False}

    def decode() -> list[int]:
        return model.generate_detailed([prompt], [[encoded]], **forced)[0].token_ids

    eager_ids = decode()  # warm-up
    decode_ms = _median_ms(decode, args.repeats, model.device)
    compiled: dict[str, object] = {}
    if args.compile == "on":
        model.set_compile("on")
        start = time.perf_counter()
        compiled_ids = decode()
        warmup_s = time.perf_counter() - start
        compiled_ms = _median_ms(decode, args.repeats, model.device)
        compiled = {
            "compiled_tokens_per_s": round(args.tokens / (compiled_ms / 1000), 1),
            "compile_warmup_s": round(warmup_s, 1),
            "compiled_same_tokens": compiled_ids == eager_ids,
            # each stream generates in a new thread, and CUDA graphs are recorded per thread
            "compiled_first_token_ms": round(_median_ms(first_token, args.repeats, model.device), 1),
            "compiled_path": model.compiled.last_reason,
        }
    result = {
        "size": args.size,
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "half_weights": weight_format(model.llm),  # "float16", "bfloat16" or None
        "quantize": model.weight_quantization,
        "llm_weights_mb": round(stored_bytes(bare_llm(model.llm)) / 2**20, 1),
        "audio_tokens": encoded.num_tokens,
        "prompt_positions": int(inputs.embeds.shape[1]),
        "encode_ms": round(encode_ms, 1),
        "first_token_ms": round(first_token_ms, 1),
        "tokens_per_s": round(args.tokens / (decode_ms / 1000), 1),
        "decode_tokens": args.tokens,
        **compiled,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SalmonnError as err:  # a bad option (device, dtype, model): one line, not a traceback
        print(f"bench_model: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
