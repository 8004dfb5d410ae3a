"""Distributed training kept proven: ``accelerate launch --cpu --num_processes 2`` (DDP over gloo).

README's multi-GPU commands are these commands with GPU flags, so a two-process CPU run that
ends where one process ends (same global batch) and resumes from its own checkpoint keeps them
working.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import base_config
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
RUN = {"accum_grad_iters": 1, "save_every_steps": 2, "keep_checkpoints": 4,
       "optims": {"max_epoch": 4, "warmup_steps": 2, "warmup_start_lr": 1e-4, "init_lr": 1e-2, "min_lr": 1e-3}}
# 4 demo clips: batch 4 on one process, or 2 per process on two, is 1 step an epoch; 4 epochs = 4 steps.

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train(config: dict, yaml_file: Path, processes: int, *sets: str) -> dict:
    """Run ``salmonn-agent train`` as a user does, under ``accelerate launch`` when ``processes > 1``."""
    yaml_file.write_text(yaml.safe_dump(config))
    train = ["-m", "salmonn_agent.cli", "train", str(yaml_file), *(a for s in sets for a in ("--set", s))]
    if processes > 1:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(_free_port()), *train]
    else:
        command = [sys.executable, *train]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _weights(output_dir: Path) -> dict[str, torch.Tensor]:
    files = list((output_dir / "model").glob("*.safetensors"))
    assert len(files) == 1, files
    return load_file(str(files[0]))


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-5, msg=key)


@pytest.fixture(scope="module")
def model_dir(train_model_dir: Path) -> Path:
    """The tiny training model without dropout, so that a step is the same computation however
    the batch is split (its base models' relative paths still hold beside the original)."""
    directory = train_model_dir.parent / "salmonn-no-dropout"
    if not directory.exists():
        shutil.copytree(train_model_dir, directory)
        config_file = directory / "salmonn_config.json"
        config = json.loads(config_file.read_text())
        config["qformer"]["dropout"] = 0.0
        config_file.write_text(json.dumps(config))
    return directory


def test_two_processes_end_where_one_process_ends_and_resume(model_dir, demo_data, tmp_path):
    one = base_config(model_dir, demo_data, tmp_path / "one", batch_size_train=4, **RUN)
    two = base_config(model_dir, demo_data, tmp_path / "two", batch_size_train=2, **RUN)
    start = load_file(str(model_dir / "model.safetensors"))

    single = _train(one, tmp_path / "one.yaml", 1)
    double = _train(two, tmp_path / "two.yaml", 2)
    assert single["steps"] == double["steps"] == 4
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    _assert_close(a, b)
    assert any(not torch.equal(a[k], start[k]) for k in a if k in start), "training changed nothing"

    # Two processes stop at step 2 (a checkpoint), then two processes resume to step 4.
    split = base_config(model_dir, demo_data, tmp_path / "split", batch_size_train=2, **RUN)
    _train(split, tmp_path / "split.yaml", 2, "run.max_steps=2")
    assert (tmp_path / "split" / "checkpoints" / "step_00000002").is_dir()
    resumed = _train(split, tmp_path / "split.yaml", 2, "run.resume=auto")
    assert resumed["steps"] == 4
    _assert_close(_weights(tmp_path / "split"), b)
