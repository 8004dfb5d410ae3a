"""Convert an official SALMONN checkpoint (salmonn_v1.pth / salmonn_7b_v0.pth) to salmonn-agent format.

Reads the official decode_config.yaml (whisper_path, beats_path, llama_path, ckpt), loads the
checkpoint strictly (every trainable parameter must be found), and writes OUT_DIR with
salmonn_config.json and model.safetensors: the trainable parts only, 33.3 M float32 parameters
(133 MB) for SALMONN-13B; the .pth's optimizer state is dropped. The frozen Whisper / BEATs /
Vicuna stay referenced by path or hub id.

Usage: python tools/convert_salmonn_checkpoint.py decode_config.yaml OUT_DIR [--ckpt PATH]
"""

from __future__ import annotations

import argparse
import sys

from salmonn_agent.config import OfficialConfig
from salmonn_agent.errors import SalmonnError
from salmonn_agent.model.salmonn import SALMONN


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="official decode_config.yaml")
    parser.add_argument("out_dir", help="output model directory")
    parser.add_argument("--ckpt", help="override model.ckpt from the YAML")
    args = parser.parse_args()
    try:
        official = OfficialConfig.from_yaml(args.config)
        if args.ckpt:
            official.model.ckpt = args.ckpt
        model = SALMONN.from_official(official, device="cpu")
        model.save_pretrained(args.out_dir)
    except SalmonnError as err:
        print(f"convert_salmonn_checkpoint: error: {err}", file=sys.stderr)
        return 2
    print(args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
