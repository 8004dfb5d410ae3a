"""The segmenter: speech boundaries, sound vs speech, splitting, accounting, controls."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from devkit import scenes as synth
from devkit.scenes import SceneBuilder, speech_bounds
from salmonn_agent.stream import Segmenter, SegmenterConfig, segment

SR = 16_000
TOL = 0.100  # seconds: detected speech boundaries vs the truth


def _speech_scene(clips, noise_db=-60.0, color="white", order=None, seed=0):
    scene = SceneBuilder(noise_db=noise_db, noise_color=color, seed=seed).silence(1.0)
    for i, name in enumerate(order or sorted(clips)):
        scene.speech(clips[name], name).silence(1.2 + 0.4 * (i % 3))
    return scene.build()


def _windows(x, config=None, chunk=4 * SR):
    seg = Segmenter(config)
    out = []
    for a in range(0, x.size, chunk):
        out += seg.push(x[a : a + chunk])
    return out + seg.finish(), seg


def _assert_boundaries(events, windows):
    speech = [w for w in windows if w.kind == "speech"]
    assert len(speech) == len(events), (events, speech)
    for ev, w in zip(events, speech):
        assert abs(w.event_start - ev.start) <= TOL, (ev, w)
        assert abs(w.event_end - ev.end) <= TOL, (ev, w)


@pytest.mark.parametrize(
    ("noise_db", "color"),
    [(None, "white"), (-60.0, "white"), (-45.0, "white"), (-50.0, "pink"), (-65.0, "brown")],
)
def test_speech_boundaries_within_100ms(clips, noise_db, color):
    x, events = _speech_scene(clips, noise_db, color)
    windows, _ = _windows(x)
    _assert_boundaries(events, windows)
    assert all(w.kind != "sound" for w in windows)


def test_short_words_are_not_missed(clips):
    x, events = _speech_scene(clips, order=["okay", "yes", "stop", "okay"])
    windows, _ = _windows(x)
    _assert_boundaries(events, windows)


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_speech_over_background_noise_is_speech(clips, color):
    """Speech 20 dB over a steady noise (by its active level) still comes out as speech."""
    names = ["hello", "okay", "weather", "time"]
    for name in names:
        clip = clips[name]
        a, b = speech_bounds(clip)
        level = 10 * np.log10(np.mean(clip[a:b] ** 2))
        x, events = SceneBuilder(noise_db=level - 20, noise_color=color, seed=3).silence(1.5).speech(
            clip
        ).silence(1.5).build()
        windows, _ = _windows(x)
        speech = [w for w in windows if w.kind == "speech"]
        assert len(speech) == 1, (name, windows)
        assert abs(speech[0].event_start - events[0].start) <= 0.15, (name, speech[0], events)


NONSPEECH = {
    "tone_440": lambda rng: synth.tone(440, 1.5, -20),
    "tone_3k": lambda rng: synth.tone(3000, 1.0, -20),
    "chord": lambda rng: synth.chord(seconds=2.0, level_db=-18),
    "white_burst": lambda rng: synth.noise(0.8, -25, "white", rng),
    "pink_burst": lambda rng: synth.noise(1.2, -25, "pink", rng),
    "brown_burst": lambda rng: synth.noise(1.2, -25, "brown", rng),
    "clicks": lambda rng: synth.clicks(2.0, 4, -8, rng),
    "fast_clicks": lambda rng: synth.clicks(1.5, 12, -8, rng),
}


@pytest.mark.parametrize("name", sorted(NONSPEECH))
def test_nonspeech_sounds_come_out_as_sound(name):
    sound = NONSPEECH[name](np.random.default_rng(5))
    x, events = SceneBuilder(noise_db=-60).silence(1.0).sound(sound).silence(1.0).build()
    windows, _ = _windows(x)
    assert windows, "a loud sound must produce a window"
    assert all(w.kind == "sound" for w in windows), windows
    ev = events[0]
    assert any(w.start <= ev.start + 0.05 and w.end >= ev.end - 0.05 for w in windows), (ev, windows)


def test_sound_then_speech_keep_their_kinds(clips):
    x, events = (
        SceneBuilder(noise_db=-60).silence(1.0).sound(synth.chord(seconds=2.0, level_db=-20))
        .silence(1.0).speech(clips["lights"]).silence(1.0).build()
    )
    windows, _ = _windows(x)
    assert [w.kind for w in windows] == ["sound", "speech"]


def test_without_sound_events_nonspeech_is_dropped():
    x, _ = SceneBuilder(noise_db=-60).silence(1.0).sound(synth.tone(440, 1.5, -20)).silence(1).build()
    windows, _ = _windows(x, SegmenterConfig(sound_events=False))
    assert windows == []


def test_split_at_30_seconds(clips):
    """Continuous speech longer than SALMONN's 30 s window is cut into 30 s windows."""
    scene = SceneBuilder(noise_db=-60).silence(0.5)
    names = sorted(clips)
    while scene.seconds < 46:
        for name in names:
            a, b = speech_bounds(clips[name])
            scene.speech(clips[name][a:b]).silence(0.15)
    x, _ = scene.silence(1.0).build()
    windows, _ = _windows(x)
    assert [w.kind for w in windows] == ["speech", "speech"]
    first, second = windows
    assert first.end_sample - first.start_sample == 30 * SR
    assert first.metrics.split and first.metrics.reason == "max_length"
    assert second.start_sample == first.end_sample  # continues without a gap or overlap
    assert second.metrics.reason == "end_of_speech" and not second.metrics.split
    assert first.emitted_at == pytest.approx(first.end, abs=0.031)


@pytest.mark.parametrize("chunk", [160, 480, 1234, 64_000])
def test_no_sample_lost_or_duplicated(clips, chunk):
    """Windows hold exactly the input's samples, never overlap, and with the dropped audio
    between them account for the whole input; chunking does not change the result."""
    rng = np.random.default_rng(1)
    scene = SceneBuilder(noise_db=-55, seed=2).silence(0.7)
    for i, name in enumerate(sorted(clips)[:5]):
        scene.speech(clips[name]).silence(0.3 + i * 0.4)
        if i % 2:
            scene.sound(synth.noise(0.5, -25, "pink", rng)).silence(0.9)
    x, _ = scene.speech(clips["hello"][: SR]).build()  # ends mid-speech
    windows, seg = _windows(x, chunk=chunk)
    reference, _ = _windows(x, chunk=4 * SR)
    assert [(w.start_sample, w.end_sample, w.kind) for w in windows] == [
        (w.start_sample, w.end_sample, w.kind) for w in reference
    ]
    covered = 0
    last_end = 0
    for w in windows:
        assert w.start_sample >= last_end, "windows overlap"
        np.testing.assert_array_equal(w.samples, x[w.start_sample : w.end_sample])
        covered += w.end_sample - w.start_sample
        last_end = w.end_sample
    assert covered + seg.stats.dropped_samples == x.size
    assert seg.stats.samples_in == x.size
    assert windows[-1].metrics.reason == "end_of_stream" and windows[-1].end_sample == x.size


@pytest.mark.parametrize("hangover_ms", [400, 600, 900])
def test_window_is_emitted_one_hangover_after_the_speech(clips, hangover_ms):
    x, events = _speech_scene(clips, order=["hello", "time"])
    windows, _ = _windows(x, SegmenterConfig(hangover_ms=hangover_ms), chunk=480)
    for ev, w in zip(events, windows):
        delay = w.emitted_at - ev.end - hangover_ms / 1000
        assert -0.1 <= delay <= 0.06, (w, ev)


def test_pre_roll_and_post_roll(clips):
    config = SegmenterConfig(pre_roll_ms=500, post_roll_ms=100)
    x, _ = _speech_scene(clips, order=["lights"])
    (w,) = _windows(x, config)[0]
    assert w.event_start - w.start == pytest.approx(0.5, abs=1e-6)
    assert w.end - w.event_end == pytest.approx(0.1, abs=1e-6)


def test_volume_gate_ignores_faint_audio(clips):
    clip = clips["weather"]
    faint, _ = SceneBuilder().silence(1).speech(clip, gain_db=-45).silence(1).build()
    assert _windows(faint)[0] == []
    assert [w.kind for w in _windows(faint, SegmenterConfig(min_level_db=-80))[0]] == ["speech"]


def test_min_speech_ms_turns_short_speech_into_sound(clips):
    x, _ = _speech_scene(clips, order=["stop"])
    assert [w.kind for w in _windows(x)[0]] == ["speech"]
    assert [w.kind for w in _windows(x, SegmenterConfig(min_speech_ms=800))[0]] == ["sound"]


def test_stream_ending_mid_speech_flushes_the_window(clips):
    clip = clips["hello"]
    x = np.concatenate([np.zeros(SR // 2, np.float32), clip[: int(1.8 * SR)]])
    seg = Segmenter()
    assert seg.push(x) == []
    assert seg.in_event
    (w,) = seg.finish()
    assert w.kind == "speech" and w.metrics.reason == "end_of_stream"
    assert w.end_sample == x.size


def test_flush_and_skip_close_the_open_event(clips):
    seg = Segmenter()
    seg.push(np.concatenate([np.zeros(SR // 2, np.float32), clips["hello"][: 2 * SR]]))
    (w,) = seg.flush("stalled")
    assert w.metrics.reason == "stalled" and not seg.in_event
    seg.push(clips["weather"][: int(1.5 * SR)])
    (g,) = seg.skip(8000)
    assert g.metrics.reason == "gap"
    assert seg.position_samples == SR // 2 + 2 * SR + int(1.5 * SR) + 8000
    after = seg.push(clips["lights"]) + seg.finish()
    assert all(w.start_sample >= g.end_sample + 8000 for w in after)  # nothing from the hole


def test_periodic_windows_overlap_and_carry_their_kind(clips):
    x, _ = _speech_scene(clips, order=["hello", "weather", "lights", "timer"])
    config = SegmenterConfig(periodic_every_s=5.0, periodic_length_s=8.0)
    windows, _ = _windows(x, config, chunk=480)
    periodic = [w for w in windows if w.kind == "periodic"]
    assert len(periodic) == int(x.size / SR // 5)
    for i, w in enumerate(periodic, start=1):
        assert w.end_sample == i * 5 * SR
        assert w.duration == pytest.approx(min(8.0, 5.0 * i))
        np.testing.assert_array_equal(w.samples, x[w.start_sample : w.end_sample])
    assert any(w.metrics.voiced_ratio > 0.3 for w in periodic)
    assert [w.kind for w in windows if w.kind != "periodic"] == ["speech"] * 4


def test_config_is_validated():
    with pytest.raises(ValidationError, match="post_roll_ms"):
        SegmenterConfig(hangover_ms=300, post_roll_ms=400)
    with pytest.raises(ValidationError):
        SegmenterConfig(vad_mode=4)
    with pytest.raises(ValidationError):
        SegmenterConfig(frame_ms=25)


@pytest.mark.parametrize("frame_ms", [10, 20])
def test_other_frame_lengths(clips, frame_ms):
    x, events = _speech_scene(clips, order=["hello", "okay", "timer"])
    windows = segment(x, SegmenterConfig(frame_ms=frame_ms))
    _assert_boundaries(events, windows)


def test_silero_confirmation_rejects_steady_sounds(clips):
    pytest.importorskip("silero_vad", reason="silero-vad is optional (pip install silero-vad)")
    config = SegmenterConfig(confirm_with="silero")
    rng = np.random.default_rng(0)
    x, events = (
        SceneBuilder(noise_db=-60).silence(1.0).sound(synth.chord(seconds=1.5))
        .silence(1.0).speech(clips["weather"]).silence(1.0).sound(synth.noise(1.0, -25, "pink", rng))
        .silence(1.0).build()
    )
    windows = segment(x, config)
    assert [w.kind for w in windows] == ["sound", "speech", "sound"]
    assert windows[1].metrics.speech_prob > 0.9
    assert abs(windows[1].event_start - events[1].start) <= TOL


def test_sound_after_digital_silence_scores_without_numeric_warnings():
    import warnings

    from devkit.scenes import chord

    silence = np.zeros(16_000, np.float32)
    clip = np.concatenate([silence, chord(seconds=2.0).astype(np.float32), silence])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log10(0) used to turn the speech score into NaN
        windows = segment(clip, SegmenterConfig(confirm_with="spectral"))
    assert [w.kind for w in windows] == ["sound"]
    assert np.isfinite(windows[0].metrics.speech_score)
