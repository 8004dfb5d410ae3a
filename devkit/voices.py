"""Speech from the offline synthesizers other than espeak-ng (data and evaluation helpers).

flite and festival (Debian packages) are run as commands; hibari-tts (PyPI) in this process.
Each returns 16 kHz float32 with the leading and trailing silence trimmed, as
:func:`devkit.sounds.speak` does for espeak-ng.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from devkit import sounds as S


def _synthesize(engine: str, voice: str, command: list[str], text: str) -> np.ndarray:
    """Run a synthesizer whose arguments ``OUT`` and ``SRC`` stand for the WAV it writes and a file
    holding ``text``, in a temporary folder; its output as 16 kHz float32, silence trimmed."""
    with tempfile.TemporaryDirectory() as tmp:
        out, src = Path(tmp) / "x.wav", Path(tmp) / "x.txt"
        src.write_text(text)
        args = [str(out) if arg == "OUT" else str(src) if arg == "SRC" else arg for arg in command]
        proc = subprocess.run(args, capture_output=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{engine} failed for voice {voice}: {proc.stderr.decode(errors='replace').strip()}")
        x, rate = sf.read(out, dtype="float32")
    if rate != S.SR:
        x = soxr.resample(x, rate, S.SR).astype(np.float32)
    return S.trim_silence(x)


def flite_speak(text: str, voice: str, stretch: float) -> np.ndarray:
    """``text`` spoken by flite's ``voice`` as 16 kHz float32."""
    return _synthesize("flite", voice, ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.2f}",
                                        "-t", text, "-o", "OUT"], text)


def festival_speak(text: str, voice: str, stretch: float) -> np.ndarray:
    """``text`` spoken by festival's ``voice`` (text2wave) as 16 kHz float32."""
    return _synthesize("festival", voice, ["text2wave", "-eval", f"(voice_{voice})",
                                           "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.2f})",
                                           "SRC", "-o", "OUT"], text)


_HIBARI: Any = None


def hibari_speak(text: str, speed: float, seed: int) -> np.ndarray:
    """``text`` spoken by hibari-tts's bundled ``heart`` voice as 16 kHz float32."""
    global _HIBARI
    if _HIBARI is None:  # one model per worker process
        from hibari import Hibari
        from hibari.voices import voice_path

        _HIBARI = Hibari(model=voice_path("heart", download_missing=False), threads=1)
    x = np.asarray(_HIBARI(text, speed=speed, seed=seed), dtype=np.float32).reshape(-1)
    return S.trim_silence(soxr.resample(x, int(_HIBARI.sample_rate), S.SR).astype(np.float32))


def speak_with(voice: str, text: str, stretch: float = 1.0) -> np.ndarray:
    """``text`` said by ``voice`` given as ``engine:name`` (``flite:slt``, ``festival:kal_diphone``,
    ``hibari:heart``); ``stretch`` scales the duration (hibari-tts: the inverse of its speed)."""
    engine, _, name = voice.partition(":")
    if engine == "flite":
        return flite_speak(text, name, stretch)
    if engine == "festival":
        return festival_speak(text, name, stretch)
    if engine == "hibari" and name == "heart":
        return hibari_speak(text, 1.0 / stretch, 0)
    raise ValueError(f"unknown voice {voice!r}: give flite:NAME, festival:NAME or hibari:heart")
