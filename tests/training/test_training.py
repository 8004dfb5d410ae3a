"""Training: overfitting, exact resume, frozen parts untouched, skipped samples, cache, CLI."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import base_config, sharpen

from devkit.demo_data import TRANSCRIPTS, tone_clip
from salmonn_agent.errors import ConfigError
from salmonn_agent.model.salmonn import SALMONN
from salmonn_agent.training.config import TrainConfig, load_train_config
from salmonn_agent.training.trainer import Trainer


def _model(model_dir: Path) -> SALMONN:
    model = SALMONN.from_pretrained(model_dir, device="cpu")
    sharpen(model)
    return model


@pytest.fixture(scope="module")
def overfit(train_model_dir, demo_data, tmp_path_factory):
    model = _model(train_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    # LoRA held for the first 200 steps, as in salmonn-mini's recipe: with LoRA from step 0 the
    # model can learn the transcripts' text prior before the Q-Former separates the clips, and
    # whether it does depends on float rounding (it failed at 1 thread, passed at 2).
    optims = {"max_epoch": 600, "warmup_steps": 5, "warmup_start_lr": 1e-4, "init_lr": 2e-2, "min_lr": 1e-4,
              "lora_frozen_steps": 200}
    config = TrainConfig(**base_config(train_model_dir, demo_data, tmp_path_factory.mktemp("overfit"), optims=optims))
    trainer = Trainer(config, model=model)
    result = trainer.train()
    return model, before, buffers, result, config


def test_tiny_model_overfits_and_reproduces_transcripts(overfit):
    model, _, _, result, config = overfit
    records = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in records if r["split"] == "train"]
    assert train_losses[0] > 3.0 and result.final_loss < 0.3
    answers = model.generate([tone_clip(i) for i in range(4)], "Recognize the speech and give me the transcription.",
                             sample_rate=16_000, num_beams=1, max_new_tokens=20)
    assert answers == TRANSCRIPTS[:4]
    assert (Path(config.output_dir) / "model" / "salmonn_config.json").is_file()


def test_only_trainable_parameters_change(overfit):
    model, before, buffers, _, _ = overfit
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith(("window_qformer.", "ln_speech.", "ln_audio.", "projection.")) or "lora_" in n for n in trainable
    )
    for name, param in model.named_parameters():
        if name in trainable:
            # one query per window: its self-attention softmax has one entry, so q/k get no gradient
            if not (".attention.attention.query." in name or ".attention.attention.key." in name):
                assert not torch.equal(param, before[name]), f"{name} did not train"
        else:
            assert torch.equal(param, before[name]), f"frozen {name} changed"
    for name, buf in model.named_buffers():
        assert torch.equal(buf, buffers[name]), f"buffer {name} changed"
    assert not model.speech_encoder.training and not model.llm.base_model.model.training


def test_validation_reports_per_task_wer(overfit, demo_data):
    model, _, _, _, config = overfit
    from salmonn_agent.training.trainer import _dataset

    trainer = Trainer(config, model=model)
    ds = _dataset(config, model, str(demo_data), config.datasets.prompt_path, None, random_prompts=False, what="valid")
    metrics = trainer.validate(ds)
    assert metrics["tasks"]["asr"]["wer"] == 0.0 and metrics["tasks"]["asr"]["token_acc"] == 1.0
    assert metrics["tasks"]["asr"]["samples"] == 4


def _trainable(model):
    return {k: v.clone() for k, v in model.trainable_state_dict().items()}


def test_resume_matches_uninterrupted_run(train_model_dir, demo_data, tmp_path):
    run = {"batch_size_train": 3, "accum_grad_iters": 2, "save_every_steps": 2,
           "optims": {"max_epoch": 4, "warmup_steps": 2, "warmup_start_lr": 1e-4, "init_lr": 1e-2, "min_lr": 1e-3}}
    # 4 samples, batch 3 → 2 micro-batches per epoch → 1 step per epoch; 4 epochs = 4 steps
    straight = _model(train_model_dir)
    Trainer(TrainConfig(**base_config(train_model_dir, demo_data, tmp_path / "a", **run)), model=straight).train()

    first = _model(train_model_dir)
    cfg_b = base_config(train_model_dir, demo_data, tmp_path / "b", **run)
    Trainer(TrainConfig(**{**cfg_b, "run": {**cfg_b["run"], "max_steps": 3}}), model=first).train()
    assert (tmp_path / "b" / "checkpoints" / "step_00000003").is_dir()
    torch.manual_seed(1234)  # a resumed run must not depend on the process's RNG state
    resumed = _model(train_model_dir)
    result = Trainer(TrainConfig(**{**cfg_b, "run": {**cfg_b["run"], "resume": "auto"}}), model=resumed).train()
    assert result.steps == 4
    a, b = _trainable(straight), _trainable(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not all(torch.equal(a[k], _trainable(first)[k]) for k in a)


def test_corrupt_and_missing_samples_are_skipped_and_counted(train_model_dir, demo_data, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    items = json.loads(demo_data.read_text())["annotation"][:2]
    items += [{"path": str(bad), "text": "x", "task": "asr"},
              {"path": str(tmp_path / "missing.wav"), "text": "y", "task": "asr"}]
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps({"annotation": items}))
    (tmp_path / "prompts.json").write_text((demo_data.parent / "prompts.json").read_text())
    config = TrainConfig(**base_config(train_model_dir, ann, tmp_path / "out", batch_size_train=4,
                                       optims={"max_epoch": 2, "warmup_steps": 0, "init_lr": 1e-3, "min_lr": 1e-4}))
    result = Trainer(config, model=_model(train_model_dir)).train()
    assert result.steps == 2
    assert len(result.skipped) == 4  # two bad entries, seen in each of two epochs
    assert {Path(p).name for p, _ in result.skipped} == {"bad.wav", "missing.wav"}
    done = json.loads((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()[-1])
    assert done["split"] == "done" and done["skipped"] == 4


def test_feature_cache_gives_the_same_training(train_model_dir, demo_data, tmp_path):
    run = {"optims": {"max_epoch": 3, "warmup_steps": 0, "init_lr": 1e-2, "min_lr": 1e-3}}
    cfg = base_config(train_model_dir, demo_data, tmp_path / "plain", **run)
    plain = _model(train_model_dir)
    Trainer(TrainConfig(**cfg), model=plain).train()
    cached_cfg = base_config(train_model_dir, demo_data, tmp_path / "cached", **run)
    cached_cfg["datasets"]["feature_cache_dir"] = str(tmp_path / "cache")
    cached = _model(train_model_dir)
    Trainer(TrainConfig(**cached_cfg), model=cached).train()  # epoch 1 fills, epochs 2-3 read
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 4
    a, b = _trainable(plain), _trainable(cached)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_cache_only_fills_the_cache_that_training_then_reads(train_model_dir, demo_data, tmp_path, capsys):
    from salmonn_agent.training.commands import add_training_commands

    import yaml

    config = base_config(train_model_dir, demo_data, str(tmp_path / "out"), optims={"max_epoch": 1, "warmup_steps": 0})
    config["datasets"]["feature_cache_dir"] = str(tmp_path / "cache")
    yaml_file = tmp_path / "stage.yaml"
    yaml_file.write_text(yaml.safe_dump(config))
    parser = argparse.ArgumentParser()
    add_training_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", str(yaml_file), "--cache-only"])
    assert args.handler(args) == 0
    assert json.loads(capsys.readouterr().out) == {"samples": 4, "computed": 4, "skipped": 0}
    files = {f: f.stat().st_mtime_ns for f in (tmp_path / "cache").rglob("*.pt")}
    assert len(files) == 4 and not (tmp_path / "out").exists()  # nothing trained
    assert args.handler(args) == 0  # a second fill computes nothing
    assert json.loads(capsys.readouterr().out)["computed"] == 0
    trainer = Trainer(TrainConfig(**config))
    trainer.train()  # reads every sample from the cache: no file is rewritten
    assert {f: f.stat().st_mtime_ns for f in (tmp_path / "cache").rglob("*.pt")} == files
    config["datasets"].pop("feature_cache_dir")
    with pytest.raises(ConfigError, match="feature_cache_dir"):
        Trainer(TrainConfig(**config)).fill_cache()


def test_cli_train_and_evaluate(train_model_dir, demo_data, tmp_path, capsys):
    from salmonn_agent.training.commands import add_training_commands

    config = base_config(train_model_dir, demo_data, "out", optims={"max_epoch": 2, "warmup_steps": 0})
    config["datasets"]["test_ann_path"] = str(demo_data)
    yaml_file = tmp_path / "stage.yaml"
    import yaml

    yaml_file.write_text(yaml.safe_dump(config))
    parser = argparse.ArgumentParser()
    add_training_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", str(yaml_file), "--set", "run.max_steps=1"])
    assert args.handler(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 1 and (tmp_path / "out" / "model").is_dir()
    args = parser.parse_args(["evaluate", str(yaml_file)])
    assert args.handler(args) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["split"] == "test" and "wer" in metrics["tasks"]["asr"]
    with pytest.raises(ConfigError):
        load_train_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError):
        parser.parse_args(["train", str(yaml_file), "--set", "oops"]).handler(
            parser.parse_args(["train", str(yaml_file), "--set", "oops"]))


def test_activation_tuning_scale_becomes_inference_default(train_model_dir, demo_data, tmp_path):
    config = TrainConfig(**base_config(train_model_dir, demo_data, tmp_path / "act", lora_scale=2.0,
                                       optims={"max_epoch": 1, "warmup_steps": 0}))
    model = _model(train_model_dir)
    scales = [dict(layer.scaling) for layer in model._lora_layers]
    Trainer(config, model=model).train()
    assert [dict(layer.scaling) for layer in model._lora_layers] == scales  # restored after training
    saved = json.loads((tmp_path / "act" / "model" / "salmonn_config.json").read_text())
    assert saved["generation"]["lora_scale"] == 2.0
    assert not math.isnan(SALMONN.from_pretrained(tmp_path / "act" / "model").config.generation.lora_scale)


def test_lora_can_be_held_while_the_qformer_learns(train_model_dir, demo_data, tmp_path):
    """optims.lora_frozen_steps: LoRA stays bit-identical for those steps, the rest trains."""
    model = _model(train_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optims = {"max_epoch": 10, "warmup_steps": 0, "warmup_start_lr": 1e-3, "init_lr": 1e-3,
              "min_lr": 1e-4, "lora_frozen_steps": 3}
    config = TrainConfig(**base_config(train_model_dir, demo_data, tmp_path / "held", optims=optims, max_steps=3))
    Trainer(config, model=model).train()
    after = dict(model.named_parameters())
    lora = [n for n in before if "lora_" in n]
    assert lora and all(torch.equal(after[n], before[n]) for n in lora)
    assert not torch.equal(after["projection.weight"], before["projection.weight"])

    model = _model(train_model_dir)
    config = TrainConfig(**base_config(train_model_dir, demo_data, tmp_path / "free", optims=optims, max_steps=5))
    Trainer(config, model=model).train()
    after = dict(model.named_parameters())
    assert any(not torch.equal(after[n], before[n]) for n in lora)  # LoRA learns after step 3


def test_frozen_qformer_and_projection_stay_fixed_and_are_still_saved(train_model_dir, demo_data, tmp_path):
    """run.freeze_qformer / freeze_projection: only LoRA learns, and the saved model is complete."""
    model = _model(train_model_dir)
    before = {n: p.detach().clone() for n, p in model.trainable_state_dict().items()}
    optims = {"max_epoch": 10, "warmup_steps": 0, "warmup_start_lr": 1e-3, "init_lr": 1e-3, "min_lr": 1e-4}
    config = TrainConfig(**base_config(train_model_dir, demo_data, tmp_path / "frozen", optims=optims, max_steps=3,
                                       freeze_qformer=True, freeze_projection=True))
    Trainer(config, model=model).train()
    after = model.trainable_state_dict()
    audio_side = [n for n in before if "lora_" not in n]
    assert audio_side and all(torch.equal(after[n], before[n]) for n in audio_side)
    assert any(not torch.equal(after[n], before[n]) for n in before if "lora_" in n)
    reloaded = SALMONN.from_pretrained(tmp_path / "frozen" / "model", device="cpu")
    assert torch.equal(reloaded.window_qformer.query_tokens, before["window_qformer.query_tokens"])


@pytest.mark.parametrize("dtype", ["int8", "float16-weights"])
def test_inference_only_precisions_are_refused_for_training(train_model_dir, demo_data, tmp_path, dtype):
    model = SALMONN.from_pretrained(train_model_dir, device="cpu", dtype=dtype)
    config = TrainConfig(**base_config(train_model_dir, demo_data, tmp_path / "refused", max_steps=1))
    with pytest.raises(ConfigError, match="inference only.*train a float32 model"):
        Trainer(config, model=model)


def test_quantized_weights_are_refused_for_training(train_model_dir, demo_data, tmp_path):
    pytest.importorskip("bitsandbytes")
    model = SALMONN.from_pretrained(train_model_dir, device="cpu", quantize="int8")
    config = TrainConfig(**base_config(train_model_dir, demo_data, tmp_path / "refused", max_steps=1))
    with pytest.raises(ConfigError, match="inference only.*train a float32 model"):
        Trainer(config, model=model)
