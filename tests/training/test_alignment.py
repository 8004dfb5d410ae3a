"""The CTC alignment objective (``run.objective: ctc``): decoding helpers and a memorising run."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf
import torch
from conftest import base_config, sharpen

from devkit.demo_data import tone_clip
from salmonn_agent.model.salmonn import SALMONN
from salmonn_agent.training.alignment import SALMONNForAlignment, ctc_greedy, token_errors
from salmonn_agent.training.config import TrainConfig
from salmonn_agent.training.data import FeatureCache
from salmonn_agent.training.trainer import Trainer

TEXTS = ["hello world", "music plays", "the lazy dog"]


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    assert ctc_greedy(torch.tensor([0, 5, 5, 0, 5, 7, 7, 0]), blank=0) == [5, 5, 7]
    assert ctc_greedy(torch.tensor([0, 0]), blank=0) == []


def test_token_errors_is_the_edit_distance():
    assert token_errors([1, 2, 3], [1, 2, 3]) == 0
    assert token_errors([1, 2, 3], [1, 3]) == 1
    assert token_errors([1, 2, 3], [4, 1, 2, 5]) == 2
    assert token_errors([], [1, 2]) == 2


def _data(folder: Path) -> Path:
    """Three 8 s clips (enough audio tokens for the CTC targets) and a silent one with no words."""
    (folder / "audio").mkdir(parents=True)
    items = []
    for i, text in enumerate([*TEXTS, ""]):
        path = folder / "audio" / f"clip{i}.wav"
        sf.write(path, tone_clip(i, 8.0) if text else 0 * tone_clip(i, 8.0), 16_000)
        items.append({"path": str(path), "text": text, "task": "align_speech" if text else "align_silence",
                      "prompt": "<SpeechHere>"})
    ann = folder / "align.json"
    ann.write_text(json.dumps({"annotation": items}))
    (folder / "prompts.json").write_text(json.dumps({"asr": ["<SpeechHere> Transcribe."]}))
    return ann


def test_ctc_stage_aligns_audio_tokens_with_the_words_and_trains_only_the_audio_side(train_model_dir, tmp_path):
    ann = _data(tmp_path / "data")
    model = SALMONN.from_pretrained(train_model_dir, device="cpu")
    sharpen(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optims = {"max_epoch": 150, "warmup_steps": 5, "warmup_start_lr": 1e-4, "init_lr": 1e-2, "min_lr": 1e-3}
    config = TrainConfig(**base_config(train_model_dir, ann, tmp_path / "out", objective="ctc", optims=optims,
                                       valid_every_epochs=150, decode_valid=False))
    result = Trainer(config, model=model).train()

    tasks = result.validation["tasks"]
    # Greedy CTC decoding of the audio tokens gives back most of each clip's words (a random
    # init gets none), and nothing for the silent clip.
    assert tasks["align_speech"]["token_acc"] >= 0.6
    assert tasks["align_silence"]["empty_acc"] == 1.0
    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert any(n.startswith("window_qformer.") for n in changed) and "projection.weight" in changed
    assert all(n.startswith(("window_qformer.", "projection.", "ln_speech.")) for n in changed)

    # The audio tokens land near the LLM embeddings of the words, at the embeddings' scale.
    align = SALMONNForAlignment(model)
    tokens = model.encode_audio([str(tmp_path / "data" / "audio" / "clip0.wav")])[0].embeds
    embed = model.llm.get_input_embeddings().weight
    norms = tokens.norm(dim=-1) / embed.norm(dim=-1).mean()
    assert 0.5 < float(norms.mean()) < 3.0  # not the runaway norms of LLM-only training (50x)
    nearest = (torch.nn.functional.normalize(tokens, dim=-1) @ torch.nn.functional.normalize(embed, dim=-1).T).argmax(-1)
    words = set(align.targets(TEXTS[0]))
    assert len(words & set(nearest.tolist())) >= len(words) / 2


def test_feature_cache_files_hold_only_their_own_sample(tmp_path):
    cache = FeatureCache(tmp_path, {"model": "x"})
    batch = torch.randn(16, 50, 8)
    cache.put("k", batch[3:4], None, 1.0)
    stored = cache.get("k")
    assert torch.equal(stored["speech"], batch[3:4])
    assert stored["speech"].untyped_storage().nbytes() == batch[3:4].numel() * 4
