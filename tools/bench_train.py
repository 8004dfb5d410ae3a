"""Benchmark SALMONN training on the CPU: seconds per optimizer step, with and without the cache.

A locally built, randomly initialised model (``small``: Whisper-tiny-shaped encoder +
SmolLM2-135M-shaped LLM, ``devkit.tiny.SIZES``; ``tiny``: the test model), 8 generated clips
(``--seconds`` each; Whisper always encodes a 30 s window), batch 8, one optimizer step per
batch. The first step is a warm-up; the median of the next ``--steps`` is reported. With the
feature cache, the warm-up step fills it and the timed steps read Whisper's output from disk.

Usage: python tools/bench_train.py --json [--size small|tiny] [--steps 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # devkit/ sits at the repository root, outside the package
    sys.path.insert(0, str(ROOT))

from devkit.demo_data import make_demo_dataset  # noqa: E402
from devkit.tiny import SIZES, build_tiny_model  # noqa: E402
from salmonn_agent.model.salmonn import SALMONN  # noqa: E402
from salmonn_agent.training.config import TrainConfig  # noqa: E402
from salmonn_agent.training.trainer import Trainer  # noqa: E402

def _run(model_dir: Path, ann: Path, out: Path, steps: int, batch: int, cache: Path | None) -> list[float]:
    config = TrainConfig(
        model=str(model_dir), output_dir=str(out),
        datasets={"train_ann_path": str(ann), "prompt_path": str(ann.parent / "prompts.json"),
                  "feature_cache_dir": str(cache) if cache else None},
        run={"batch_size_train": batch, "log_freq": 1, "progress": False, "resume": None,
             "optims": {"max_epoch": steps + 1, "warmup_steps": 1}},
    )
    model = SALMONN.from_pretrained(model_dir, device="cpu")
    Trainer(config, model=model).train()
    elapsed = [json.loads(line)["elapsed_s"] for line in (out / "metrics.jsonl").read_text().splitlines()
               if json.loads(line)["split"] == "train"]
    return list(np.diff(elapsed))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each generated clip")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny_model(root / "model", **SIZES[args.size])
        ann = make_demo_dataset(root / "data", args.batch, seconds=args.seconds)
        plain = _run(model_dir, ann, root / "plain", args.steps, args.batch, None)
        cached = _run(model_dir, ann, root / "cached", args.steps, args.batch, root / "cache")
    step_s, cached_s = float(np.median(plain)), float(np.median(cached))
    print(json.dumps({
        "size": args.size, "threads": torch.get_num_threads(), "batch": args.batch, "clip_seconds": args.seconds,
        "step_s": round(step_s, 3), "samples_per_s": round(args.batch / step_s, 2),
        "cached_step_s": round(cached_s, 3), "cached_samples_per_s": round(args.batch / cached_s, 2),
        "timed_steps": args.steps, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
