"""Fixtures for the front-end tests: speech clips, scenes, and a fake sounddevice module."""

from __future__ import annotations

import json
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from salmonn_agent.audio import load_audio

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream"


@pytest.fixture(scope="session")
def clips() -> dict[str, np.ndarray]:
    """The committed espeak-ng utterances (16 kHz mono), by name."""
    manifest = json.loads((FIXTURES / "speech.json").read_text())
    return {Path(m["file"]).stem: load_audio(FIXTURES / m["file"]) for m in manifest}


class _Flags:
    def __init__(self, input_overflow: bool = False) -> None:
        self.input_overflow = input_overflow

    def __bool__(self) -> bool:
        return self.input_overflow


class FakeInputStream:
    """Plays ``FakeSoundDevice.signal`` into the callback from its own thread, like PortAudio."""

    def __init__(self, sd: "FakeSoundDevice", *, device: int, channels: int, samplerate: int,
                 blocksize: int, dtype: str, latency: Any, callback: Any) -> None:
        if samplerate not in sd.devices[device]["rates"]:
            raise sd.PortAudioError(f"Invalid sample rate {samplerate}")
        self.sd, self.samplerate, self.blocksize, self.callback = sd, samplerate, blocksize, callback
        self.channels = channels
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        sd.streams.append(self)

    def _run(self) -> None:
        x = self.sd.signal_at(self.samplerate)
        for a in range(0, x.size - self.blocksize + 1, self.blocksize):
            if self._stop.is_set():
                return
            block = np.repeat(x[a : a + self.blocksize, None], self.channels, axis=1)
            self.callback(block, self.blocksize, None, _Flags())
            if self.sd.block_delay:
                self._stop.wait(self.sd.block_delay)
        silence = np.zeros((self.blocksize, self.channels), dtype=np.float32)
        while not self._stop.wait(0.01):  # a live device keeps running (silently) until stopped
            self.callback(silence, self.blocksize, None, _Flags())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-portaudio", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


class FakeSoundDevice(types.ModuleType):
    """Enough of the sounddevice API for MicrophoneSource, without PortAudio or a sound card."""

    class PortAudioError(Exception):
        pass

    def __init__(self) -> None:
        super().__init__("sounddevice")
        self.devices: list[dict[str, Any]] = [
            {"name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "max_input_channels": 2,
             "default_samplerate": 48000.0, "hostapi": 0, "rates": {44100, 48000}},
            {"name": "HDMI output", "max_input_channels": 0, "default_samplerate": 48000.0,
             "hostapi": 0, "rates": {48000}},
            {"name": "USB Headset Mic", "max_input_channels": 1, "default_samplerate": 16000.0,
             "hostapi": 0, "rates": {16000, 48000}},
        ]
        self.default = types.SimpleNamespace(device=(0, 1))
        self.signal = np.zeros(16000, dtype=np.float32)  # at 16 kHz
        self.block_delay = 0.0
        self.streams: list[FakeInputStream] = []

    def signal_at(self, rate: int) -> np.ndarray:
        from salmonn_agent.audio import resample

        return resample(self.signal, 16000, rate)

    def query_devices(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in d.items() if k != "rates"} for d in self.devices]

    def query_hostapis(self) -> list[dict[str, Any]]:
        return [{"name": "ALSA"}]

    def check_input_settings(self, device: int, channels: int, dtype: str, samplerate: int) -> None:
        if samplerate not in self.devices[device]["rates"]:
            raise self.PortAudioError(f"Invalid sample rate {samplerate}")

    def InputStream(self, **kwargs: Any) -> FakeInputStream:  # noqa: N802 (sounddevice's name)
        return FakeInputStream(self, **kwargs)


@pytest.fixture
def fake_sd(monkeypatch: pytest.MonkeyPatch) -> FakeSoundDevice:
    """Install a fake ``sounddevice`` module for the test."""
    sd = FakeSoundDevice()
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    yield sd
    for stream in sd.streams:
        stream.stop()
