"""Prompts, labels, schedule, data stream: the pieces of training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from salmonn_agent.errors import ConfigError
from salmonn_agent.training.config import OptimSection
from salmonn_agent.training.data import (
    StreamBatchSampler,
    load_annotations,
    split_chunks,
)
from salmonn_agent.model.inputs import IGNORE_INDEX as IGNORE
from salmonn_agent.model.inputs import EncodedAudio
from salmonn_agent.training.prompts import PromptBank, sample_rng
from salmonn_agent.training.schedule import build_optimizer, lr_at


def test_prompt_bank_applies_template_and_question(tmp_path):
    file = tmp_path / "p.json"
    file.write_text(json.dumps({"QA": ["<Speech><SpeechHere></Speech> {}"], "asr": ["no placeholder", "<SpeechHere> hi"]}))
    bank = PromptBank.load(file, "USER: {}\nASSISTANT:")
    assert bank.choose("QA", "What is it?", sample_rng(0, 0, 0)) == "USER: <Speech><SpeechHere></Speech> What is it?\nASSISTANT:"
    assert bank.rendered["asr"] == ["USER: <SpeechHere> hi\nASSISTANT:"]
    with pytest.raises(ConfigError, match="caption"):
        bank.check_tasks({"caption"}, "train.json")
    assert sample_rng(1, 2, 3).random() == sample_rng(1, 2, 3).random()


def build_inputs(model, prompts, tokens, answers, transcripts=None):
    """The training input (right-padded, with labels) of prompts with one clip each."""
    clips = [[EncodedAudio(t, 0.0, transcripts[i] if transcripts else None)] for i, t in enumerate(tokens)]
    inputs = model.merge_inputs(prompts, clips, answers=answers, padding_side="right")
    return inputs.embeds, inputs.attention_mask, inputs.labels


def test_labels_cover_only_target_and_end_symbol(tiny_model):
    prompt = tiny_model.render_prompt("Recognize the speech.")
    target = tiny_model.answer_ids("hello world", 300)
    assert target[-1] == tiny_model._eos_id
    audio = torch.zeros(5, tiny_model.llm.config.hidden_size)
    embeds, mask, labels = build_inputs(tiny_model, [prompt, prompt], [audio, audio[:3]], [target, target[:2]])
    assert embeds.shape[0] == 2 and mask[0].all() and mask[1, -2:].sum() == 0  # right padding
    assert labels[0][labels[0] != IGNORE].tolist() == target
    assert labels[1][labels[1] != IGNORE].tolist() == target[:2]
    before = 1 + len(tiny_model.tokenizer.encode(prompt.split("<SpeechHere>")[0]))
    assert mask[0].sum() == before + 5 + len(tiny_model.tokenizer.encode(prompt.split("<SpeechHere>")[1])) + len(target)


def test_transcript_hint_follows_the_audio_and_is_never_a_label(tiny_model):
    prompt = tiny_model.render_prompt("Recognize the speech.")
    target = tiny_model.answer_ids("hello world", 300)
    audio = torch.zeros(5, tiny_model.llm.config.hidden_size)
    hint = tiny_model.tokenizer.encode("\nTranscript: hello world\n")
    plain, _, plain_labels = build_inputs(tiny_model, [prompt], [audio], [target])
    hinted, mask, labels = build_inputs(tiny_model, [prompt], [audio], [target], ["hello world"])
    assert mask[0].sum() == plain.shape[1] + len(hint)
    before = 1 + len(tiny_model.tokenizer.encode(prompt.split("<SpeechHere>")[0]))
    start = before + 5
    expected = tiny_model.llm.get_input_embeddings()(torch.tensor(hint))
    assert torch.equal(hinted[0, start : start + len(hint)], expected)
    assert labels[0][labels[0] != IGNORE].tolist() == plain_labels[0][plain_labels[0] != IGNORE].tolist() == target


def test_schedule_warmup_then_cosine():
    o = OptimSection(warmup_steps=10, warmup_start_lr=1e-6, init_lr=3e-5, min_lr=1e-5)
    assert lr_at(0, 100, o) == pytest.approx(1e-6)
    assert lr_at(5, 100, o) == pytest.approx(1e-6 + (3e-5 - 1e-6) * 0.5)
    assert lr_at(50, 100, o) == pytest.approx(2e-5)
    assert lr_at(100, 100, o) == pytest.approx(1e-5)
    layer = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    opt = build_optimizer(layer, o)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 3]
    assert opt.param_groups[0]["weight_decay"] == 0.05 and opt.param_groups[1]["weight_decay"] == 0


def test_stream_sampler_replays_from_any_position_and_shards():
    full = StreamBatchSampler(5, 2, seed=3)
    it = iter(full)
    head = [next(it) for _ in range(7)]
    later = iter(StreamBatchSampler(5, 2, seed=3, start=4))
    assert [next(later) for _ in range(3)] == head[4:]
    assert full.batches_per_epoch == 3 and {e for b in head for e, _ in b} == {0, 1, 2}
    r0, r1 = iter(StreamBatchSampler(4, 2, 0, rank=0, world=2)), iter(StreamBatchSampler(4, 2, 0, rank=1, world=2))
    assert sorted(i for _, i in next(r0) + next(r1)) == [0, 1, 2, 3]


def test_annotations_and_chunks(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "ann.json").write_text(json.dumps({"annotation": [{"path": "a.wav", "text": "t", "expand_wav": ["a.wav"]}]}))
    (entry,) = load_annotations(tmp_path / "ann.json")
    assert entry["task"] == "asr" and entry["path"] == str(tmp_path / "a.wav") and entry["Q"] == ""
    (tmp_path / "bad.json").write_text(json.dumps({"annotation": [{"text": "t"}]}))
    with pytest.raises(ConfigError, match="path"):
        load_annotations(tmp_path / "bad.json")
    chunks = split_chunks(np.ones(25, dtype=np.float32), 10, 8)
    assert [len(c) for c in chunks] == [10, 10, 8]


def test_annotation_with_its_own_prompt_is_used_verbatim(tmp_path):
    import soundfile as sf

    from salmonn_agent.training.data import AnnotationDataset

    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), 16_000)
    prompt = "SYSTEM tools...\nUSER: <Speech><SpeechHere></Speech>\nASSISTANT:"
    (tmp_path / "ann.json").write_text(json.dumps({"annotation": [
        {"path": "a.wav", "text": '{"name": "add_note"}', "task": "tool_call", "prompt": prompt}]}))
    entries = load_annotations(tmp_path / "ann.json")
    bank = PromptBank.load(None, "USER: {}\nASSISTANT:")
    bank.check_tasks({e["task"] for e in entries if "prompt" not in e}, "ann.json")  # as the trainer does
    dataset = AnnotationDataset(entries, bank, lambda chunks: None, chunk_samples=16_000, min_samples=16_000, max_seconds=30)
    assert dataset[0]["prompt"] == prompt
    (tmp_path / "bad.json").write_text(json.dumps({"annotation": [{"path": "a.wav", "text": "t", "prompt": "no audio"}]}))
    with pytest.raises(ConfigError, match="exactly one <SpeechHere>"):
        load_annotations(tmp_path / "bad.json")
