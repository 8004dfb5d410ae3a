"""Write a tiny, randomly initialised SALMONN model directory (no download needed).

It exercises the whole pipeline (audio → encoders → Q-Former → LLM) on any machine; its answers
are noise. Usage: python tools/make_tiny_model.py OUT_DIR [--beats]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import transformers

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # devkit/ sits at the repository root, outside the package
    sys.path.insert(0, str(ROOT))

from devkit.tiny import build_tiny_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="directory to create; the model goes to OUT_DIR/salmonn")
    parser.add_argument("--beats", action="store_true", help="include a tiny BEATs audio encoder")
    args = parser.parse_args()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    path = build_tiny_model(args.out_dir, with_beats=args.beats)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
