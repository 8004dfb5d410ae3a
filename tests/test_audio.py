"""Audio input: every accepted form becomes 16 kHz mono float32; bad input is refused clearly."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from salmonn_agent.audio import SAMPLE_RATE, load_audio
from salmonn_agent.errors import AudioError


def _sine(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_8khz_stereo_file_is_resampled_and_downmixed(tmp_path):
    left, right = _sine(8000, 1.0), _sine(8000, 1.0, 880.0)
    path = tmp_path / "stereo8k.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="PCM_16")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SAMPLE_RATE) <= 2
    # The 440 Hz tone survives resampling: its spectrum peaks at 440 Hz (or its 880 Hz partner).
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(audio)
    assert min(abs(peak_hz - 440), abs(peak_hz - 880)) < 5


def test_48khz_float_wav(tmp_path):
    path = tmp_path / "float48k.wav"
    sf.write(path, _sine(48000, 2.0), 48000, subtype="FLOAT")
    audio = load_audio(path)
    assert abs(len(audio) - 2 * SAMPLE_RATE) <= 2
    assert 0.45 < np.abs(audio).max() < 0.55


def test_bytes_and_array_inputs_agree(tmp_path):
    samples = _sine(SAMPLE_RATE, 0.5)
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    from_bytes = load_audio(buffer.getvalue())
    from_array = load_audio(samples, sample_rate=SAMPLE_RATE)
    np.testing.assert_allclose(from_bytes, from_array, atol=1e-7)


def test_int16_arrays_are_scaled():
    audio = load_audio(np.array([0, 16384, -32768], dtype=np.int16), sample_rate=SAMPLE_RATE)
    np.testing.assert_allclose(audio, [0.0, 0.5, -1.0])


def test_channels_first_array_is_downmixed():
    stereo = np.stack([np.ones(1000), -np.ones(1000)]).astype(np.float32)  # (channels, frames)
    assert np.allclose(load_audio(stereo, sample_rate=SAMPLE_RATE), 0.0)


@pytest.mark.parametrize(
    ("audio", "rate", "message"),
    [
        (np.zeros(0, dtype=np.float32), SAMPLE_RATE, "empty"),
        (np.array([0.0, np.nan, 0.1], dtype=np.float32), SAMPLE_RATE, "NaN"),
        (np.array([0.0, np.inf], dtype=np.float32), SAMPLE_RATE, "NaN or infinite"),
        (np.zeros(100, dtype=np.float32), None, "sample_rate"),
        (np.zeros(100, dtype=np.float32), -5, "sample rate"),
        (np.zeros((2, 2, 2), dtype=np.float32), SAMPLE_RATE, "1-D"),
        (b"this is not audio at all", None, "Could not decode"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(audio, rate, message):
    with pytest.raises(AudioError, match=message):
        load_audio(audio, sample_rate=rate)


def test_zero_frame_audio_is_called_empty(tmp_path):
    import warnings

    import soundfile as sf

    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), dtype=np.float32), 44_100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warnings on the way
        for audio, rate in ((np.zeros((0, 2), dtype=np.float32), SAMPLE_RATE), (np.zeros((2, 0)), SAMPLE_RATE),
                            (empty, None), (empty.read_bytes(), None)):
            with pytest.raises(AudioError, match=r"empty \(0 samples\)"):
                load_audio(audio, sample_rate=rate)


def test_corrupt_and_missing_files(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    with pytest.raises(AudioError, match="Could not decode"):
        load_audio(corrupt)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")


def test_too_long_audio_is_refused_not_truncated():
    with pytest.raises(AudioError, match="over the limit"):
        load_audio(np.zeros(SAMPLE_RATE * 3, dtype=np.float32), sample_rate=SAMPLE_RATE, max_seconds=2)
