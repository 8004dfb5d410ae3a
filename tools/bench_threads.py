"""Benchmark the LLM's forward pass in a second Python thread, as ChatSALMONN's engine runs it.

Measures what ``salmonn_agent/model/threads.py`` is about: with PyTorch's GNU OpenMP, a thread's
parallel regions run slower once another thread owns a pool of OpenMP workers. Each case runs
in a fresh process: the model (salmonn-mini by default) is loaded through ``load_model`` in the
main thread (``one_thread``: loaded on one thread) or, with ``--case pool``, after one parallel
region on ``--threads`` threads in the main thread (what loading did before); then a second
thread times forward passes of 1 and 18 new positions over 380 cached ones (a decoding step and
a follow-up turn's prefill), median of 7 each.

Prints one JSON object: per case ``decode_ms`` and ``prefill18_ms``, and
``pool_slowdown_decode`` / ``pool_slowdown_prefill18`` (pool / one_thread).

Usage: python tools/bench_threads.py --json [--model salmonn-mini|DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHED, REPEATS = 380, 7


def measure(model_name: str | None, threads: int, pool: bool) -> dict[str, float]:
    """Forward-pass times (ms) in a second thread, in this process."""
    import torch
    from transformers import DynamicCache

    from salmonn_agent.model.threads import use_threads
    from salmonn_agent.registry import load_model

    torch.set_num_threads(threads)
    if pool:  # one parallel region on several threads in the main thread
        (torch.ones(10**7) * 2).sum()
    model = load_model(model_name, device="cpu")
    out: dict[str, float] = {}

    def run() -> None:
        use_threads(threads)  # as the engine's thread does
        lm = model.llm
        width = lm.get_input_embeddings().weight.shape[1]
        torch.manual_seed(0)
        cache = DynamicCache(config=lm.config.get_text_config(decoder=True))
        with torch.no_grad():
            lm(inputs_embeds=torch.randn(1, CACHED, width) * 0.02, cache=cache, use_cache=True, logits_to_keep=1)
            for rows, key in ((1, "decode_ms"), (18, "prefill18_ms")):
                times = []
                for _ in range(REPEATS):
                    if cache.get_seq_length() > CACHED:
                        cache.crop(CACHED - cache.get_seq_length())  # back to the cached positions
                    x = torch.randn(1, rows, width) * 0.02
                    mask = torch.ones(1, CACHED + rows, dtype=torch.long)
                    start = time.perf_counter()
                    lm(inputs_embeds=x, attention_mask=mask, cache=cache, use_cache=True, logits_to_keep=1)
                    times.append((time.perf_counter() - start) * 1000)
                out[key] = round(statistics.median(times), 1)

    failure: list[BaseException] = []

    def guarded() -> None:
        try:
            run()
        except BaseException as err:  # reported by the main thread
            failure.append(err)

    worker = threading.Thread(target=guarded)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both cases in fresh processes and print the JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--model", help="a model directory or salmonn-mini (default: the embedded model)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--case", choices=("pool", "one_thread"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        print(f"bench_threads: error: --threads must be at least 1, got {args.threads}.", file=sys.stderr)
        return 2
    if args.case:
        print(json.dumps(measure(args.model, args.threads, args.case == "pool")))
        return 0
    result: dict[str, Any] = {"threads": args.threads, "model": args.model or "salmonn-mini"}
    for case in ("one_thread", "pool"):
        command = [sys.executable, __file__, "--case", case, "--threads", str(args.threads)]
        if args.model:
            command += ["--model", args.model]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            print(f"bench_threads: error: the {case} case failed: {done.stderr.strip().splitlines()[-1:]}",
                  file=sys.stderr)
            return 1
        result[case] = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("decode_ms", "prefill18_ms"):
        name = key.removesuffix("_ms")
        result[f"pool_slowdown_{name}"] = round(result["pool"][key] / result["one_thread"][key], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
