"""A real PortAudio capture device: PulseAudio's null sink, a clip played into it with ``paplay``,
and ``MicrophoneSource`` reading its monitor through ALSA's ``pulse`` device.

Needs Debian's ``pulseaudio``, ``pulseaudio-utils`` and ``libasound2-plugins`` (``.ci/run``
installs them); no kernel modules or sound card. Skipped, with the reason, where they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from salmonn_agent.audio import load_audio

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream"
SR = 16_000


@pytest.fixture
def pulse_null_sink(tmp_path_factory, monkeypatch):
    """A private PulseAudio daemon with a null sink whose monitor is the default source."""
    if not (shutil.which("pulseaudio") and shutil.which("paplay") and shutil.which("pactl")):
        pytest.skip("PulseAudio is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)")
    runtime = tmp_path_factory.mktemp("pulse-runtime")
    runtime.chmod(0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), PULSE_RUNTIME_PATH=str(runtime / "pulse"))
    for key, value in env.items():
        if key in ("XDG_RUNTIME_DIR", "PULSE_RUNTIME_PATH"):
            monkeypatch.setenv(key, value)
    started = subprocess.run(
        ["pulseaudio", "-n", "--daemonize=yes", "--exit-idle-time=-1", "--disallow-exit",
         "-L", "module-native-protocol-unix", "-L", "module-null-sink sink_name=salmonn_test rate=48000"],
        env=env, capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 10
    while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "PulseAudio did not start"
        time.sleep(0.1)
    subprocess.run(["pactl", "set-default-source", "salmonn_test.monitor"], env=env, check=True)
    subprocess.run(["pactl", "set-default-sink", "salmonn_test"], env=env, check=True)
    yield env
    subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True, timeout=30)


def test_microphone_source_hears_a_clip_played_into_pulseaudio(pulse_null_sink, tmp_path):
    from salmonn_agent.stream.listener import Listener
    from salmonn_agent.stream.sources import MicrophoneSource, list_input_devices

    speech = load_audio(FIXTURES / "lights.flac")
    clip = np.concatenate([np.zeros(SR, np.float32), speech, np.zeros(int(1.5 * SR), np.float32)])
    path = tmp_path / "played.wav"
    sf.write(path, clip, SR)
    assert any(d.name == "pulse" for d in list_input_devices())

    source = MicrophoneSource("pulse")
    windows = []
    with Listener(source) as listener:
        listener.start()
        player = subprocess.Popen(["paplay", "--device=salmonn_test", str(path)], env=pulse_null_sink)
        deadline = time.monotonic() + 30
        for window in listener:
            windows.append(window)
            if window.kind == "speech" or time.monotonic() > deadline:
                break
        player.wait(30)
    speech_windows = [w for w in windows if w.kind == "speech"]
    assert speech_windows, [(w.kind, w.start, w.end) for w in windows]
    duration = len(speech) / SR
    assert abs((speech_windows[0].end - speech_windows[0].start) - duration) < 1.0  # the utterance, whole
    assert source.overflows == 0  # no block dropped
