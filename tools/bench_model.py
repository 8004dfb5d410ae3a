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

Usage: python tools/bench_model.py --json [--size small|tiny] [--tokens 32] [--threads N] [--dtype auto]
       [--quantize int8|int4] [--device cpu|cuda]
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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        model = SALMONN.from_pretrained(build_tiny_model(tmp, **SIZES[args.size]), device=args.device,
                                      dtype=args.dtype, quantize=args.quantize)
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

    def decode() -> None:
        with torch.no_grad():
            model.llm.generate(
                inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask,
                max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False,
                num_beams=1, pad_token_id=model.tokenizer.tokenizer.pad_token_id,
            )

    decode_ms = _median_ms(decode, args.repeats, model.device)
    result = {
        "size": args.size,
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "float16_weights": model.half_weights,
        "quantize": model.weight_quantization,
        "llm_weights_mb": round(stored_bytes(bare_llm(model.llm)) / 2**20, 1),
        "audio_tokens": encoded.num_tokens,
        "prompt_positions": int(inputs.embeds.shape[1]),
        "encode_ms": round(encode_ms, 1),
        "first_token_ms": round(first_token_ms, 1),
        "tokens_per_s": round(args.tokens / (decode_ms / 1000), 1),
        "decode_tokens": args.tokens,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    from salmonn_agent.errors import SalmonnError

    try:
        raise SystemExit(main())
    except SalmonnError as err:  # a bad option (device, dtype, model): one line, not a traceback
        print(f"bench_model: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
