"""``salmonn-agent train CONFIG.yaml`` and ``salmonn-agent evaluate CONFIG.yaml``.

Both run under ``accelerate launch`` unchanged (one process per GPU); without it they use one
CPU or GPU. ``--set run.max_steps=10`` overrides any YAML key (values parsed as YAML).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from salmonn_agent.errors import ConfigError


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. run.max_steps=10), got {pair!r}.")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _train(args: argparse.Namespace) -> int:
    from salmonn_agent.training.config import load_train_config
    from salmonn_agent.training.trainer import fill_cache, train

    config = load_train_config(args.config, _overrides(args.set))
    if args.cache_only:
        print(json.dumps(fill_cache(config)))
        return 0
    result = train(config)
    summary = {"steps": result.steps, "final_loss": result.final_loss, "model_dir": str(result.model_dir),
               "skipped": len(result.skipped), "seconds": round(result.seconds, 2), "validation": result.validation}
    if not result.main_process:  # under accelerate launch, one summary for the whole run
        return 0
    print(json.dumps(summary))
    if result.skipped:
        print(f"{len(result.skipped)} samples skipped (unreadable audio); see metrics.jsonl", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from salmonn_agent.training.config import load_train_config
    from salmonn_agent.training.trainer import evaluate

    config = load_train_config(args.config, _overrides(args.set))
    metrics = evaluate(config, model_dir=args.model, split=args.split)
    text = json.dumps(metrics, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    return 0


def add_training_commands(subparsers: Any) -> None:
    """Register ``train`` and ``evaluate`` on the CLI's subparsers."""
    train = subparsers.add_parser("train", help="train SALMONN from a YAML config (resumes automatically)")
    train.add_argument("config", help="training YAML (see examples/training/)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. run.max_steps=10")
    train.add_argument("--cache-only", action="store_true",
                       help="only compute the training data's encoder features (and hints) into "
                            "datasets.feature_cache_dir, then stop")
    train.set_defaults(handler=_train)

    ev = subparsers.add_parser("evaluate", help="per-task metrics (loss, token accuracy, WER) as JSON")
    ev.add_argument("config", help="training YAML whose datasets.test_ann_path (or valid) is evaluated")
    ev.add_argument("--model", help="model directory (default: OUTPUT_DIR/model, else the config's model)")
    ev.add_argument("--split", choices=["test", "valid", "train"], default="test")
    ev.add_argument("--output", help="also write the JSON to this file")
    ev.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    ev.set_defaults(handler=_evaluate)
