"""Write the demo used by the stage YAMLs: a tiny random model and generated data under runs/demo.

python examples/training/make_demo.py            # then:
salmonn-agent train examples/training/stage1_pretrain.yaml --set run.optims.max_epoch=20
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # devkit/ sits at the repository root, outside the package
    sys.path.insert(0, str(ROOT))

from devkit.demo_data import make_demo_dataset  # noqa: E402
from devkit.tiny import build_tiny_model  # noqa: E402

root = ROOT / "runs" / "demo"
build_tiny_model(root / "tiny", chunk_seconds=2.0)
make_demo_dataset(root / "data", 8)
stories = make_demo_dataset(root / "stories", 12, task="story")
items = json.loads(stories.read_text())
for i, item in enumerate(items["annotation"]):
    item["text"] = f"Once upon a time a sound number {i} rang out; " + item["text"] + ", and so the story went on."
stories.write_text(json.dumps(items, indent=1))
(root / "stories" / "prompts.json").write_text(json.dumps(
    {"story": ["<Speech><SpeechHere></Speech> Based on the audio, write a story in detail."]}))
print(f"demo written to {root}")
