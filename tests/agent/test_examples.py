"""The examples and tools/bench_agent.py run end to end on a file input, offline, with the tiny model.

Each example runs as a user runs it (a subprocess, ``--model`` the tiny model, ``--input`` a
small file). The tiny model's answers are random: the tests check that the programs complete
and print what they promise, never what the model says. The benchmark's scoring rules are
checked directly on made-up turns.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from devkit import scenes as synth
from devkit.assistant_bank import Request
from devkit.scenes import SceneBuilder
from salmonn_agent.agent.policy import AuditRecord
from salmonn_agent.agent.runtime import TurnMetrics, TurnResult
from salmonn_agent.audio import load_audio
from salmonn_agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "tests" / "fixtures" / "stream"
SR = 16_000

SCRIPTED_BRAIN = '''
"""A brain that always transcribes the audio it is told about, then repeats what it heard."""
import re

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class ScriptedBrain(BaseChatModel):
    tool_names: list[str] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        self.tool_names = [t.name for t in tools]
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(f"The audio says: {last.text} (tools: {' '.join(self.tool_names)})")
        else:
            ref = re.search(r"The audio is '([^']+)'", last.text).group(1)
            reply = AIMessage("", tool_calls=[{"name": "transcribe", "args": {"audio": ref}, "id": "call-1"}])
        return ChatResult(generations=[ChatGeneration(message=reply)])
'''


HEARING_BRAIN = '''
"""A brain that hears: it reports the audio blocks and the question it was given."""
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from salmonn_agent.registry import ModelProfile


class HearingBrain(BaseChatModel):
    model_profile: ModelProfile = ModelProfile(hears_audio=True)

    @property
    def _llm_type(self) -> str:
        return "hearing"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        blocks = [b for b in messages[-1].content if isinstance(b, dict)]
        audio = [b for b in blocks if b.get("type") == "audio"]
        question = " ".join(b["text"] for b in blocks if b.get("type") == "text")
        reply = AIMessage(f"heard {len(audio)} audio block(s); question: {question}")
        return ChatResult(generations=[ChatGeneration(message=reply)])
'''


def run(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``script`` (relative to the repository) like a user does."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=ROOT, capture_output=True, text=True, check=False,
        timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


@pytest.fixture(scope="module")
def requests_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two spoken requests with silence between them."""
    x, _ = (SceneBuilder(noise_db=-60).silence(0.5).speech(load_audio(SPEECH / "lights.flac")).silence(1.0)
            .speech(load_audio(SPEECH / "timer.flac")).silence(1.0).build())
    path = tmp_path_factory.mktemp("examples") / "requests.wav"
    sf.write(path, x, SR)
    return path


@pytest.fixture(scope="module")
def alarm_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An alarm, then speech."""
    x, _ = (SceneBuilder(noise_db=-60).silence(0.5).sound(synth.alarm(1.0)).silence(1.0)
            .speech(load_audio(SPEECH / "yes.flac")).silence(1.0).build())
    path = tmp_path_factory.mktemp("examples") / "alarm.wav"
    sf.write(path, x, SR)
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A short spoken clip alone in its folder (the folder agent_with_ears may hear)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    return Path(shutil.copy(SPEECH / "yes.flac", folder / "yes.flac"))


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook on 127.0.0.1: its URL and the JSON bodies it received."""
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- the examples


def test_voice_assistant_replays_a_file_one_line_per_turn(requests_wav, tiny_model_dir, tmp_path):
    done = run("examples/voice_assistant.py", "--input", str(requests_wav), "--model", str(tiny_model_dir),
               "--notes", str(tmp_path / "notes.txt"), "--audit", str(tmp_path / "audit.jsonl"),
               "--allow", "add_note", "--max-tokens", "4")
    assert done.returncode == 0, done.stderr
    turns = [line for line in done.stdout.splitlines() if line.startswith("turn ")]
    assert [line.split()[:3] for line in turns] == [["turn", "1", "[w1"], ["turn", "2", "[w2"]]
    assert all("| actions: " in line and "ttft" in line for line in turns)
    assert "2 turns" in done.stderr


def test_agent_with_ears_runs_the_hearing_tools_in_a_langgraph_loop(clip, tiny_model_dir, tmp_path):
    (tmp_path / "scripted_brain.py").write_text(SCRIPTED_BRAIN)
    done = run("examples/agent_with_ears.py", "What is said?", "--input", str(clip), "--model", str(tiny_model_dir),
               "--brain", "scripted_brain:ScriptedBrain", "--max-tokens", "4", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    call, heard, answer = done.stdout.splitlines()
    assert call == "call transcribe(audio='yes.flac')"
    assert heard.startswith("transcribe -> ")
    transcript = heard.removeprefix("transcribe -> ")
    # SALMONN's transcript went back to the brain; listen is offered only with --mic.
    assert answer == f"answer: The audio says: {transcript} (tools: transcribe describe_audio ask_about_audio)"


def test_agent_with_ears_defaults_to_salmonn_as_the_brain(clip, tiny_model_dir):
    done = run("examples/agent_with_ears.py", "What is said?", "--input", str(clip), "--model", str(tiny_model_dir),
               "--max-tokens", "4")
    assert done.returncode == 0, done.stderr
    # SALMONN hears the clip itself: the question goes to it with the audio, no tool plan first.
    [line] = done.stdout.splitlines()
    assert line.startswith("answer: ") and len(line) > len("answer: ")


def test_agent_with_ears_gives_a_hearing_brain_the_audio(clip, tiny_model_dir, tmp_path):
    # A brain whose profile says it hears gets the audio with the question (as the voice
    # assistant does), so even a brain that never plans a tool call answers about the clip.
    (tmp_path / "hearing_brain.py").write_text(HEARING_BRAIN)
    done = run("examples/agent_with_ears.py", "What is said?", "--input", str(clip), "--model", str(tiny_model_dir),
               "--brain", "hearing_brain:HearingBrain", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["answer: heard 1 audio block(s); question: What is said?"]


@pytest.mark.parametrize(("brain", "words"), [("nosuch_package:ChatX", "cannot import 'nosuch_package'"),
                                               ("json:NoSuchModel", "has no 'NoSuchModel'"),
                                               ("nocolon", "module:attr")])
def test_agent_with_ears_bad_brain_is_one_error_line_before_loading(clip, tmp_path, brain, words):
    done = run("examples/agent_with_ears.py", "--input", str(clip), "--brain", brain,
               env={"SALMONN_AGENT_MODEL": str(tmp_path / "no-model")})  # a model load would fail differently
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and words in line


def test_sound_watch_checks_every_window_of_a_file(alarm_wav, tiny_model_dir, tmp_path, webhook):
    url, received = webhook
    done = run("examples/sound_watch.py", url, "--input", str(alarm_wav), "--model", str(tiny_model_dir),
               "--watch", "an alarm", "--watch", "a doorbell", "--audit", str(tmp_path / "audit.jsonl"))
    assert done.returncode == 0, done.stderr
    summary = done.stderr.strip().splitlines()[-1]
    assert summary == f"checked 2 windows, {len(received)} webhook calls sent."  # the alarm and the speech
    # Whatever the random model detected reached the local webhook in the documented shape.
    assert len(done.stdout.splitlines()) == len(received)
    assert all(set(body) == {"event", "details", "sent_at"} and body["event"].startswith("heard: ") for body in received)


def test_streaming_chat_streams_each_answer_of_a_conversation(clip, tiny_model_dir):
    done = run("examples/streaming_chat.py", "What is said?", "Who says it?", "--input", str(clip),
               "--model", str(tiny_model_dir), "--max-tokens", "4")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "> What is said?" and "> Who says it?" in lines[1:]
    timings = [line for line in done.stderr.splitlines() if line.startswith("(") and " ms in all)" in line]
    assert len(timings) == 2


@pytest.mark.parametrize(("script", "extra"), [
    ("examples/voice_assistant.py", []),
    ("examples/agent_with_ears.py", []),
    ("examples/sound_watch.py", ["http://127.0.0.1:9/hook"]),
    ("examples/streaming_chat.py", []),
])
def test_a_missing_input_is_one_error_line(script, extra, tmp_path):
    missing = tmp_path / "missing.wav"
    done = run(script, *extra, "--input", str(missing), env={"SALMONN_AGENT_MODEL": str(tmp_path / "no-model")})
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert str(missing) in line


# ---------------------------------------------------------------- the benchmark


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the benchmark speaks its requests with espeak-ng")
def test_bench_agent_prints_its_json(tiny_model_dir):
    done = run("tools/bench_agent.py", "--model", str(tiny_model_dir), "--requests", "10", "--json",
               "--threads", "1", "--max-tokens", "4", "--details")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["requests"] == 10 and result["commands"] == 8 and result["questions"] == 2
    for key in ("eou_to_first_token_ms", "turn_ms", "ttft_ms", "eou_delay_ms"):
        assert isinstance(result[key], float) and result[key] > 0
    assert 0.0 <= result["actions_correct"] <= result["tools_correct"] <= 1.0
    assert result["model"] == str(tiny_model_dir) and result["threads"] == 1
    # Clean speech 1.2 s apart: every request is its own window, matched by time.
    assert result["turns"] == 10 and result["unmatched_turns"] == 0
    assert [len(d["got"]["windows"]) for d in result["details"]] == [1] * 10
    commands = [d for d in result["details"] if "tool" in d["expected"]]
    assert {d["expected"]["tool"] for d in commands} <= {"set_timer", "add_note", "list_timers", "read_notes"}
    right_tools = [len(d["got"]["calls"]) == 1 and d["got"]["calls"][0]["tool"] == d["expected"]["tool"]
                   for d in commands]
    assert result["tools_correct"] == round(sum(right_tools) / len(commands), 3)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the benchmark speaks its requests with espeak-ng")
def test_bench_agent_speak_reports_the_time_to_first_audio(tiny_model_dir):
    done = run("tools/bench_agent.py", "--model", str(tiny_model_dir), "--requests", "3", "--questions", "1",
               "--json", "--threads", "1", "--max-tokens", "4", "--speak")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tts"] in ("hibari", "espeak-ng") and 0 <= result["spoken_turns"] <= result["turns"]
    # The tiny model's answers are random (often nothing to say): only the key is promised.
    assert "eou_to_first_audio_ms" in result and "first_audio_ms" in result


def test_bench_agent_user_errors_are_one_line(tiny_model_dir):
    done = run("tools/bench_agent.py", "--model", str(tiny_model_dir), "--requests", "3", "--questions", "3")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().startswith("bench_agent: error: ") and "--questions" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_agent_tool", ROOT / "tools" / "bench_agent.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


TIMER_DEFAULTS = {"label": "timer"}


@pytest.mark.parametrize(("expected", "got", "right"), [
    ({"seconds": 300}, {"seconds": 300}, True),
    ({"seconds": 300}, {"seconds": 300.0, "label": "timer"}, True),  # the default label
    ({"seconds": 300}, {"seconds": "300"}, True),
    ({"seconds": 300}, {"seconds": 30}, False),
    ({"seconds": 300}, {"seconds": 300, "label": "tea"}, False),
    ({"seconds": 60, "label": "tea"}, {"seconds": 60, "label": "Tea."}, True),
    ({"seconds": 60, "label": "tea"}, {"seconds": 60}, False),  # the label was asked for
    ({"seconds": 60}, {"seconds": 60, "colour": "red"}, False),
])
def test_bench_timer_arguments(bench, expected, got, right):
    assert bench.args_match(expected, got, TIMER_DEFAULTS) is right


@pytest.mark.parametrize(("got", "right"), [
    ("buy a new lamp", True),
    ("Buy a new lamp.", True),
    ("buy new lamp", True),  # one word of four missing: WER 0.25
    ("buy a lamp", True),
    ("buy lamp", False),
    ("buy a new lamp today", True),
    ("", False),
])
def test_bench_note_text_within_a_word_error_rate(bench, got, right):
    assert bench.args_match({"text": "buy a new lamp"}, {"text": got}, {}) is right


def _turn(number: int, start: float, end: float, answer: str = "") -> TurnResult:
    return TurnResult(
        turn=number, window={"id": f"w{number}", "start": start, "end": end}, answer=answer,
        metrics=TurnMetrics(eou_delay_ms=300.0, ttft_ms=100.0, turn_ms=200.0),
    )


def _call(turn: int, tool: str, **args: Any) -> AuditRecord:
    return AuditRecord(time="2026-01-01T00:00:00Z", tool=tool, args=args, decision="allowed", reason="ok",
                       code="allowed", turn=turn)


def test_bench_scores_each_request_from_the_turns_its_speech_overlaps(bench):
    said = [
        bench.Spoken(Request("Set a timer for five minutes.", "set_timer", {"seconds": 300}), 0.5, 2.0, "v"),
        bench.Spoken(Request("Add milk to my notes.", "add_note", {"text": "milk"}), 3.0, 4.5, "v"),
        bench.Spoken(Request("Read my notes.", "read_notes", {}), 5.5, 6.5, "v"),
        bench.Spoken(Request("What is two plus two?", None, {}, answer="Four."), 7.5, 9.0, "v"),
        bench.Spoken(Request("List my timers.", "list_timers", {}), 10.0, 11.0, "v"),
    ]
    turns = [_turn(1, 0.3, 2.4), _turn(2, 2.9, 3.6), _turn(3, 3.7, 4.9), _turn(4, 5.3, 6.9),
             _turn(5, 7.3, 9.4, "It is four."), _turn(6, 12.0, 12.5)]
    records = [
        _call(1, "set_timer", seconds=300, label="timer"),  # right, with the default label
        _call(2, "add_note", text="milk"), _call(3, "add_note", text="milk"),  # split speech: two calls
        _call(4, "read_notes", last=10), _call(4, "list_timers"),  # two calls for one request
        _call(6, "list_timers"),  # a window no request overlaps
    ]
    defaults = {"set_timer": {"label": "timer"}, "read_notes": {"last": 10}}
    figures, details = bench.score(said, turns, records, defaults)
    assert [d["correct"] for d in details] == [True, False, False, True, False]
    assert [d["got"]["windows"] for d in details] == [["w1"], ["w2", "w3"], ["w4"], ["w5"], []]
    # tools_correct: only the timer called exactly one tool, the right one (two notes, two
    # calls for "read my notes", nothing for "list my timers")
    # false_cutoffs: "Add milk to my notes." was cut into two turns (one request of five)
    # wrong_actions_run: list_timers ran for "read my notes"
    assert figures == {"commands": 4, "questions": 1, "actions_correct": 0.25, "tools_correct": 0.25,
                       "wrong_actions_run": 0.25, "questions_answered": 1.0, "questions_correct": 1.0, "unmatched_turns": 1,
                       "false_actions": 0.0, "false_actions_run": 0.0, "false_cutoffs": 0.2}
    acted = records + [_call(5, "set_timer", seconds=4)]  # the question triggered an action
    assert bench.score(said, turns, acted, defaults)[0]["false_actions"] == 1.0


def test_bench_counts_the_right_tool_with_wrong_arguments_as_a_right_tool_only(bench):
    said = [bench.Spoken(Request("Set a timer for five minutes.", "set_timer", {"seconds": 300}), 0.5, 2.0, "v")]
    records = [_call(1, "set_timer", seconds=30, label="timer")]
    figures, _ = bench.score(said, [_turn(1, 0.3, 2.4)], records, {"set_timer": {"label": "timer"}})
    assert figures["actions_correct"] == 0.0 and figures["tools_correct"] == 1.0


def test_bench_counts_a_refused_right_call_as_right_and_a_wrong_action_that_ran_as_wrong(bench):
    said = [bench.Spoken(Request("Read my notes.", "read_notes", {}), 0.5, 2.0, "v"),
            bench.Spoken(Request("Set a timer for five minutes.", "set_timer", {"seconds": 300}), 3.0, 4.5, "v")]
    turns = [_turn(1, 0.3, 2.4), _turn(2, 2.8, 4.9)]
    # --allow without read_notes and set_timer: the first turn asked for the right tool (refused),
    # the second saved a note instead of setting a timer; a refused wrong call runs nothing.
    refused = _call(1, "read_notes").model_copy(update={"decision": "denied", "code": "not_allowed"})
    for second, wrong in ((_call(2, "add_note", text="five minutes"), 0.5),
                          (_call(2, "add_note", text="x").model_copy(update={"decision": "denied"}), 0.0)):
        figures, _ = bench.score(said, turns, [refused, second], {"read_notes": {"last": 10}})
        assert (figures["tools_correct"], figures["wrong_actions_run"]) == (0.5, wrong)


def test_bench_other_bank_draws_every_hand_written_request_by_default(bench):
    commands, questions, hesitations = bench.BANKS["other"]
    chosen = bench.pick_requests(commands, questions, seed=0, bank="other")
    assert (commands, questions, hesitations) == (40, 10, 0)
    assert len({r.text for r in chosen}) == 40 and sum(r.tool is None for r in chosen) == 10
    assert {r.tool for r in chosen if r.tool} == set(bench.COMMAND_TOOLS)
    assert chosen != bench.pick_requests(commands, questions, seed=1, bank="other")  # the order follows the seed
    with pytest.raises(ConfigError, match="other bank has too few"):
        bench.pick_requests(41, 10, seed=0, bank="other")


def test_bench_chit_chat_is_right_without_an_action_and_is_not_graded_for_words(bench):
    said = [bench.Spoken(Request("Good morning!", None, {}), 0.5, 1.5, "v"),
            bench.Spoken(Request("What is the capital of Italy?", None, {}, answer="rome"), 2.5, 4.0, "v")]
    turns = [_turn(1, 0.3, 1.8, "Good morning to you."), _turn(2, 2.3, 4.2, "It is Paris.")]
    figures, details = bench.score(said, turns, [], {})
    assert [d["correct"] for d in details] == [True, False]
    assert (figures["questions_answered"], figures["questions_correct"], figures["false_actions"]) == (1.0, 0.0, 0.0)
    acted = [_call(1, "add_note", text="good morning")]
    figures, details = bench.score(said, turns, acted, {})
    assert details[0]["correct"] is False and figures["false_actions"] == figures["false_actions_run"] == 0.5
    refused = [acted[0].model_copy(update={"decision": "denied", "code": "not_heard"})]
    figures, _ = bench.score(said, turns, refused, {})
    assert (figures["false_actions"], figures["false_actions_run"]) == (0.5, 0.0)
