"""The shipped salmonn-mini weights hear: words, sounds and speech presence, on clips it never saw.

The speech fixtures were spoken by espeak-ng voices and sentences outside salmonn-mini's training
data; the sound is a freshly seeded rendering. Bounds are loose (a small model, synthetic
training data) but far from what a model that does not hear gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from devkit import scoring
from devkit.sounds import synth_sound
from salmonn_agent import registry
from salmonn_agent.mini import shipped

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream"
TEXTS = {item["file"]: item["text"] for item in json.loads((FIXTURES / "speech.json").read_text())}


@pytest.fixture(scope="module")
def mini(mini_parts, mini_cache, monkeypatch_module):
    monkeypatch_module.setenv("SALMONN_AGENT_CACHE", str(mini_cache))
    monkeypatch_module.delenv(registry.MODEL_ENV, raising=False)
    assert shipped.mini_weights_available(), "salmonn-mini's weights are missing from the package"
    return registry.load_model(None)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_salmonn_mini_transcribes_unseen_sentences(mini):
    # "lights" is a voice-assistant command like the training sentences; "hello" and "weather"
    # are further from them (salmonn-mini got WER 0.18 on its held-out split, about 0.5 here).
    files = ["lights.flac", "weather.flac", "hello.flac"]
    answers = mini.generate([str(FIXTURES / f) for f in files], "Recognize the speech and give me the transcription.",
                            max_new_tokens=40)
    assert scoring.corpus_wer([TEXTS["lights.flac"]], answers[:1]) <= 0.2, answers[0]
    assert scoring.corpus_wer([TEXTS[f] for f in files], answers) <= 0.7, list(zip(files, answers))


ALARM = synth_sound("alarm", np.random.default_rng(12345), 4.0).audio


def test_salmonn_mini_hears_someone_speak(mini):
    from salmonn_agent.audio import load_audio

    (presence,) = mini.generate(load_audio(FIXTURES / "lights.flac"), "Is anyone speaking in this recording?",
                                sample_rate=16_000, max_new_tokens=10)
    assert scoring.yes_no(presence) == "yes", presence


@pytest.mark.xfail(reason="salmonn-mini says someone speaks over this synthetic alarm although its transcript "
                          "line reads (no speech): it answers presence over tonal sounds and music from its audio "
                          "tokens (model card, Limits)")
def test_salmonn_mini_hears_no_one_speak_over_an_alarm(mini):
    (presence,) = mini.generate(ALARM, "Is anyone speaking in this recording?", sample_rate=16_000, max_new_tokens=10)
    assert scoring.yes_no(presence) == "no", presence


def test_salmonn_mini_names_the_sound(mini):
    (named,) = mini.generate(ALARM, "What sound can you hear?", sample_rate=16_000, max_new_tokens=20)
    assert scoring.sound_class_of(named) == "alarm", named


# ------------------------------------------------- the examples, with the embedded default model
ROOT = Path(__file__).resolve().parents[2]


def _run_example(script: str, *args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != registry.MODEL_ENV}
    env["SALMONN_AGENT_CACHE"] = str(cache)
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=300, env=env)


@pytest.fixture(scope="module")
def two_requests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two spoken requests with silence between them."""
    from devkit.scenes import SceneBuilder
    from salmonn_agent.audio import load_audio

    x, _ = (SceneBuilder(noise_db=-60).silence(0.5).speech(load_audio(FIXTURES / "time.flac")).silence(1.0)
            .speech(load_audio(FIXTURES / "timer.flac")).silence(1.0).build())
    path = tmp_path_factory.mktemp("mini_examples") / "requests.wav"
    sf.write(path, x, 16_000)
    return path


def test_voice_assistant_example_runs_with_salmonn_mini(two_requests, mini_parts, mini_cache, tmp_path):
    done = _run_example("examples/voice_assistant.py", "--input", str(two_requests),
                        "--notes", str(tmp_path / "notes.txt"), "--audit", str(tmp_path / "audit.jsonl"),
                        cache=mini_cache)
    assert done.returncode == 0, done.stderr
    turns = [line for line in done.stdout.splitlines() if line.startswith("turn ")]
    assert len(turns) == 2, done.stdout


def test_assistant_with_one_tool_allowed_refuses_the_tool_asked_for_instead_of_running_another(
        mini_parts, mini_cache, tmp_path):
    """`assistant --allow add_note` hearing "Set a timer for ten minutes": salmonn-mini is offered
    the five tools it learned, asks for set_timer, which the gate refuses; no note is saved (offered
    add_note alone, it saved one), and the summary says which --allow it needed."""
    env = {k: v for k, v in os.environ.items() if k != registry.MODEL_ENV}
    env["SALMONN_AGENT_CACHE"] = str(mini_cache)
    notes, audit = tmp_path / "notes.txt", tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "salmonn_agent.cli", "assistant", "--input", str(FIXTURES / "timer.flac"),
         "--allow", "add_note", "--notes", str(notes), "--audit", str(audit), "--dtype", "float32"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["tool"], r["code"]) for r in records] == [("set_timer", "not_allowed")], records
    assert not notes.exists() or notes.read_text().strip() == ""
    assert "add --allow set_timer" in done.stderr


def test_streaming_chat_example_runs_with_salmonn_mini(mini_parts, mini_cache):
    done = _run_example("examples/streaming_chat.py", "What is said?", "--input", str(FIXTURES / "lights.flac"),
                        cache=mini_cache)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "> What is said?" and len(done.stdout.splitlines()) >= 2


def test_agent_with_ears_example_runs_with_salmonn_mini(mini_parts, mini_cache, tmp_path):
    clip = Path(shutil.copy(FIXTURES / "lights.flac", tmp_path / "lights.flac"))
    done = _run_example("examples/agent_with_ears.py", "What is said?", "--input", str(clip), cache=mini_cache)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("answer: ")


def test_sound_watch_example_runs_with_salmonn_mini(mini_parts, mini_cache, tmp_path):
    alarm = tmp_path / "alarm.wav"
    sf.write(alarm, np.concatenate([np.zeros(8000, np.float32), synth_sound("alarm", np.random.default_rng(7), 3.0).audio,
                                    np.zeros(16000, np.float32)]), 16_000)
    done = _run_example("examples/sound_watch.py", "http://127.0.0.1:9/hook", "--input", str(alarm),
                        "--watch", "an alarm", "--audit", str(tmp_path / "audit.jsonl"), cache=mini_cache)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("checked ")


def _batch_requests() -> list[tuple[np.ndarray, str]]:
    """16 (clip, instruction) requests: repeats included, so the prefix cache is hit."""
    from salmonn_agent.audio import load_audio

    clips = [load_audio(FIXTURES / f) for f in ("lights.flac", "weather.flac")]
    clips.append(synth_sound("alarm", np.random.default_rng(3), 3.0).audio)
    instructions = ["Recognize the speech and give me the transcription.", "What do you hear?",
                    "Is anyone speaking?", "Describe the audio."]
    return [(clips[i % 3], instructions[i % 4]) for i in range(16)]


def _sequential_and_concurrent(model, requests: list[tuple[np.ndarray, str]]) -> tuple[list[str], list[str]]:
    """The requests one after another, then all at once (batched by the chat engine)."""
    import concurrent.futures

    from salmonn_agent.chat_model import ChatSALMONN, audio_message

    messages = [[audio_message(clip, instruction, sample_rate=16_000)] for clip, instruction in requests]
    sequential_chat = ChatSALMONN(client=model, temperature=0, max_tokens=24)
    sequential = [sequential_chat.invoke(m).content for m in messages]
    concurrent_chat = ChatSALMONN(client=model, temperature=0, max_tokens=24)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(lambda m: concurrent_chat.invoke(m).content, messages))
    assert concurrent_chat._runtime(None).engine.batches_run < 16  # they really were batched
    return sequential, concurrent


def _answer_nll(model, request: tuple[np.ndarray, str], answer: str) -> float:
    """``answer``'s negative log-likelihood (nats, end symbol included) under ``model``, given the
    request's clip and instruction rendered as the chat model renders them."""
    import torch

    from salmonn_agent.chat_model import ChatSALMONN, audio_message

    clip, instruction = request
    prompt = ChatSALMONN(client=model).rendered_prompt([audio_message(clip, instruction, sample_rate=16_000)])
    with torch.no_grad():
        out = model.forward([prompt], [model.encode_audio([clip], 16_000)], labels=[model.answer_ids(answer, 64)])
    return float(out.loss_sum[0])


# Two answers whose likelihoods under exact (float32) arithmetic are this close are a near-tie,
# which half-precision rounding may flip either way: "A male voice says slowly: ..." and
# "A woman says slowly, ..." about the lights clip differ by 0.3 to 1.7 nats. An answer that
# belongs to another request (a transcript where a description was asked) is over 20 nats off.
NEAR_TIE_NATS = 3.0


@pytest.mark.slow
def test_salmonn_mini_answers_do_not_depend_on_their_batch_mates(mini, mini_cache, monkeypatch):
    """16 requests at once give the answers of 16 one after another, repeats and prefix-cache hits
    included: exactly in float32. In the default precision (half-precision weights on a CPU) a
    batch rounds differently from a single row, and how depends on the CPU's kernels; so there
    an answer may differ only where the float32 model finds the two answers about equally likely."""
    monkeypatch.setenv("SALMONN_AGENT_CACHE", str(mini_cache))
    requests = _batch_requests()
    model32 = registry.load_model(None, dtype="float32")
    sequential32, concurrent32 = _sequential_and_concurrent(model32, requests)
    assert concurrent32 == sequential32
    sequential, concurrent = _sequential_and_concurrent(mini, requests)
    differing = [(r, alone, batched) for r, alone, batched in zip(requests, sequential, concurrent, strict=True)
                 if batched != alone]
    assert len(differing) <= 2, differing
    for request, alone, batched in differing:
        gap = abs(_answer_nll(model32, request, batched) - _answer_nll(model32, request, alone))
        assert gap <= NEAR_TIE_NATS, (alone, batched, gap)
