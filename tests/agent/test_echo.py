"""The echo gate: the assistant's own voice, mixed back into the microphone at room level, opens
nothing; a person speaking over it is heard and stops the playback.

Offline and deterministic: the assistant's and the person's speech are committed espeak-ng
clips (different voices); the echo is the playback delayed, lightly low-passed and brought to
room level, over a noise floor. The end-to-end tests run the voice assistant on a simulated room
(a fake sounddevice whose microphone hears its speaker), paced like real devices.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage

from salmonn_agent.agent.audio_refs import WindowStore
from salmonn_agent.agent.echo import EchoGate
from salmonn_agent.agent.policy import ActionGate, ActionPolicy, AuditLog
from salmonn_agent.agent.runtime import AgentConfig, VoiceAgent
from salmonn_agent.agent.speech_out import DeviceOutput, PlaybackReference, Speaker
from salmonn_agent.audio import load_audio
from salmonn_agent.stream import ArraySource, Listener

SR = 16_000
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream"


def clip(name: str) -> np.ndarray:
    return load_audio(FIXTURES / f"{name}.flac")


def at_db(x: np.ndarray, db: float) -> np.ndarray:
    return (x * 10 ** ((db - 10 * np.log10(np.mean(x**2) + 1e-12)) / 20)).astype(np.float32)


def onset_s(x: np.ndarray) -> float:
    """Where speech starts in a clip: the first 10 ms frame within 30 dB of its loudest."""
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    power = 10 * np.log10((frames**2).mean(1) + 1e-12)
    return float(np.argmax(power > power.max() - 30)) * 0.01


def room_echo(played: np.ndarray, *, delay_ms: float = 45.0, level_db: float = -26.0, tail_ms: int = 0) -> np.ndarray:
    """The playback as the microphone hears it: delayed, lightly low-passed, at room level;
    with ``tail_ms``, plus a reverberant tail (decaying noise, 60 dB over ``tail_ms``, about as
    strong as the direct sound)."""
    d = int(delay_ms * SR / 1000)
    echo = np.concatenate([np.zeros(d, np.float32), played])[: played.size]
    path = np.array([0.5, 0.3, 0.15, 0.05])
    if tail_ms:
        n = tail_ms * SR // 1000
        tail = np.random.default_rng(3).normal(0, 1, n) * np.exp(-6.9 * np.arange(n) / n) * 0.08
        tail[:64] = 0.0
        path = np.concatenate([path, np.zeros(n - path.size)]) + tail
    echo = np.convolve(echo, path)[: played.size]
    return at_db(echo, level_db)


def noise(n: int, db: float = -65.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 10 ** (db / 20), n).astype(np.float32)


ASSISTANT = np.concatenate([np.zeros(SR // 2), clip("hello"), np.zeros(SR // 5), clip("weather"), np.zeros(SR)])


def segment(mic: np.ndarray, ref: PlaybackReference | None, fired: list[float] | None = None) -> tuple[list, list]:
    """The windows and onsets of ``mic`` replayed in 30 ms chunks (through the gate when ``ref``)."""
    source: Any = ArraySource(mic.astype(np.float32), chunk_ms=30)
    if ref is not None:
        def barge_in() -> None:
            if fired is not None:
                fired.append(source.canceller.position / SR)

        source = EchoGate(source, ref, timebase="stream", on_barge_in=barge_in)
    onsets: list[tuple[str, float]] = []
    with Listener(source, on_onset=lambda kind, t: onsets.append((kind, t))) as listener:
        windows = list(listener)
    return windows, onsets


@pytest.mark.parametrize("delay_ms,level_db,tail_ms", [(45.0, -26.0, 0), (180.0, -20.0, 0), (45.0, -26.0, 50)],
                         ids=["near", "loud-late", "50-ms-reverb"])
def test_own_speech_at_room_level_opens_nothing(delay_ms, level_db, tail_ms):
    ref = PlaybackReference(60)
    ref.write(ASSISTANT.astype(np.float32), at=0.0)
    mic = room_echo(ASSISTANT, delay_ms=delay_ms, level_db=level_db, tail_ms=tail_ms) + noise(ASSISTANT.size)

    ungated, _ = segment(mic, None)
    assert [w.kind for w in ungated] == ["speech"]  # without the gate the assistant hears itself

    fired: list[float] = []
    windows, onsets = segment(mic, ref, fired)
    assert windows == [] and onsets == [] and fired == []


def test_a_person_over_the_playback_is_heard_and_stops_it_within_200_ms():
    ref = PlaybackReference(60)
    ref.write(ASSISTANT.astype(np.float32), at=0.0)
    person = at_db(clip("lights"), -26.0)
    start = int(2.0 * SR)  # inside the assistant's first sentence
    mic = room_echo(ASSISTANT) + noise(ASSISTANT.size)
    mic[start : start + person.size] += person
    speech_at = start / SR + onset_s(person)

    fired: list[float] = []
    windows, _ = segment(mic, ref, fired)

    assert len(fired) == 1 and 0 < fired[0] - speech_at <= 0.15, fired[0] - speech_at  # at the end of a 30 ms chunk
    [window] = [w for w in windows if w.kind == "speech"]
    assert window.event_start <= speech_at + 0.25 and window.event_end >= start / SR + person.size / SR - 0.5
    assert window.end < ASSISTANT.size / SR  # the assistant's own speech is not in it


def test_without_playback_the_gate_passes_the_input_unchanged():
    speech = np.concatenate([np.zeros(SR // 2), at_db(clip("lights"), -26.0), np.zeros(SR)])
    mic = speech + noise(speech.size)
    gate = EchoGate(ArraySource(mic.astype(np.float32), chunk_ms=30), PlaybackReference(), timebase="stream")
    gate.start()
    out = np.concatenate([c.samples for c in gate])
    np.testing.assert_array_equal(out, mic.astype(np.float32))
    assert gate.stats.playback_frames == 0


# ---------------------------------------------------------------- a simulated room, end to end


class FakeStream:
    """A PortAudio stream paced in real time by its own thread."""

    def __init__(self, room: FakeRoom, kind: str, *, samplerate: int, blocksize: int, callback: Any, **_: Any) -> None:
        self.room, self.kind, self.rate, self.block, self.callback = room, kind, samplerate, blocksize, callback
        self.latency = 0.0 if kind == "input" else blocksize / samplerate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        room.streams.append(self)

    def start(self) -> None:
        if self.room.t0 is None:  # the room's clock starts with its first stream
            self.room.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        step = self.block / self.rate
        k = 0
        while not self._stop.is_set():
            # Like a device: an output block is asked for one block before it plays, an input
            # block is handed over once it was recorded.
            due = self.room.t0 + (k + (self.kind == "input")) * step
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            if self.kind == "output":
                out = np.zeros((self.block, 1), np.float32)
                self.callback(out, self.block, None, None)
                self.room.played((k + 1) * self.block, out[:, 0])
            else:
                block = self.room.heard(k * self.block, self.block)
                self.callback(block[:, None], self.block, None, None)
            k += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def close(self) -> None:
        self.stop()


class FakeRoom(types.ModuleType):
    """A fake ``sounddevice``: one microphone and one speaker in the same room, at 16 kHz.

    The microphone hears ``person`` (a 16 kHz signal) plus the speaker's playback through
    :func:`room_echo`'s path, over a noise floor.
    """

    class PortAudioError(Exception):
        pass

    def __init__(self, person: np.ndarray, seconds: float) -> None:
        super().__init__("sounddevice")
        n = int(seconds * SR)
        self.person = np.zeros(n, np.float32)
        self.person[: min(n, person.size)] = person[:n]
        self.air = np.zeros(n, np.float32)
        self.noise = noise(n, seed=1)
        self.default = types.SimpleNamespace(device=(0, 1))
        self.streams: list[FakeStream] = []
        self.t0: float | None = None
        self.outputs: list[tuple[int, bool]] = []
        """(room sample, whether the block held sound) for every output block."""
        self._echo_delay, self._echo_gain = int(0.045 * SR), 10 ** (-6 / 20)

    def played(self, pos: int, block: np.ndarray) -> None:
        self.outputs.append((pos, bool(np.any(block))))
        end = min(pos + block.size, self.air.size)
        if pos < end:
            self.air[pos:end] = block[: end - pos]

    def heard(self, pos: int, n: int) -> np.ndarray:
        idx = np.arange(pos, pos + n)
        idx = idx[idx < self.person.size]
        src = idx - self._echo_delay
        echo = np.where(src >= 0, self.air[np.clip(src, 0, None)], 0.0)
        echo = echo + 0.6 * np.where(src >= 1, self.air[np.clip(src - 1, 0, None)], 0.0)
        out = np.zeros(n, np.float32)
        out[: idx.size] = self.person[idx] + self._echo_gain * 0.6 * echo + self.noise[idx]
        return out

    def query_devices(self, device: Any = None, kind: str | None = None) -> Any:
        devices = [{"name": "Room microphone", "max_input_channels": 1, "max_output_channels": 0,
                    "default_samplerate": 16000.0, "hostapi": 0},
                   {"name": "Room speaker", "max_input_channels": 0, "max_output_channels": 1,
                    "default_samplerate": 16000.0, "hostapi": 0}]
        if kind == "output":
            return devices[1]
        return devices if device is None else devices[int(device)]

    def query_hostapis(self) -> list[dict[str, Any]]:
        return [{"name": "ALSA"}]

    def check_input_settings(self, **kwargs: Any) -> None:
        if kwargs.get("samplerate") != SR:
            raise self.PortAudioError("16 kHz only")

    check_output_settings = check_input_settings

    def InputStream(self, **kwargs: Any) -> FakeStream:  # noqa: N802 (sounddevice's name)
        return FakeStream(self, "input", **kwargs)

    def OutputStream(self, **kwargs: Any) -> FakeStream:  # noqa: N802
        return FakeStream(self, "output", **kwargs)


class ClipTTS:
    """Says every sentence with a committed espeak-ng clip (another voice than the person's)."""

    name = "clips"
    sample_rate = SR

    def synthesize(self, text: str) -> np.ndarray:
        return clip("weather") if "weather" in text.lower() else clip("hello")


ANSWER = "Hello world, this is a test of the voice front end. Could you tell me what the weather will be like tomorrow?"


def run_room(
    monkeypatch: pytest.MonkeyPatch, person: np.ndarray, seconds: float, brain_answers: list[str]
) -> tuple[list, FakeRoom, Speaker]:
    """The voice assistant on a fake room's microphone and speaker, until ``seconds`` have passed."""
    room = FakeRoom(person, seconds)
    monkeypatch.setitem(sys.modules, "sounddevice", room)
    from salmonn_agent.stream.sources import MicrophoneSource

    brain = FakeMessagesListChatModel(responses=[AIMessage(a) for a in brain_answers])
    speaker = Speaker(ClipTTS(), output=DeviceOutput(None, preferred_rate=SR))
    microphone = MicrophoneSource()
    gate = EchoGate(microphone, speaker.reference, clock=speaker.clock, on_barge_in=speaker.interrupt)
    agent = VoiceAgent(brain, actions=[], gate=ActionGate(ActionPolicy(allow=[]), AuditLog()), store=WindowStore(),
                       config=AgentConfig(brain_hears_audio=True), speaker=speaker)
    listener = Listener(gate, on_onset=agent.on_onset)
    room.t0 = time.monotonic()
    speaker.start()
    listener.start()
    stopper = threading.Timer(seconds, microphone.stop)
    stopper.start()
    try:
        results = asyncio.run(asyncio.wait_for(agent.run(listener), seconds + 30))
    finally:
        stopper.cancel()
        listener.close()
        speaker.close()
    return results, room, speaker


@pytest.mark.slow
def test_replayed_conversation_with_its_own_echo_opens_no_extra_turn(monkeypatch):
    request = at_db(clip("timer"), -24.0)
    person = np.concatenate([np.zeros(SR // 2, np.float32), request])
    results, room, speaker = run_room(monkeypatch, person, seconds=person.size / SR + 8.5,
                                      brain_answers=[ANSWER, "unexpected second turn"])

    assert len(results) == 1, [r.window for r in results]
    [turn] = results
    assert not turn.interrupted and not turn.cancelled and turn.answer == ANSWER
    assert turn.metrics.first_audio_ms is not None and 0 < turn.metrics.first_audio_ms < turn.metrics.turn_ms
    # both sentences were played (the clips begin and end with a little silence)
    assert sum(sound for _, sound in room.outputs) * 320 >= 0.75 * (clip("hello").size + clip("weather").size)
    assert speaker.interruptions == 0


@pytest.mark.slow
def test_a_person_speaking_over_the_answer_interrupts_it_within_200_ms(monkeypatch):
    request = at_db(clip("timer"), -24.0)
    lead = SR // 2
    person = np.zeros(int(12 * SR), np.float32)
    person[lead : lead + request.size] = request
    # The request's window reaches the runtime ~0.6 s after it ends (hangover), then the answer
    # plays for ~6 s: speak over it 2 s after the request ends.
    interruption = at_db(clip("lights"), -26.0)
    over_at = lead + request.size + 2 * SR
    person[over_at : over_at + interruption.size] = interruption
    speech_at = over_at + int(onset_s(interruption) * SR)

    results, room, speaker = run_room(monkeypatch, person, seconds=12.0, brain_answers=[ANSWER, "Lights off."])

    playing_before = [pos for pos, sound in room.outputs if sound and pos < speech_at]
    assert playing_before, "the answer was not playing when the person spoke"
    stopped = next(pos for pos, sound in room.outputs if pos >= speech_at and not sound)
    print(f"playback stopped {(stopped - speech_at) / SR * 1000:.0f} ms after the person began")
    assert (stopped - speech_at) / SR <= 0.2, f"stopped {(stopped - speech_at) / SR * 1000:.0f} ms after"
    assert speaker.interruptions == 1
    first, second = results
    assert first.interrupted and first.cancelled
    assert second.window["start"] <= speech_at / SR + 0.3 and second.answer == "Lights off."


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_the_assistant_command_speaks_on_the_microphone_through_the_gate(monkeypatch, tiny_model_dir, tmp_path, capsys):
    """``assistant --speak`` on a live microphone: the gate is wired, the speaker opened and closed."""
    from salmonn_agent.cli import main

    request = at_db(clip("timer"), -24.0)
    room = FakeRoom(np.concatenate([np.zeros(SR // 2, np.float32), request]), seconds=6.0)
    monkeypatch.setitem(sys.modules, "sounddevice", room)
    argv = ["assistant", "--speak", "--tts", "espeak-ng", "--max-turns", "1", "--json", "--model", str(tiny_model_dir),
            "--max-tokens", "4", "--notes", str(tmp_path / "notes.txt")]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "Listening on Room microphone" in err and '"turn": 1' in out
    assert {s.kind for s in room.streams} == {"input", "output"}
    assert not any(s._thread is not None and s._thread.is_alive() for s in room.streams)
