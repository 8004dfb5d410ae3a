"""Write the example clips of ``examples/audio/`` that this project synthesizes (deterministic).

    python tools/make_example_clips.py [--out examples/audio]

* ``doorbell.wav``: a two-tone doorbell rung twice, then knocking at a door (8 s);
* ``music.wav``: a short synthesized piano-like tune (8 s);
* ``speech_in_rain.wav``: flite's ``slt`` voice asking about the weather, over rain at 20 dB SNR.

``speech.wav`` (espeak-ng) predates this script and is kept as it is. Needs espeak-ng and flite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from devkit import sounds as S  # noqa: E402
from make_broad_asr import flite_speak  # noqa: E402

SPOKEN = "Will it rain in Boston tomorrow morning?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "audio")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(2026)
    args.out.mkdir(parents=True, exist_ok=True)
    bell = S.synth_sound("doorbell", rng, 4.0, count=2).audio
    knock = S.synth_sound("knocking", rng, 4.0, count=4).audio
    S.write_wav(args.out / "doorbell.wav", S.set_rms_db(np.concatenate([bell, knock]), -24.0))
    S.write_wav(args.out / "music.wav", S.set_rms_db(S.synth_sound("music", rng, 8.0, variant="piano").audio, -22.0))
    speech = np.pad(flite_speak(SPOKEN, "slt", 1.15), (8000, 8000))
    rain = S.synth_sound("rain", rng, len(speech) / S.SR).audio
    S.write_wav(args.out / "speech_in_rain.wav", S.limit_peak(S.set_rms_db(S.mix_at_snr(speech, rain, 20.0), -22.0)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
