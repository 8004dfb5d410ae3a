"""Hearing tools: every audio reference form, every rejection, the window store and listen."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from devkit.scenes import SceneBuilder, chord
from salmonn_agent.agent import audio_refs
from salmonn_agent.agent.audio_refs import AudioRefError, AudioResolver, WindowStore
from salmonn_agent.agent.hearing import DESCRIBE_PROMPT, TRANSCRIBE_PROMPT, HearingTools
from salmonn_agent.audio import load_audio
from salmonn_agent.stream.errors import FrontendError
from salmonn_agent.stream.sources import ArraySource, AudioChunk, Source
from salmonn_agent.stream.segmenter import segment
from salmonn_agent.stream.windows import AudioWindow

SR = 16_000
QUESTION = "What is the speaker saying?"


class SpyChat:
    """Delegates to a real chat model and records the messages of every call."""

    def __init__(self, chat: Any) -> None:
        self.chat = chat
        self.calls: list[list[BaseMessage]] = []

    def invoke(self, messages: list[BaseMessage], **kwargs: Any) -> Any:
        self.calls.append(messages)
        return self.chat.invoke(messages, **kwargs)

    async def ainvoke(self, messages: list[BaseMessage], **kwargs: Any) -> Any:
        self.calls.append(messages)
        return await self.chat.ainvoke(messages, **kwargs)


def heard(call: list[BaseMessage]) -> tuple[np.ndarray, str]:
    """The samples and the instruction of the one audio message of a chat call."""
    (message,) = call
    audio, text = message.content
    samples, rate = sf.read(io.BytesIO(base64.b64decode(audio["base64"])), dtype="float32")
    assert rate == SR
    return samples, text["text"]


def wav_bytes(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def tool_call(tool: Any, **args: Any) -> ToolMessage:
    """Invoke a tool the way an agent does (with a tool call), returning its ToolMessage."""
    return tool.invoke({"name": tool.name, "args": args, "id": "call-1", "type": "tool_call"})


@pytest.fixture
def scene(speech: np.ndarray) -> np.ndarray:
    silence = np.zeros(SR, dtype=np.float32)
    return np.concatenate([silence, speech, silence])


@pytest.fixture
def window(scene: np.ndarray) -> AudioWindow:
    (found,) = segment(scene)
    assert found.kind == "speech"
    return found


@pytest.fixture
def audio_dir(tmp_path: Path, speech: np.ndarray) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "yes.wav").write_bytes(wav_bytes(speech))
    return folder


@pytest.fixture
def outside(tmp_path: Path, speech: np.ndarray) -> Path:
    path = tmp_path / "secret.wav"
    path.write_bytes(wav_bytes(speech))
    return path


@pytest.fixture
def spy(chat: Any) -> SpyChat:
    return SpyChat(chat)


@pytest.fixture
def store(window: AudioWindow) -> WindowStore:
    kept = WindowStore()
    assert kept.add(window) == "w1"
    return kept


def make_tools(spy: SpyChat, resolver: AudioResolver, source: Source | None = None) -> dict[str, Any]:
    factory = (lambda: source) if source is not None else None
    return {t.name: t for t in HearingTools(spy, resolver, source_factory=factory).tools()}


@pytest.fixture
def tools(spy: SpyChat, audio_dir: Path, store: WindowStore) -> dict[str, Any]:
    return make_tools(spy, AudioResolver(audio_dir, store))


# ------------------------------------------------------------------ the reference forms

TOOL_ARGS = {
    "transcribe": ({}, TRANSCRIBE_PROMPT),
    "describe_audio": ({}, DESCRIBE_PROMPT),
    "ask_about_audio": ({"question": QUESTION}, QUESTION),
}


@pytest.mark.parametrize("form", ["window", "window-prefixed", "base64", "data-uri", "raw-base64", "path"])
@pytest.mark.parametrize("name", list(TOOL_ARGS))
def test_each_tool_hears_each_reference_form(
    name: str, form: str, tools: dict[str, Any], spy: SpyChat, window: AudioWindow, audio_dir: Path
) -> None:
    file_bytes = (audio_dir / "yes.wav").read_bytes()
    encoded = base64.b64encode(file_bytes).decode()
    ref, expected = {
        "window": ("w1", window.samples),
        "window-prefixed": ("window:w1", window.samples),
        "base64": (f"base64:{encoded}", load_audio(file_bytes)),
        "data-uri": (f"data:audio/wav;base64,{encoded}", load_audio(file_bytes)),
        "raw-base64": (encoded, load_audio(file_bytes)),
        "path": ("yes.wav", load_audio(file_bytes)),
    }[form]
    extra, instruction = TOOL_ARGS[name]

    answer = tools[name].invoke({"audio": ref, **extra})

    assert isinstance(answer, str) and answer
    (call,) = spy.calls
    samples, text = heard(call)
    assert text == instruction
    np.testing.assert_array_equal(samples, expected)
    assert spy.chat.audio_cache.misses == 1  # the model really encoded the clip


def test_windows_recorded_at_another_rate_are_resampled(tools: dict[str, Any], store: WindowStore,
                                                         window: AudioWindow, spy: SpyChat) -> None:
    x = window.samples[::2].copy()  # pretend the window is 8 kHz
    slow = AudioWindow(x, 8000, 0, x.size, "speech", 0.0, 0.1, 0.1, 0, window.metrics)
    ref = store.add(slow)

    tools["transcribe"].invoke({"audio": ref})

    samples, _ = heard(spy.calls[0])
    assert samples.size == 2 * x.size


async def test_tools_run_asynchronously(tools: dict[str, Any], spy: SpyChat, window: AudioWindow) -> None:
    answer = await tools["ask_about_audio"].ainvoke({"audio": "w1", "question": QUESTION})

    assert isinstance(answer, str) and answer
    samples, text = heard(spy.calls[0])
    assert text == QUESTION
    np.testing.assert_array_equal(samples, window.samples)


def test_tool_schemas_tell_the_agent_how_to_pass_audio(tools: dict[str, Any]) -> None:
    schemas = {name: convert_to_openai_tool(tool)["function"] for name, tool in tools.items()}
    assert list(schemas) == ["transcribe", "describe_audio", "ask_about_audio", "listen"]
    audio = schemas["ask_about_audio"]["parameters"]["properties"]["audio"]["description"]
    assert "'w3'" in audio and "base64:" in audio and "data:audio/wav;base64," in audio
    assert schemas["ask_about_audio"]["parameters"]["required"] == ["audio", "question"]
    assert schemas["listen"]["parameters"]["properties"]["seconds"]["anyOf"][0]["maximum"] == 60


# ------------------------------------------------------------------ rejections


def _rejected(tool: Any, spy: SpyChat, **args: Any) -> str:
    reply = tool_call(tool, **args)
    assert reply.status == "error"
    assert not spy.calls  # the model never ran
    return str(reply.content)


def test_path_traversal_is_rejected(tools: dict[str, Any], spy: SpyChat, audio_dir: Path, outside: Path) -> None:
    for ref in ("../secret.wav", str(outside), "sub/../../secret.wav"):
        message = _rejected(tools["transcribe"], spy, audio=ref)
        assert "outside the allowed audio directory" in message and str(audio_dir) in message


def test_symlink_leading_out_of_the_folder_is_rejected(tools: dict[str, Any], spy: SpyChat, audio_dir: Path,
                                                        outside: Path) -> None:
    (audio_dir / "link.wav").symlink_to(outside)
    (audio_dir / "inside.wav").symlink_to(audio_dir / "yes.wav")

    assert "outside the allowed audio directory" in _rejected(tools["transcribe"], spy, audio="link.wav")
    assert tools["transcribe"].invoke({"audio": "inside.wav"})  # a link within the folder is fine


def test_absolute_path_inside_the_folder_is_accepted(tools: dict[str, Any], audio_dir: Path) -> None:
    assert tools["transcribe"].invoke({"audio": str(audio_dir / "yes.wav")})


def test_oversized_base64_is_rejected_before_decoding(spy: SpyChat, monkeypatch: pytest.MonkeyPatch,
                                                       speech: np.ndarray) -> None:
    tools = make_tools(spy, AudioResolver(None, WindowStore(), max_bytes=1000))
    encoded = base64.b64encode(wav_bytes(speech)).decode()

    def no_decoding(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("the payload was decoded")

    monkeypatch.setattr(audio_refs.base64, "b64decode", no_decoding)
    for ref in (f"base64:{encoded}", f"data:audio/wav;base64,{encoded}"):
        message = _rejected(tools["describe_audio"], spy, audio=ref)
        assert "over the limit of 1,000" in message


def test_oversized_file_is_rejected(spy: SpyChat, audio_dir: Path) -> None:
    tools = make_tools(spy, AudioResolver(audio_dir, None, max_bytes=1000))
    size = (audio_dir / "yes.wav").stat().st_size
    assert f"is {size:,} bytes, over the limit of 1,000" in _rejected(tools["transcribe"], spy, audio="yes.wav")


def test_unknown_and_evicted_window_ids_list_the_kept_ones(spy: SpyChat, window: AudioWindow) -> None:
    store = WindowStore(max_windows=2)
    for _ in range(3):
        store.add(window)
    tools = make_tools(spy, AudioResolver(None, store))

    evicted = _rejected(tools["transcribe"], spy, audio="w1")
    assert "no longer kept" in evicted and "w2, w3" in evicted
    unknown = _rejected(tools["transcribe"], spy, audio="window:w99")
    assert "There is no window" in unknown and "w2, w3" in unknown


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (f"base64:{base64.b64encode(b'this is not an audio file ' * 4).decode()}", "not usable audio"),
        ("base64:@@not base64@@", "not valid base64"),
        ("data:audio/wav,UklGRg==", "Only base64 data URIs"),
        ("missing.wav", "There is no file 'missing.wav'"),
        (".", "not a regular file"),
        ("   ", "No audio given"),
        # long and base64-looking, but not an audio header: taken as a (missing) path
        ("QUJD" * 20, "There is no file"),
    ],
)
def test_unusable_references_get_a_readable_tool_error(ref: str, expected: str, tools: dict[str, Any],
                                                        spy: SpyChat) -> None:
    assert expected in _rejected(tools["ask_about_audio"], spy, audio=ref, question=QUESTION)


def test_paths_are_refused_when_no_folder_is_configured(spy: SpyChat) -> None:
    tools = make_tools(spy, AudioResolver(None, WindowStore()))
    message = _rejected(tools["transcribe"], spy, audio="yes.wav")
    assert "allowed_dir" in message and "base64" in message


def test_window_ids_are_refused_without_a_store(spy: SpyChat, audio_dir: Path) -> None:
    tools = make_tools(spy, AudioResolver(audio_dir, None))
    assert "no recent windows are kept" in _rejected(tools["transcribe"], spy, audio="w1")


def test_resolver_refuses_a_missing_folder(tmp_path: Path) -> None:
    from salmonn_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        AudioResolver(tmp_path / "nope")


# ------------------------------------------------------------------ the window store


def test_store_evicts_the_oldest_and_summarises(window: AudioWindow) -> None:
    store = WindowStore(max_windows=3)
    ids = [store.add(window) for _ in range(5)]

    assert ids == ["w1", "w2", "w3", "w4", "w5"]
    assert store.recent() == ["w3", "w4", "w5"] and len(store) == 3
    assert "w2" not in store and "window:w4" in store
    assert store.get("window:w5") is window
    summary = store.summary("w4")
    assert summary == {"id": "w4", "index": window.index, "kind": "speech", "start": round(window.start, 3),
                       "end": round(window.end, 3), "duration": round(window.duration, 3)}
    with pytest.raises(AudioRefError, match="no longer kept"):
        store.get("w1")


def test_store_is_safe_across_threads(window: AudioWindow) -> None:
    store = WindowStore(max_windows=32)
    ids: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        mine = [store.add(window) for _ in range(250)]
        with lock:
            ids.extend(mine)

    def reader() -> None:
        while not done.is_set():
            for window_id in store.recent():
                try:
                    store.get(window_id)
                except AudioRefError:
                    pass  # evicted between recent() and get(): allowed
                except Exception as err:  # noqa: BLE001 - reported by the test thread
                    errors.append(err)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()

    assert not errors
    assert sorted(ids, key=lambda i: int(i[1:])) == [f"w{n}" for n in range(1, 1001)]
    assert store.recent() == [f"w{n}" for n in range(969, 1001)]


# ------------------------------------------------------------------ listen


def test_listen_waits_for_speech_and_keeps_the_window(spy: SpyChat, speech: np.ndarray) -> None:
    store = WindowStore()
    scene, events = (
        SceneBuilder(noise_db=-60).silence(1).sound(chord(seconds=1.0)).silence(1).speech(speech).silence(1).build()
    )
    assert segment(scene)[0].kind == "sound"  # the scene really starts with a non-speech event
    tools = make_tools(spy, AudioResolver(None, store), ArraySource(scene))

    answer = tools["listen"].invoke({"question": QUESTION})

    assert answer.startswith("Heard w1 (speech, ")
    assert store.recent() == ["w1"]  # the chord before the speech was not taken
    kept = store.get("w1")
    assert kept.kind == "speech" and kept.start < events[1].start < events[1].end < kept.end
    samples, text = heard(spy.calls[0])
    assert text == QUESTION
    np.testing.assert_array_equal(samples, kept.samples)
    assert tools["transcribe"].invoke({"audio": "w1"})  # the id works in the other tools


def test_listen_records_a_fixed_length(spy: SpyChat, scene: np.ndarray) -> None:
    store = WindowStore()
    tools = make_tools(spy, AudioResolver(None, store), ArraySource(scene, chunk_ms=300))

    answer = tools["listen"].invoke({"question": QUESTION, "seconds": 1})

    assert answer.startswith("Heard w1 (periodic, 1.0 s): ")
    kept = store.get("w1")
    assert kept.duration == 1.0 and kept.metrics.reason == "max_length"
    np.testing.assert_array_equal(kept.samples, scene[:SR])
    np.testing.assert_array_equal(heard(spy.calls[0])[0], scene[:SR])


def test_listen_on_silence_times_out(spy: SpyChat) -> None:
    store = WindowStore()
    tools = make_tools(spy, AudioResolver(None, store), ArraySource(np.zeros(20 * SR, np.float32)))

    answer = tools["listen"].invoke({"question": QUESTION, "timeout_s": 2})

    assert answer == "Heard no speech within 2 s. Ask the user to speak, then listen again."
    assert not store.recent() and not spy.calls


class StalledMicrophone(Source):
    """A live input that delivers no audio, only heartbeats (a muted or hung microphone)."""

    def chunks(self) -> Iterator[AudioChunk]:
        while not self.stopped:
            time.sleep(0.01)
            yield AudioChunk(np.zeros(0, np.float32), 0)


def test_listen_times_out_on_a_stalled_input(spy: SpyChat) -> None:
    microphone = StalledMicrophone()
    tools = make_tools(spy, AudioResolver(None, WindowStore()), microphone)
    answers: list[str] = []
    worker = threading.Thread(target=lambda: answers.append(tools["listen"].invoke({"question": QUESTION, "timeout_s": 0.3})))

    worker.start()
    worker.join(timeout=5.0)
    microphone.stop()  # ends a listen that did not time out by itself, so the test fails instead of hanging
    worker.join()

    assert answers == ["Heard no speech within 0.3 s. Ask the user to speak, then listen again."]


def test_listen_reports_an_input_that_ends_without_speech(spy: SpyChat) -> None:
    tools = make_tools(spy, AudioResolver(None, WindowStore()), ArraySource(np.zeros(SR, np.float32)))
    answer = tools["listen"].invoke({"question": QUESTION})
    assert answer == "The audio input ended after 1.0 s without any speech."


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"seconds": 0}, "seconds: Input should be greater than 0"),
        ({"seconds": 61}, "seconds: Input should be less than or equal to 60"),
        ({"until_end_of_speech": False}, "nothing to record"),
        ({"question": ""}, "question: String should have at least 1 character"),
    ],
)
def test_listen_arguments_are_checked(args: dict[str, Any], expected: str, spy: SpyChat) -> None:
    def no_source() -> Source:
        raise AssertionError("the input was opened")

    tools = {t.name: t for t in HearingTools(spy, AudioResolver(None, WindowStore()), source_factory=no_source).tools()}
    message = tools["listen"].invoke({"question": QUESTION, **args})
    assert expected in message and "Fix them" in message


def test_listen_reports_a_missing_microphone(spy: SpyChat) -> None:
    def broken() -> Source:
        raise FrontendError("No audio input device found: connect a microphone.")

    tools = {t.name: t for t in HearingTools(spy, AudioResolver(None, WindowStore()), source_factory=broken).tools()}
    reply = tool_call(tools["listen"], question=QUESTION)
    assert reply.status == "error" and "connect a microphone" in str(reply.content)
    # the listen lock was released: a later call runs (and fails the same way, not "already listening")
    assert "connect a microphone" in str(tool_call(tools["listen"], question=QUESTION).content)
