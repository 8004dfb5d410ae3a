"""Official checkpoints load strictly; our own format round-trips."""

from __future__ import annotations

import re

import pytest
import torch

from salmonn_agent.errors import CheckpointError, ConfigError
from salmonn_agent.model.checkpoint import load_official_state
from salmonn_agent.model.salmonn import SALMONN

SR = 16_000
GREEDY = {"num_beams": 1, "max_new_tokens": 8}

# Our name → the name upstream's SALMONN module gives the same parameter (written out by hand
# from bytedance/SALMONN models/salmonn.py and the LAVIS BERT Q-Former, not from our mapping code).
_TO_OFFICIAL = [
    (r"^window_qformer\.query_tokens$", "speech_query_tokens"),
    (r"^window_qformer\.qformer\.layernorm\.", "speech_Qformer.bert.embeddings.LayerNorm."),
    (r"^window_qformer\.qformer\.encoder\.layer\.(\d+)\.attention\.attention\.",
     r"speech_Qformer.bert.encoder.layer.\1.attention.self."),
    (r"^window_qformer\.qformer\.encoder\.layer\.(\d+)\.attention\.output\.",
     r"speech_Qformer.bert.encoder.layer.\1.attention.output."),
    (r"^window_qformer\.qformer\.encoder\.layer\.(\d+)\.crossattention\.attention\.",
     r"speech_Qformer.bert.encoder.layer.\1.crossattention.self."),
    (r"^window_qformer\.qformer\.encoder\.layer\.(\d+)\.crossattention\.output\.",
     r"speech_Qformer.bert.encoder.layer.\1.crossattention.output."),
    (r"^window_qformer\.qformer\.encoder\.layer\.(\d+)\.(intermediate_query|output_query)\.",
     r"speech_Qformer.bert.encoder.layer.\1.\2."),
    (r"^projection\.", "speech_llama_proj."),
    (r"^ln_speech\.", "ln_speech."),
    (r"^llm\.", "llama_model."),
]


def official_name(ours: str, lora_adapter_name: bool = True) -> str:
    for pattern, replacement in _TO_OFFICIAL:
        if re.match(pattern, ours):
            name = re.sub(pattern, replacement, ours)
            return name if lora_adapter_name else name.replace(".default.weight", ".weight")
    raise AssertionError(f"no official name for {ours}")


def write_official_checkpoint(model: SALMONN, path, *, lora_adapter_name=True, drop=()) -> None:
    state = {
        official_name(k, lora_adapter_name): v.clone()
        for k, v in model.trainable_state_dict().items()
    }
    # What upstream's save_checkpoint also leaves in: buffers, and optimizer state beside.
    for layer in range(model.llm.config.num_hidden_layers):
        state[f"llama_model.base_model.model.model.layers.{layer}.self_attn.rotary_emb.inv_freq"] = torch.ones(4)
    state["speech_Qformer.bert.embeddings.position_ids"] = torch.arange(512)[None]
    for name in drop:
        del state[name]
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3}, path)


def _fresh_copy(source: SALMONN) -> SALMONN:
    torch.manual_seed(99)  # different random init of the trainable parts
    return SALMONN.from_config(source.config, device="cpu")


def test_official_checkpoint_loads_strictly_and_reproduces_outputs(tiny_model, noise_clips, tmp_path):
    path = tmp_path / "salmonn_v1.pth"
    write_official_checkpoint(tiny_model, path)
    target = _fresh_copy(tiny_model)
    clip = noise_clips["5s"]
    assert not torch.equal(target.projection.weight, tiny_model.projection.weight)
    report = load_official_state(target, path)
    assert report.loaded == len(tiny_model.trainable_state_dict())
    assert report.unexpected == [] and report.ignored_buffers == tiny_model.llm.config.num_hidden_layers + 1
    (a,) = tiny_model.encode_audio([clip], sample_rate=SR)
    (b,) = target.encode_audio([clip], sample_rate=SR)
    torch.testing.assert_close(a.embeds, b.embeds, atol=0, rtol=0)
    assert target.generate(clip, "hello", sample_rate=SR, **GREEDY) == tiny_model.generate(
        clip, "hello", sample_rate=SR, **GREEDY
    )


def test_old_peft_lora_names_without_adapter_load(tiny_model, tmp_path):
    path = tmp_path / "old_peft.pth"
    write_official_checkpoint(tiny_model, path, lora_adapter_name=False)
    target = _fresh_copy(tiny_model)
    load_official_state(target, path)
    for name, value in tiny_model.trainable_state_dict().items():
        assert torch.equal(target.trainable_state_dict()[name], value), name


def test_missing_trainable_keys_are_refused_by_name(tiny_model, tmp_path):
    path = tmp_path / "incomplete.pth"
    missing = "speech_Qformer.bert.encoder.layer.1.crossattention.self.key.weight"
    write_official_checkpoint(tiny_model, path, drop=[missing])
    with pytest.raises(CheckpointError, match=r"window_qformer\.qformer\.encoder\.layer\.1\.crossattention"):
        load_official_state(_fresh_copy(tiny_model), path)


def test_wrong_shapes_and_non_checkpoints_are_refused(tiny_model, tmp_path):
    path = tmp_path / "wrong.pth"
    state = {official_name(k): v for k, v in tiny_model.trainable_state_dict().items()}
    state["speech_llama_proj.weight"] = torch.zeros(3, 3)
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="shape"):
        load_official_state(_fresh_copy(tiny_model), path)
    torch.save({"weights": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        load_official_state(tiny_model, tmp_path / "other.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="Could not read"):
        load_official_state(tiny_model, tmp_path / "text.pth")


def test_save_and_load_pretrained_round_trip(tiny_model, noise_clips, tmp_path):
    tiny_model.save_pretrained(tmp_path / "copy")
    loaded = SALMONN.from_pretrained(tmp_path / "copy", device="cpu")
    clip = noise_clips["30s"]
    assert loaded.generate(clip, "hello", sample_rate=SR, **GREEDY) == tiny_model.generate(
        clip, "hello", sample_rate=SR, **GREEDY
    )


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ConfigError, match="salmonn_config.json"):
        SALMONN.from_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="neither a model directory nor a hub id"):
        SALMONN.from_pretrained(tmp_path / "a" / "b" / "c")


def test_official_yaml_end_to_end(tiny_model, noise_clips, tmp_path):
    """decode_config.yaml with whisper/llama paths and a .pth builds the same model."""
    from salmonn_agent.model.salmonn import SALMONN

    ckpt = tmp_path / "salmonn.pth"
    write_official_checkpoint(tiny_model, ckpt)
    yaml_text = (
        "model:\n"
        f"  llama_path: \"{tiny_model.config.llm}\"\n"
        f"  whisper_path: \"{tiny_model.config.whisper}\"\n"
        "  beats_path: \"\"\n"
        f"  ckpt: \"{ckpt}\"\n"
        "  lora_rank: 4\n  lora_alpha: 16\n  lora_dropout: 0.0\n"
        "generate:\n  max_new_tokens: 8\n  num_beams: 1\n"
    )
    (tmp_path / "decode.yaml").write_text(yaml_text)
    # The official Q-Former is BERT-base sized; the tiny one is smaller, so the YAML path must
    # refuse this checkpoint by shape rather than load it silently.
    with pytest.raises(CheckpointError, match="shape"):
        SALMONN.from_official(tmp_path / "decode.yaml", device="cpu")
