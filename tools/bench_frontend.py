"""Benchmark the streaming front-end's segmenter; prints one JSON object.

    python tools/bench_frontend.py --json

Keys (targets from issue #3):
- ``x_realtime``: segmentation speed as a multiple of real time on one core (>= 500), pushing
  4 s chunks as ``salmonn-agent segment FILE`` does;
- ``overhead_vs_webrtcvad``: segmenter time / time of webrtcvad's ``Vad.is_speech`` alone on
  the same 30 ms frames (<= 2.0);
- ``eos_latency_ms``: median delay from the last speech sample to the window's emission,
  minus the configured hangover (<= 30).
Extra keys: the same at 30 ms pushes (a microphone's blocks), boundary errors, and how the
speech confirmation (``spectral``, ``silero``, ``none``) does on non-speech sounds and on
speech in noise. The scene is built from the espeak-ng fixtures in tests/fixtures/stream.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devkit import scenes as synth  # noqa: E402
from salmonn_agent.audio import SAMPLE_RATE, load_audio, power_db  # noqa: E402
from salmonn_agent.stream.config import SegmenterConfig  # noqa: E402
from salmonn_agent.stream.vad import Segmenter  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "stream"


def load_clips() -> dict[str, np.ndarray]:
    manifest = json.loads((FIXTURES / "speech.json").read_text())
    return {Path(m["file"]).stem: load_audio(FIXTURES / m["file"]) for m in manifest}


def build_scene(clips: dict[str, np.ndarray], seconds: float, seed: int = 0):
    """Speech clips with 1-3 s pauses, a non-speech sound now and then, -60 dBFS noise."""
    rng = np.random.default_rng(seed)
    sounds = [
        lambda: synth.tone(1000, 1.0, -20),
        lambda: synth.chord(seconds=1.5, level_db=-22),
        lambda: synth.noise(0.8, -25, "pink", rng),
        lambda: synth.clicks(1.0, 4, -10, rng),
        lambda: synth.alarm(1.5, level_db=-22),
    ]
    scene = synth.SceneBuilder(noise_db=-60, seed=seed).silence(1.0)
    names = sorted(clips)
    i = 0
    while scene.seconds < seconds:
        if i % 4 == 3:
            scene.sound(sounds[(i // 4) % len(sounds)](), "sound")
        else:
            name = names[i % len(names)]
            scene.speech(clips[name], name)
        scene.silence(float(rng.uniform(1.0, 3.0)))
        i += 1
    return scene.build()


def frames_bytes(x: np.ndarray, flen: int) -> list[bytes]:
    n = x.size // flen
    pcm = (np.clip(x[: n * flen], -1, 1) * 32767).astype(np.int16).tobytes()
    return [pcm[i * 2 * flen : (i + 1) * 2 * flen] for i in range(n)]


def time_raw(frames: list[bytes], mode: int, direct: bool) -> float:
    import _webrtcvad
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    t0 = time.perf_counter()
    if direct:
        process, handle, n = _webrtcvad.process, vad._vad, len(frames[0]) // 2
        for f in frames:
            process(handle, SAMPLE_RATE, f, n)
    else:
        for f in frames:
            vad.is_speech(f, SAMPLE_RATE)
    return time.perf_counter() - t0


def time_segmenter(x: np.ndarray, config: SegmenterConfig, chunk: int) -> tuple[float, list]:
    seg = Segmenter(config)
    t0 = time.perf_counter()
    windows = []
    for a in range(0, x.size, chunk):
        windows += seg.push(x[a : a + chunk])
    windows += seg.finish()
    return time.perf_counter() - t0, windows


def match(events, windows, kind: str = "speech") -> list[tuple[Any, Any]]:
    """Pair each true event with the first window of ``kind`` overlapping it."""
    pairs = []
    for ev in events:
        hits = [w for w in windows if w.kind == kind and w.event_start < ev.end and w.event_end > ev.start]
        pairs.append((ev, hits[0] if hits else None))
    return pairs


def speed_and_latency(x, events, repeats: int) -> dict[str, Any]:
    config = SegmenterConfig()
    flen = SAMPLE_RATE * config.frame_ms // 1000
    frames = frames_bytes(x, flen)
    raw, raw_c, seg4, seg30 = [], [], [], []
    windows: list = []
    for _ in range(repeats):  # interleaved, best of n: the machine may be shared
        raw.append(time_raw(frames, config.vad_mode, direct=False))
        raw_c.append(time_raw(frames, config.vad_mode, direct=True))
        t, windows = time_segmenter(x, config, 4 * SAMPLE_RATE)
        seg4.append(t)
        seg30.append(time_segmenter(x, config, flen)[0])
    duration = x.size / SAMPLE_RATE
    hang = config.hangover_ms / 1000
    speech = [e for e in events if e.kind == "speech"]
    pairs = match(speech, windows)
    found = [(e, w) for e, w in pairs if w is not None]
    latency = [(w.emitted_at - e.end - hang) * 1000 for e, w in found]
    onset = [abs(w.event_start - e.start) * 1000 for e, w in found]
    offset = [abs(w.event_end - e.end) * 1000 for e, w in found]
    sounds = [e for e in events if e.kind == "sound"]
    sound_ok = sum(1 for _, w in match(sounds, windows, "sound") if w is not None)
    sound_as_speech = sum(1 for _, w in match(sounds, windows, "speech") if w is not None)
    # the same scene under a loud pink noise floor: most frames pass the level gates and
    # reach webrtcvad, the segmenter's worst case against raw webrtcvad
    noisy = x + synth.noise(x.size / SAMPLE_RATE, -40, "pink", np.random.default_rng(1))
    noisy_frames = frames_bytes(noisy, flen)
    raw_noisy = min(time_raw(noisy_frames, config.vad_mode, direct=False) for _ in range(repeats))
    seg_noisy = min(time_segmenter(noisy, config, 4 * SAMPLE_RATE)[0] for _ in range(repeats))
    return {
        "x_realtime": round(duration / min(seg4), 1),
        "overhead_vs_webrtcvad": round(min(seg4) / min(raw), 3),
        "eos_latency_ms": round(statistics.median(latency), 1),
        "eos_latency_ms_p90": round(float(np.percentile(latency, 90)), 1),
        "eos_latency_ms_max": round(max(latency), 1),
        "x_realtime_webrtcvad": round(duration / min(raw), 1),
        "overhead_vs_webrtcvad_c_call": round(min(seg4) / min(raw_c), 3),
        "x_realtime_30ms_pushes": round(duration / min(seg30), 1),
        "overhead_vs_webrtcvad_30ms_pushes": round(min(seg30) / min(raw), 3),
        "overhead_vs_webrtcvad_noisy_scene": round(seg_noisy / raw_noisy, 3),
        "scene_seconds": round(duration, 1),
        "speech_events": len(speech),
        "speech_found": len(found),
        "sound_events": len(sounds),
        "sound_found_as_sound": sound_ok,
        "sound_found_as_speech": sound_as_speech,
        "onset_error_ms_mean": round(statistics.mean(onset), 1),
        "offset_error_ms_mean": round(statistics.mean(offset), 1),
        "boundaries_within_100ms": round(
            sum(1 for a, b in zip(onset, offset) if a <= 100 and b <= 100) / max(len(found), 1), 3
        ),
    }


def confirmation(clips: dict[str, np.ndarray]) -> dict[str, Any]:
    """False speech on non-speech sounds, and speech recall in noise, per confirm method."""
    rng = np.random.default_rng(7)
    nonspeech = {
        "tone_440": synth.tone(440, 1.5, -20),
        "tone_3k": synth.tone(3000, 1.5, -20),
        "chord": synth.chord(seconds=2.0, level_db=-20),
        "white_noise": synth.noise(1.5, -25, "white", rng),
        "pink_noise": synth.noise(1.5, -25, "pink", rng),
        "brown_noise": synth.noise(1.5, -25, "brown", rng),
        "clicks": synth.clicks(2.0, 4, -10, rng),
        "alarm": synth.alarm(2.0, level_db=-20),
        "fast_clicks": synth.clicks(2.0, 12, -10, rng),
    }
    speech_scenes = []
    for color in ("white", "pink", "brown"):
        for snr in (20, 10, 5):
            for name, clip in clips.items():
                a, b = synth.speech_bounds(clip)
                level = power_db(float(np.mean(clip[a:b] ** 2)))
                scene = synth.SceneBuilder(noise_db=level - snr, noise_color=color, seed=snr)
                speech_scenes.append((snr, scene.silence(1.0).speech(clip).silence(1.0).build()))
    methods = ["none", "spectral"]
    try:
        import silero_vad  # noqa: F401

        methods.append("silero")
    except ImportError:
        pass
    out: dict[str, Any] = {}
    for method in methods:
        config = SegmenterConfig(confirm_with=method)
        t0 = time.perf_counter()
        false_speech = 0
        for sound in nonspeech.values():
            x, _ = synth.SceneBuilder(noise_db=-60).silence(1.0).sound(sound).silence(1.0).build()
            false_speech += any(w.kind == "speech" for w in time_segmenter(x, config, SAMPLE_RATE)[1])
        recall: dict[int, list[int]] = {}
        for snr, (x, events) in speech_scenes:
            windows = time_segmenter(x, config, SAMPLE_RATE)[1]
            recall.setdefault(snr, []).append(match(events, windows)[0][1] is not None)
        out[f"confirm_{method}"] = {
            "false_speech_rate_nonspeech": round(false_speech / len(nonspeech), 3),
            **{f"speech_recall_snr{snr}": round(float(np.mean(v)), 3) for snr, v in recall.items()},
            "seconds": round(time.perf_counter() - t0, 2),
        }
    if "silero" not in methods:
        out["confirm_silero"] = "silero-vad not installed (pip install silero-vad)"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object (default)")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the test scene")
    parser.add_argument("--repeats", type=int, default=5, help="timing runs (best is kept)")
    parser.add_argument("--no-confirm", action="store_true", help="skip the confirmation study")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    t0 = time.perf_counter()
    clips = load_clips()
    x, events = build_scene(clips, args.seconds)
    result = speed_and_latency(x, events, args.repeats)
    if not args.no_confirm:
        result.update(confirmation(clips))
    result["bench_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
