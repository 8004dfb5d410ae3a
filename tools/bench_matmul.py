"""Benchmark the LLM's linear products per weight format, the measurements behind
``salmonn_agent/model/half_weights.py`` and ``precision.py``'s choice of ``auto`` on a CPU.

Random weights of SmolLM2-135M's linear shapes (30 layers of q/k/v/o and gate/up/down
projections, then the 49,152 x 576 LM head), each a separate tensor so that a pass reads them
from memory as a decoding step does. For each of float32, float16 and bfloat16 it times one
pass over all of them with 1, 10 and 96 input rows (a decoding step, a guided-decoding check of
drafted tokens, a short prefill), median of ``--repeats``; and the cost of widening the float16
LM head to float32 (what ``float16-weights`` does above its row limit) against its float16
product of 10 rows. Also says whether this CPU has native bfloat16 arithmetic
(``precision.native_bfloat16``).

Prints one JSON object: ``pass_ms`` per format and row count, ``head_widen_ms``,
``head_float16_10_rows_ms``, ``native_bfloat16``, ``threads``.

Usage: python tools/bench_matmul.py --json [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from salmonn_agent.model.precision import native_bfloat16  # noqa: E402

HIDDEN, KV, INTERMEDIATE, LAYERS, VOCAB = 576, 192, 1536, 30, 49152
"""SmolLM2-135M-Instruct's shapes (salmonn-mini's LLM)."""
ROWS = (1, 10, 96)
FORMATS = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def llm_shapes() -> list[tuple[int, int]]:
    """(out, in) of every linear weight of the LLM, the LM head last."""
    layer = [(HIDDEN, HIDDEN), (KV, HIDDEN), (KV, HIDDEN), (HIDDEN, HIDDEN),
             (INTERMEDIATE, HIDDEN), (INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE)]
    return layer * LAYERS + [(VOCAB, HIDDEN)]


def median_ms(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``run`` in ms, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1:
        raise SystemExit("--threads and --repeats must be at least 1.")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shapes = llm_shapes()
    pass_ms: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for name, dtype in FORMATS.items():
            weights = [torch.randn(*shape).to(dtype) for shape in shapes]
            pass_ms[name] = {}
            for rows in ROWS:
                inputs = {width: torch.randn(rows, width).to(dtype) for width in (HIDDEN, INTERMEDIATE)}
                pass_ms[name][str(rows)] = median_ms(
                    lambda: [F.linear(inputs[w.shape[1]], w) for w in weights], args.repeats)
            del weights
        head = torch.randn(VOCAB, HIDDEN).half()
        rows10 = torch.randn(10, HIDDEN).half()
        result = {
            "pass_ms": pass_ms,
            "head_widen_ms": median_ms(lambda: head.float(), args.repeats),
            "head_float16_10_rows_ms": median_ms(lambda: F.linear(rows10, head), args.repeats),
            "native_bfloat16": native_bfloat16(),
            "threads": torch.get_num_threads(),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
