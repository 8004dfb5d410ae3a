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
