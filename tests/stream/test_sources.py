"""Sources and the Listener: files, arrays, iterators, a fake microphone, sync and async."""

from __future__ import annotations

import asyncio
import importlib.abc
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from devkit.scenes import SceneBuilder
from salmonn_agent.audio import resample
from salmonn_agent.stream import (
    ArraySource,
    FileSource,
    FrontendError,
    IteratorSource,
    Listener,
    MicrophoneSource,
    Source,
    list_input_devices,
)
from salmonn_agent.stream.sources import AudioChunk

SR = 16_000


@pytest.fixture(scope="module")
def scene(clips):
    return SceneBuilder(noise_db=-60).silence(0.6).speech(clips["okay"]).silence(0.8).speech(
        clips["time"]
    ).silence(0.8).build()


def test_import_needs_no_portaudio_nor_webrtcvad():
    code = (
        "import sys, salmonn_agent.stream, salmonn_agent.stream.commands;"
        "print(sorted(m for m in ('sounddevice', 'webrtcvad', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_file_source_fast_and_realtime(tmp_path, scene):
    x, _ = scene
    path = tmp_path / "scene.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    fast = list(FileSource(path))
    assert np.concatenate([c.samples for c in fast]).size == x.size
    assert [c.start_sample for c in fast] == list(range(0, x.size, 4 * SR))
    t0 = time.monotonic()
    paced = list(FileSource(path, realtime=True, speed=8.0))
    elapsed = time.monotonic() - t0
    assert elapsed >= x.size / SR / 8.0 * 0.95  # paced like a live stream
    assert all(c.samples.size <= 480 for c in paced)
    np.testing.assert_array_equal(np.concatenate([c.samples for c in paced]), x)


def test_array_source_resamples_to_16k(scene):
    x, _ = scene
    x48 = resample(x, SR, 48_000)
    chunks = list(ArraySource(x48, 48_000))
    assert abs(sum(c.samples.size for c in chunks) - x.size) <= 2


def test_iterator_source_resamples_as_one_stream(scene):
    x, _ = scene
    x44 = resample(x, SR, 44_100)
    blocks = (x44[a : a + 441 * 3] for a in range(0, x44.size, 441 * 3))
    chunks = list(IteratorSource(blocks, 44_100))
    y = np.concatenate([c.samples for c in chunks])
    assert abs(y.size - x.size) <= 2  # no drift from chunk-wise rounding
    n = min(x.size, y.size)
    err = np.sqrt(np.mean((y[:n] - x[:n]) ** 2)) / np.sqrt(np.mean(x**2))
    assert err < 0.05  # no clicks at block boundaries
    assert [c.start_sample for c in chunks] == list(np.cumsum([0] + [c.samples.size for c in chunks[:-1]]))


def test_listener_sync_iteration_matches_the_truth(scene):
    x, events = scene
    with Listener(ArraySource(x, chunk_ms=30)) as listener:
        windows = list(listener)
    assert [w.kind for w in windows] == ["speech", "speech"]
    for ev, w in zip(events, windows):
        assert abs(w.event_start - ev.start) <= 0.1 and abs(w.event_end - ev.end) <= 0.1
    stats = listener.stats
    assert stats.seconds_in == pytest.approx(x.size / SR)
    assert stats.windows["speech"] == 2


class _StallingSource(Source):
    """Delivers audio, then only heartbeats (a device that stopped sending)."""

    def __init__(self, x: np.ndarray, stall_s: float) -> None:
        super().__init__()
        self.x, self.stall_s = x, stall_s

    def chunks(self):
        for a in range(0, self.x.size, 480):
            yield AudioChunk(self.x[a : a + 480], a)
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.stall_s and not self.stopped:
            time.sleep(0.02)
            yield AudioChunk(np.zeros(0, np.float32), self.x.size)


def test_watchdog_closes_speech_when_the_stream_stalls(clips):
    x = np.concatenate([np.zeros(SR // 2, np.float32), clips["hello"][: 2 * SR]])
    listener = Listener(_StallingSource(x, stall_s=2.0), stall_timeout_s=0.3)
    t0 = time.monotonic()
    for window in listener:
        break
    assert window.metrics.reason == "stalled"
    assert time.monotonic() - t0 < 1.5  # not at the end of the stall
    listener.close()
    assert listener.stats.stalls == 1


def test_async_iteration_and_clean_cancel(scene):
    x, _ = scene
    async def collect_all():
        async with Listener(ArraySource(x)) as listener:
            return [w async for w in listener]

    windows = asyncio.run(collect_all())
    assert [w.kind for w in windows] == ["speech", "speech"]

    async def cancel_after_first():
        listener = Listener(ArraySource(x, realtime=True, speed=4.0))
        got = []

        async def consume():
            async for w in listener:
                got.append(w)

        task = asyncio.create_task(consume())
        while not got:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        listener.close()
        return got

    got = asyncio.run(cancel_after_first())
    assert len(got) == 1
    # The listener's worker thread is gone (other tests' threads may come and go meanwhile).
    assert not [t for t in threading.enumerate() if t.name == "salmonn-listener"]


def test_async_iteration_reraises_source_errors(tmp_path):
    async def run():
        async for _ in Listener(FileSource(tmp_path / "missing.wav")):
            pass

    with pytest.raises(Exception, match="not found"):
        asyncio.run(run())


# ------------------------------------------------------------------ microphone (fake PortAudio)


def test_devices_are_listed_and_chosen_by_name_or_index(fake_sd):
    devices = list_input_devices()
    assert [d.index for d in devices] == [0, 2]  # the HDMI output is not an input
    assert devices[0].is_default and devices[0].hostapi == "ALSA"
    mic = MicrophoneSource("usb headset")
    mic.start()
    assert mic.device_info.index == 2 and mic.rate == SR
    mic.close()
    mic = MicrophoneSource(0)
    mic.start()
    assert mic.device_info.index == 0 and mic.rate == 48_000  # no 16 kHz: native rate
    mic.close()
    with pytest.raises(FrontendError, match="No input device matches 'webcam'"):
        MicrophoneSource("webcam").start()
    with pytest.raises(FrontendError, match="index 1"):
        MicrophoneSource(1).start()


def test_microphone_at_48k_is_resampled_and_segmented(fake_sd, scene):
    x, events = scene
    fake_sd.signal = x
    with Listener(MicrophoneSource(0)) as listener:
        windows = []
        for w in listener:
            windows.append(w)
            if len(windows) == 2:
                break
    assert [w.kind for w in windows] == ["speech", "speech"]
    for ev, w in zip(events, windows):
        assert abs(w.event_start - ev.start) <= 0.1 and abs(w.event_end - ev.end) <= 0.1
    assert not any(s.alive for s in fake_sd.streams)  # no PortAudio thread after close


def test_microphone_overflow_is_counted_not_fatal(fake_sd, scene):
    x, _ = scene
    fake_sd.signal = np.tile(x, 3)
    mic = MicrophoneSource(2, queue_seconds=0.3)  # 10 blocks of 30 ms
    mic.start()
    time.sleep(0.3)  # the fake device delivers the signal at once: the queue overflows
    chunks = []
    for chunk in mic:
        if chunk.samples.size:
            chunks.append(chunk)
        if len(chunks) == 12:
            break
    mic.close()
    assert mic.overflows > 0 and mic.dropped_samples > 0
    ends = [c.start_sample + c.samples.size for c in chunks]
    jumps = [c.start_sample - e for c, e in zip(chunks[1:], ends)]
    assert sum(jumps) == mic.dropped_samples > 0  # the hole shows in the stream positions
    assert not any(s.alive for s in fake_sd.streams)


class _HoleSource(Source):
    """Speech, then a hole of lost audio (as a microphone overflow leaves), then more speech."""

    def __init__(self, a: np.ndarray, b: np.ndarray, hole: int) -> None:
        super().__init__()
        self.a, self.b, self.hole = a, b, hole

    def chunks(self):
        yield AudioChunk(self.a, 0)
        yield AudioChunk(self.b, self.a.size + self.hole)


def test_lost_audio_closes_the_event_and_keeps_timestamps(clips):
    a = np.concatenate([np.zeros(SR // 2, np.float32), clips["hello"][: 2 * SR]])
    b = np.concatenate([clips["weather"], np.zeros(SR, np.float32)])
    listener = Listener(_HoleSource(a, b, hole=SR))
    windows = list(listener)
    assert windows[0].metrics.reason == "gap" and windows[0].end_sample == a.size
    assert windows[1].start_sample >= a.size + SR  # nothing invented for the hole
    assert windows[1].kind == "speech"
    assert listener.stats.seconds_lost == pytest.approx(1.0)


def test_no_input_device_gives_a_clear_error(fake_sd):
    fake_sd.devices = [d for d in fake_sd.devices if d["max_input_channels"] == 0]
    with pytest.raises(FrontendError, match="No audio input device found.*microphone"):
        MicrophoneSource().start()


class _NoPortAudio(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_missing_portaudio_gives_a_clear_error(monkeypatch):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(FrontendError, match="libportaudio2"):
        MicrophoneSource().start()
    with pytest.raises(FrontendError, match="PortAudio"):
        list_input_devices()
