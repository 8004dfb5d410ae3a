"""tools/make_broad_asr.py: its choice of voices, checked before anything is rendered."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import make_broad_asr  # noqa: E402


@pytest.mark.parametrize("voices", ["espeak,piper", ",", "hibari,Espeak"])
def test_unknown_voices_are_refused_with_the_known_ones(voices: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        make_broad_asr.main([str(tmp_path), "--voices", voices])
    assert stop.value.code == 2
    assert "espeak, flite, festival, hibari" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


def test_train_only_voices_need_no_valid_split(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        make_broad_asr.main([str(tmp_path), "--voices", "festival,hibari", "--valid", "5"])
    assert "--valid 0" in capsys.readouterr().err


TEXTS = ["The first sentence is here.", "A second one follows now.", "Then comes a third, longer sentence."]


def test_without_shapes_every_item_says_its_own_sentence_and_draws_nothing() -> None:
    rng = __import__("numpy").random.default_rng(0)
    state = rng.bit_generator.state
    assert [make_broad_asr.shaped(TEXTS, i, rng, 0.0, 0.0) for i in range(3)] == TEXTS
    assert rng.bit_generator.state == state  # outputs made before the shapes existed do not change


def test_fragments_are_the_first_two_to_four_words_and_joined_items_start_with_their_sentence() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    fragments = [make_broad_asr.shaped(TEXTS, 2, rng, 1.0, 0.0) for _ in range(20)]
    for fragment in fragments:
        words = fragment.rstrip(".").split()
        assert 2 <= len(words) <= 4 and fragment.endswith(".")
        assert TEXTS[2].startswith(" ".join(words).rstrip(","))
    joined = [make_broad_asr.shaped(TEXTS, 0, rng, 0.0, 1.0) for _ in range(20)]
    for text in joined:
        assert text.startswith(TEXTS[0] + " ")
        assert 2 <= sum(text.count(t) for t in TEXTS) <= 3


def test_shares_beyond_one_are_refused(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        make_broad_asr.main([str(tmp_path), "--fragments", "0.6", "--joined", "0.6"])
    assert "add up to 1" in capsys.readouterr().err
