"""devkit/command_wording.py and tools/make_assistant_data.py --wording: training requests in many
wordings, kept apart from the evaluation requests of devkit/other_requests.py."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import make_assistant_data  # noqa: E402

from devkit.assistant_bank import spoken_timer_args  # noqa: E402
from devkit.command_wording import wording_requests  # noqa: E402
from devkit.other_requests import OTHER_REQUESTS  # noqa: E402
from devkit.voices import speak_with  # noqa: E402
from salmonn_agent.agent.actions import duration_seconds  # noqa: E402


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def test_wording_requests_say_what_their_targets_hold_and_repeat_for_a_seed() -> None:
    requests = wording_requests(600, 3)
    assert requests == wording_requests(600, 3) and requests != wording_requests(600, 4)
    assert len({r.text for r in requests}) == 600
    assert {r.tool for r in requests} == {"set_timer", "add_note", "list_timers", "read_notes", None}
    for r in requests:
        if r.tool == "add_note":
            assert _plain(r.args["text"]) in _plain(r.text), r
        elif r.tool == "set_timer":
            units = [key for key in ("hours", "minutes", "seconds") if key in r.args]
            assert units and all(key[:-1] in r.text.lower() for key in units), r  # the units said
            assert 5 <= duration_seconds(*(r.args.get(k, 0) for k in ("hours", "minutes", "seconds"))) <= 7200, r
        elif r.tool is None:
            assert r.answer, r  # chit-chat is answered in words, never by an action


@pytest.mark.parametrize(("seconds", "text", "args"), [
    (2400, "Start a timer for forty minutes for the cookies.", {"minutes": 40, "label": "cookies"}),
    (90, "Count down ninety seconds.", {"seconds": 90}),
    (90, "A minute and a half, please.", {"minutes": 1.5}),
    (4200, "Set one for an hour and ten minutes.", {"hours": 1, "minutes": 10}),
    (150, "Two minutes and thirty seconds.", {"minutes": 2, "seconds": 30}),
    (1800, "Buzz me in half an hour.", {"hours": 0.5}),
])
def test_timer_targets_keep_the_units_said(seconds: int, text: str, args: dict) -> None:
    label = args.get("label")
    assert spoken_timer_args(seconds, text, label) == args
    with pytest.raises(ValueError, match="no duration unit"):
        spoken_timer_args(60, "Set a timer.")


def test_training_wording_shares_no_four_word_run_with_an_evaluation_request() -> None:
    held = set().union(*(make_assistant_data._word_runs(r.text) for r in OTHER_REQUESTS))
    training = make_assistant_data.training_wording(900, 5)
    assert len(training) == 900
    assert not any(make_assistant_data._word_runs(r.text) & held for r in training)
    eval_texts = {_plain(r.text) for r in OTHER_REQUESTS}
    assert not eval_texts & {_plain(r.text) for r in training}


def test_an_unknown_voice_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="piper:joe"):
        speak_with("piper:joe", "Hello there.")


def test_wording_data_is_training_data_only(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        make_assistant_data.main([str(tmp_path), "--wording"])  # valid and test splits by default
    assert stop.value.code == 2 and "--valid 0 --test 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written
