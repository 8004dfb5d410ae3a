"""tools/train_mini_gpu.py: the held-out tool-call check and the training mix (no model, no GPU)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("train_mini_gpu_tool", ROOT / "tools" / "train_mini_gpu.py")
    tool = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tool
    spec.loader.exec_module(tool)
    return tool


class _ScriptedModel:
    """Answers each prompt with the answer scripted for its clip."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def encode_audio(self, paths: list[str]) -> list[str]:
        return [Path(p).name for p in paths]

    def generate_from_prompts(self, prompts: list[str], audios: list[list[str]], **_: object) -> list[str]:
        return [self.answers[clips[0]] for clips in audios]


def test_assistant_check_scores_tools_arguments_and_answers(tmp_path: Path) -> None:
    items = [
        {"path": "a.wav", "tool": "set_timer", "args": {"seconds": 300, "label": "tea"}, "answer": None},
        {"path": "b.wav", "tool": "set_timer", "args": {"seconds": 300, "label": "tea"}, "answer": None},
        {"path": "c.wav", "tool": "add_note", "args": {"text": "buy milk"}, "answer": None},
        {"path": "d.wav", "tool": "list_timers", "args": {}, "answer": None},
        {"path": "f.wav", "tool": "set_timer", "args": {"minutes": 40, "label": "cookies"}, "answer": None},
        {"path": "e.wav", "tool": None, "args": None, "answer": "Seven."},
    ]
    for item in items:
        item["prompt"] = "p"
    annotation = tmp_path / "assistant_test.json"
    annotation.write_text(json.dumps({"annotation": items}))
    model = _ScriptedModel({
        "a.wav": '{"name": "set_timer", "arguments": {"seconds": 300.0, "label": "Tea"}}',  # right
        "b.wav": '{"name": "set_timer", "arguments": {"seconds": 60, "label": "tea"}}',  # wrong number
        "c.wav": '{"name": "add_note", "arguments": {"text": "Buy milk."}}',  # right after normalising
        "d.wav": "There are no timers.",  # words instead of a call
        "e.wav": "Seven.",
        "f.wav": '{"name": "set_timer", "arguments": {"seconds": 2400, "label": "cookies"}}',  # right: same duration
    })
    result = _tool().assistant_accuracy(model, annotation, batch_size=2)
    assert result == {"exact": 0.6, "tool": 0.8, "answers": 1.0, "commands": 5, "questions": 1}


def test_mix_takes_every_training_item_with_absolute_paths(tmp_path: Path) -> None:
    tool = _tool()
    sets = {"data": "train.json", "data_seed1": "train.json", "assistant": "assistant_train.json",
            "assistant_seed1": "assistant_train.json"}
    assert tool.TRAIN_SETS == sets
    for number, (name, file) in enumerate(sets.items()):
        (tmp_path / name).mkdir()
        entries = [{"path": f"audio/train/{name}_{i}.wav", "text": "t"} for i in range(number + 1)]
        (tmp_path / name / file).write_text(json.dumps({"annotation": entries}))
    out = tmp_path / "train_gpu.json"
    assert tool.mix(tmp_path, out) == 1 + 2 + 3 + 4
    paths = [e["path"] for e in json.loads(out.read_text())["annotation"]]
    assert all(Path(p).is_absolute() for p in paths)
    assert sorted(paths) == sorted(str(tmp_path / name / f"audio/train/{name}_{i}.wav")
                                   for number, name in enumerate(sets) for i in range(number + 1))


def test_exported_weights_can_average_two_trainings(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    spec = importlib.util.spec_from_file_location("train_mini_tool", ROOT / "tools" / "train_mini.py")
    train_mini = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_mini)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file({"q.weight": torch.full((2, 2), 1.0), "lora.B": torch.zeros(3)}, str(a))
    save_file({"q.weight": torch.full((2, 2), 3.0), "lora.B": torch.ones(3)}, str(b))
    out = tmp_path / "out.safetensors"
    train_mini.export_weights(a, out, (b, 0.75))
    got = load_file(str(out))
    assert got["q.weight"].dtype == torch.float16
    assert torch.equal(got["q.weight"], torch.full((2, 2), 1.5, dtype=torch.float16))
    assert torch.equal(got["lora.B"], torch.full((3,), 0.25, dtype=torch.float16))
    save_file({"q.weight": torch.zeros(2, 3)}, str(b))
    with pytest.raises(SystemExit, match="cannot be averaged"):
        train_mini.export_weights(a, out, (b, 0.5))
