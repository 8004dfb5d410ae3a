"""Fixtures for training tests: a tiny model whose random encoder hears the demo clips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from devkit.demo_data import make_demo_dataset
from devkit.tiny import build_tiny_model


@pytest.fixture(scope="session")
def train_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with a 2 s encoder context (fast), Whisper-only."""
    return build_tiny_model(tmp_path_factory.mktemp("train_tiny"), chunk_seconds=2.0)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four generated clips with transcripts; returns the annotation file."""
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), 4)


def sharpen(model) -> None:
    """Make the random frozen parts usable for memorising: a louder encoder, sharper logits.

    A random Whisper barely separates inputs and a random LM head caps the logits, so the
    frozen weights are scaled once before training (they stay frozen during training).
    """
    with torch.no_grad():
        model.speech_encoder.conv1.weight.mul_(30.0)
        model.llm.get_output_embeddings().weight.mul_(20.0)


def base_config(model_dir: Path, ann: Path, out: Path, **run: object) -> dict:
    runs = {"batch_size_train": 4, "batch_size_eval": 4, "log_freq": 10, "progress": False,
            "max_new_tokens": 20, "resume": None, "valid_every_epochs": 100000,
            "optims": {"max_epoch": 200, "warmup_steps": 5, "warmup_start_lr": 1e-4, "init_lr": 2e-2, "min_lr": 1e-4}}
    runs.update(run)
    return {"model": str(model_dir), "output_dir": str(out),
            "datasets": {"train_ann_path": str(ann), "valid_ann_path": str(ann),
                         "prompt_path": str(ann.parent / "prompts.json")},
            "run": runs}
