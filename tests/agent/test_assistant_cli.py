"""``salmonn-agent assistant``: replays a recording offline with the tiny model, errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from devkit import scenes as synth
from devkit.scenes import SceneBuilder
from salmonn_agent.audio import load_audio
from salmonn_agent.cli import main
from salmonn_agent.mini.shipped import mini_weights_available
from salmonn_agent.registry import MODEL_ENV

SR = 16_000
SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "stream"


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """Two spoken requests with an alarm between them."""
    x, _ = (SceneBuilder(noise_db=-60).silence(0.5).speech(load_audio(SPEECH / "lights.flac")).silence(1.0)
            .sound(synth.alarm(1.0)).silence(1.0).speech(load_audio(SPEECH / "timer.flac")).silence(1.0).build())
    path = tmp_path_factory.mktemp("cli") / "scene.wav"
    sf.write(path, x, SR)
    return path


@pytest.fixture
def base_args(tiny_model_dir, tmp_path) -> list[str]:
    return ["--model", str(tiny_model_dir), "--max-tokens", "4", "--notes", str(tmp_path / "notes.txt"),
            "--audit", str(tmp_path / "audit.jsonl")]


def test_replays_a_file_with_one_line_per_turn(scene, base_args, tmp_path, capsys):
    assert main(["assistant", "--input", str(scene), *base_args, "--allow", "add_note", "--watch", "an alarm"]) == 0
    out, err = capsys.readouterr()
    turns = [line for line in out.splitlines() if line.startswith("turn ")]
    assert [line.split()[:3] for line in turns] == [["turn", "1", "[w1"], ["turn", "2", "[w3"]]  # w2: the alarm
    assert all("| actions: " in line and "ttft" in line for line in turns)
    assert "2 turns" in err and str(tmp_path / "audit.jsonl") in err


def test_json_lines_and_max_turns(scene, base_args, capsys):
    assert main(["assistant", "--input", str(scene), *base_args, "--json", "--max-turns", "1"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [turn] = [r for r in records if "turn" in r]
    assert turn["window"]["id"] == "w1" and turn["metrics"]["eou_delay_ms"] > 0
    assert turn["metrics"]["turn_ms"] >= turn["metrics"]["ttft_ms"]


def test_realtime_replay_runs_the_live_loop(tmp_path, base_args, capsys):
    x, _ = SceneBuilder(noise_db=-60).silence(0.3).speech(load_audio(SPEECH / "yes.flac")).silence(0.9).build()
    path = tmp_path / "yes.wav"
    sf.write(path, x, SR)
    assert main(["assistant", "--input", str(path), "--realtime", *base_args]) == 0
    turns = [line for line in capsys.readouterr().out.splitlines() if line.startswith("turn ")]
    assert len(turns) == 1 and "cancelled" not in turns[0]


@pytest.mark.parametrize(("extra", "message"), [
    (["--input", "{missing}"], "not found"),
    (["--input", "{scene}", "--allow", "add_nots"], "unknown tools ['add_nots']"),
    (["--input", "{scene}", "--allow", "send_webhook"], "needs --webhook"),
    (["--input", "{scene}", "--webhook", "ftp://example.com/hook"], "http"),
    (["--input", "{scene}", "--watch-action", "emit_event"], "needs at least one --watch"),
    (["--input", "{scene}", "--watch", "an alarm", "--watch-action", "list_timers"], "action_args"),
    (["--input", "{scene}", "--max-turns", "0"], "--max-turns"),
    (["--input", "{scene}", "--memory-turns", "-1"], "--memory-turns"),
])
def test_user_errors_are_one_line_and_exit_2(extra, message, scene, base_args, tmp_path, capsys):
    argv = [a.format(missing=tmp_path / "missing.wav", scene=scene) for a in extra]
    assert main(["assistant", *argv, *base_args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("salmonn-agent: error: ") and message in err


@pytest.mark.skipif(mini_weights_available(), reason="this installation ships the default model")
def test_without_a_model_the_error_says_how_to_get_one(scene, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert main(["assistant", "--input", str(scene), "--notes", str(tmp_path / "n.txt")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--model DIR" in err


def test_salmonn_mini_brain_remembers_no_turns_by_default():
    """salmonn-mini learned spoken requests as first turns only (see memory_turns_for)."""
    from salmonn_agent.agent.runtime import AgentConfig, memory_turns_for
    from salmonn_agent.registry import profile_for

    assert memory_turns_for(profile_for("salmonn-mini")) == 0
    assert memory_turns_for(profile_for("models/salmonn-13b")) == AgentConfig().max_memory_turns > 0


def test_text_mode_shows_what_an_action_returned_and_the_summary_is_true(tmp_path, capsys):
    from salmonn_agent.agent.commands import _summary, format_turn
    from salmonn_agent.agent.policy import ActionOutcome
    from salmonn_agent.agent.runtime import TurnMetrics, TurnResult

    notes = ActionOutcome(tool="read_notes", allowed=True, reason="allowed", output="1. buy rice\n2. call mum")
    result = TurnResult(turn=1, window={"id": "w1", "start": 0.0, "end": 1.0}, answer="", actions=[notes],
                        metrics=TurnMetrics(eou_delay_ms=10.0, ttft_ms=None, turn_ms=20.0))
    line = format_turn(result)
    assert "read_notes ran: 1. buy rice 2. call mum" in line  # the notes reach the terminal, not only --json

    class NoAgent:
        detections: list = []

    tools = ["add_note", "read_notes", "set_timer"]
    _summary([result], NoAgent(), tmp_path / "audit.jsonl", tools)
    err = capsys.readouterr().err
    assert "no audit log written" in err and "audit log: " not in err and "--allow" not in err
    (tmp_path / "audit.jsonl").write_text("{}\n")
    _summary([result], NoAgent(), tmp_path / "audit.jsonl", tools)
    assert f"audit log: {tmp_path / 'audit.jsonl'}" in capsys.readouterr().err

    # The brain asked for tools the assistant has but --allow did not name (offered to it, or
    # written as text): the summary says how to allow them.
    asked = ActionOutcome(tool="set_timer", allowed=False, code="not_allowed", reason="not allowed")
    written = ActionOutcome(tool="read_notes", allowed=False, code="unknown_tool", reason="unknown tool 'read_notes'")
    invented = ActionOutcome(tool="order_pizza", allowed=False, code="unknown_tool", reason="unknown tool")
    _summary([result.model_copy(update={"actions": [asked, written, invented]})], NoAgent(), None, tools)
    err = capsys.readouterr().err
    assert "asked for read_notes, set_timer, which --allow did not name: add --allow read_notes set_timer" in err
    assert "pizza" not in err


def test_no_microphone_is_reported_before_the_model_loads(monkeypatch, tmp_path, capsys):
    import salmonn_agent.cli as cli
    from salmonn_agent.stream import sources

    monkeypatch.setattr(sources, "list_input_devices", lambda: [])

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the microphone was checked")

    monkeypatch.setattr(cli, "load_model_from_args", never)
    assert main(["assistant", "--notes", str(tmp_path / "n.txt")]) == 2
    assert "No audio input device found" in capsys.readouterr().err


# ---------------------------------------------------------------- --speak


@pytest.mark.parametrize(("extra", "message"), [
    (["--speaker", "2"], "add --speak"),
    (["--tts", "espeak-ng"], "add --speak"),
    (["--speak", "--speaker", "2", "--speak-wav", "{tmp}/a.wav"], "give one of them"),
    (["--speak-wav", "{tmp}/no/such/folder/a.wav"], "Cannot write"),
])
def test_speak_option_errors_are_one_line(extra, message, scene, base_args, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in extra]
    assert main(["assistant", "--input", str(scene), *argv, *base_args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and message in err


def test_speak_without_a_tts_engine_names_what_to_install(scene, base_args, monkeypatch, capsys):
    import shutil
    import sys

    monkeypatch.setitem(sys.modules, "hibari", None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["assistant", "--input", str(scene), "--speak", *base_args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert 'pip install "salmonn-agent[speak]"' in err and "espeak-ng" in err


def test_speak_without_an_output_device_says_so(scene, base_args, monkeypatch, capsys):
    import sys
    import types

    class NoOutput(types.ModuleType):
        def query_devices(self, device=None, kind=None):
            raise ValueError("No output device matching None")

    monkeypatch.setitem(sys.modules, "sounddevice", NoOutput("sounddevice"))
    assert main(["assistant", "--input", str(scene), "--speak", "--tts", "espeak-ng", *base_args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "No audio output device" in err and "--speak-wav" in err


def test_speak_wav_runs_the_assistant_with_a_speaker(scene, base_args, tmp_path, capsys):
    """The tiny model's answers ("]]]]") have nothing to say: the file is written, empty.
    What is said and when is tested on the runtime (test_speech_out.py)."""
    wav = tmp_path / "said.wav"
    assert main(["assistant", "--input", str(scene), *base_args, "--speak-wav", str(wav)]) == 0
    turns = [line for line in capsys.readouterr().out.splitlines() if line.startswith("turn ")]
    assert len(turns) == 2
    info = sf.info(wav)
    assert info.channels == 1 and info.samplerate in (22_050, 24_000)
