"""The CLI commands: devices, segment, listen (handlers called as the main CLI calls them)."""

from __future__ import annotations

import argparse
import threading
import json

import numpy as np
import pytest
import soundfile as sf

from devkit import scenes as synth
from devkit.scenes import SceneBuilder
from salmonn_agent.errors import SalmonnError
from salmonn_agent.stream.commands import add_stream_commands

SR = 16_000


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="salmonn-agent")
    add_stream_commands(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory, clips):
    x, events = (
        SceneBuilder(noise_db=-60).silence(0.8).speech(clips["lights"]).silence(1.0)
        .sound(synth.tone(1000, 1.0, -20)).silence(1.0).speech(clips["okay"]).silence(1.0).build()
    )
    path = tmp_path_factory.mktemp("cli") / "scene.flac"
    sf.write(path, x, SR)
    return path, x, events


def test_segment_json_lines_and_saved_windows(scene_file, tmp_path, capsys):
    path, x, events = scene_file
    assert _run(["segment", str(path), "--json", "--save-dir", str(tmp_path / "w")]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in records] == ["speech", "sound", "speech"]
    for r, ev in zip(records, events):
        assert r["start"] <= ev.start <= r["end"]
        saved, rate = sf.read(r["file"])
        assert rate == SR and saved.size == round((r["end"] - r["start"]) * SR)


def test_segment_human_readable(scene_file, capsys):
    path, _, _ = scene_file
    assert _run(["segment", str(path), "--no-sound"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and all(" speech " in line for line in lines)
    assert "2 windows" in err


def test_listen_replays_a_file(scene_file, capsys):
    path, _, _ = scene_file
    assert _run(["listen", "--input", str(path), "--fast", "--json", "--periodic", "2"]) == 0
    kinds = [json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()]
    assert kinds.count("speech") == 2 and kinds.count("sound") == 1 and "periodic" in kinds


def test_listen_ask_without_a_model_says_what_is_missing(scene_file):
    path, _, _ = scene_file
    with pytest.raises(SalmonnError, match="answering windows needs a model"):
        _run(["listen", "--input", str(path), "--ask", "What do you hear?"])


def test_bad_options_are_user_errors(scene_file, tmp_path):
    path, _, _ = scene_file
    with pytest.raises(SalmonnError, match="post_roll_ms"):
        _run(["segment", str(path), "--hangover-ms", "100"])
    with pytest.raises(SalmonnError, match="not found"):
        _run(["segment", str(tmp_path / "nope.wav")])


def test_devices_lists_inputs(fake_sd, capsys):
    assert _run(["devices", "--json"]) == 0
    devices = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["name"] for d in devices] == ["HDA Intel PCH: ALC3246 Analog (hw:0,0)", "USB Headset Mic"]


def test_listen_on_the_fake_microphone(fake_sd, clips, capsys, monkeypatch):
    fake_sd.signal = np.concatenate([np.zeros(SR // 2, np.float32), clips["time"], np.zeros(SR, np.float32)])
    from salmonn_agent.stream import listener as listener_module

    original = listener_module.Listener.windows

    def first_window_then_interrupt(self):
        for w in original(self):
            yield w
            raise KeyboardInterrupt

    monkeypatch.setattr(listener_module.Listener, "windows", first_window_then_interrupt)
    assert _run(["listen", "--device", "USB", "--json"]) == 130
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["kind"] == "speech"
    assert not any(s.alive for s in fake_sd.streams)


def test_listen_ask_loads_the_model_before_the_microphone_opens(fake_sd, clips, capsys, monkeypatch):
    events: list[str] = []
    fake_sd.signal = np.concatenate([np.zeros(SR // 2, np.float32), clips["time"], np.zeros(SR, np.float32)])
    opened = fake_sd.InputStream
    monkeypatch.setattr(fake_sd, "InputStream", lambda **kw: events.append("microphone opened") or opened(**kw))

    def answer_windows(windows, instruction, args):
        events.append("model loaded")  # what cli.answer_windows does when called

        def answers():
            for window in windows:
                events.append(f"answer in {threading.current_thread().name}")
                yield window, "an answer"
                raise KeyboardInterrupt

        return answers()

    parser = argparse.ArgumentParser(prog="salmonn-agent")
    add_stream_commands(parser.add_subparsers(required=True), answer_windows=answer_windows)
    args = parser.parse_args(["listen", "--mic", "USB", "--ask", "What is said?", "--json"])
    assert args.handler(args) == 130
    assert events[:2] == ["model loaded", "microphone opened"]
    assert events[2] == "answer in MainThread"  # while the front-end keeps reading in its own thread
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["kind"] == "speech" and record["answer"] == "an answer"


def test_listen_ask_without_a_microphone_fails_before_the_model_loads(fake_sd):
    fake_sd.devices = [d for d in fake_sd.devices if d["max_input_channels"] == 0]
    loaded = []
    parser = argparse.ArgumentParser(prog="salmonn-agent")
    add_stream_commands(parser.add_subparsers(required=True),
                        answer_windows=lambda windows, instruction, args: loaded.append(1) or iter(()))
    args = parser.parse_args(["listen", "--ask", "What is said?"])
    with pytest.raises(SalmonnError, match="No audio input device"):
        args.handler(args)
    assert not loaded
