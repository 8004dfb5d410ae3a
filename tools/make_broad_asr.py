"""Speech recognition data with broad text, many voices and realistic acoustics.

    python tools/make_broad_asr.py OUT [--train 2400] [--valid 120] [--seed 0] [--workers 2]
                                      [--voices espeak,flite] [--fragments 0] [--joined 0]

salmonn-mini's first training data spoke sentences from its own small text bank with one
synthesizer. This adds speech recognition items that do not repeat: sentences taken from text
that Debian ships, spoken by two synthesizers, in rooms, over noise and through telephones.

Text (Debian packages, installed by ``apt-get install fortunes wordnet-base``):
* train: single sentences of 4-24 words from the ``fortunes`` collection
  (``/usr/share/games/fortunes``; attributions dropped, one sentence per fortune);
* valid: example sentences quoted in WordNet's glosses (``/usr/share/wordnet/data.*``), a
  different source, so the valid split measures new text rather than remembered text.

Voices: espeak-ng (every training variant of ``devkit.sounds``, American and
British English, speed and pitch drawn per item) and flite (``kal``, ``kal16``, ``awb``, ``rms``
for train, ``--setf duration_stretch`` drawn); the valid split uses flite's ``slt``, a voice the
train split never has, and espeak-ng's held-out variants. ``--voices`` picks the engines, drawn
with equal chance per item; two more are available: festival's diphone voices (``kal_diphone``
and ``ked_diphone``, Debian ``festival festvox-kallpc16k festvox-kdlpc16k``, duration stretch
drawn) and hibari-tts's neural voice (the ``heart`` voice inside the PyPI wheel, speed and
sampling seed drawn). Both are train-only voices.

Shapes: by default every item says one sentence. ``--fragments P`` makes a share P of the items
say only the first 2-4 words of theirs ("Press the red."), as short prompts and cut-off phrases
do; ``--joined P`` makes a share P say two or three sentences in a row (up to
:data:`MAX_JOINED_SECONDS`), as long announcements do.

Acoustics, drawn per item: clean; white/pink/brown noise at 5-30 dB SNR; a room (an
exponentially decaying noise impulse response, RT60 0.2-0.9 s, mixed 30-80 % wet); a telephone
(300-3400 Hz band, 8 kHz round trip, soft clipping); level -35 to -14 dBFS.

Writes ``OUT/train.json`` and ``OUT/valid.json`` (official annotation format, task ``asr``,
``path`` relative to OUT) and ``OUT/audio/<split>/<split>_NNNNN.wav`` (16 kHz mono PCM16).
Deterministic for a given seed and installed synthesizers.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devkit import sounds as S  # noqa: E402
from devkit.voices import festival_speak, flite_speak, hibari_speak  # noqa: E402

FORTUNES = Path("/usr/share/games/fortunes")
WORDNET = Path("/usr/share/wordnet")
TRAIN_FLITE = ("kal", "kal16", "awb", "rms")
VALID_FLITE = ("slt",)
MIN_WORDS, MAX_WORDS = 4, 24
MAX_SECONDS = 10.0
MAX_JOINED_SECONDS = 25.0
TRAIN_FESTIVAL = ("kal_diphone", "ked_diphone")
ENGINES = ("espeak", "flite", "festival", "hibari")
ACOUSTICS = ("clean", "noise", "room", "telephone")
ACOUSTIC_WEIGHTS = (0.3, 0.3, 0.2, 0.2)
_SENTENCE = re.compile(r"^[A-Z][A-Za-z0-9 ,;:'\-]*[.!?]$")


def fortune_sentences() -> list[str]:
    """Single-sentence fortunes of 4-24 plain words, sorted and deduplicated."""
    if not FORTUNES.is_dir():
        raise SystemExit(f"{FORTUNES} is missing: run `apt-get install fortunes` first.")
    found: set[str] = set()
    for file in sorted(FORTUNES.iterdir()):
        if file.suffix or not file.is_file():
            continue
        for record in file.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [line for line in record.strip().splitlines() if not line.strip().startswith("--")]
            text = " ".join(" ".join(lines).split())
            _keep(text, found)
    return sorted(found)


def wordnet_sentences() -> list[str]:
    """The example sentences quoted in WordNet's glosses, sorted and deduplicated."""
    if not WORDNET.is_dir():
        raise SystemExit(f"{WORDNET} is missing: run `apt-get install wordnet-base` first.")
    found: set[str] = set()
    for part in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines():
            if "|" not in line:
                continue
            for quote in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
                text = quote.strip()
                text = text[0].upper() + text[1:] if text else text
                if text and text[-1] not in ".!?":
                    text += "."
                _keep(text, found)
    return sorted(found)


def _keep(text: str, found: set[str]) -> None:
    words = text.split()
    if MIN_WORDS <= len(words) <= MAX_WORDS and _SENTENCE.match(text) and text.count(".") <= 1:
        found.add(text)


def room(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Reverberation by an exponentially decaying noise impulse response."""
    rt60 = float(rng.uniform(0.2, 0.9))
    n = int(rt60 * S.SR)
    t = np.arange(n) / S.SR
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    ir = S.band_filter(ir.astype(np.float32), 80.0, 7000.0)
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-9
    wet = np.convolve(x, ir)[: len(x) + n // 2]
    dry = np.pad(x, (0, len(wet) - len(x)))
    mix = float(rng.uniform(0.3, 0.8))
    return ((1 - mix) * dry + mix * wet * (S.rms(dry) / (S.rms(wet) + 1e-9))).astype(np.float32), f"room_rt60_{rt60:.2f}"


def telephone(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A telephone line: 300-3400 Hz, 8 kHz round trip, soft clipping."""
    y = S.band_filter(x, 300.0, 3400.0)
    y = soxr.resample(soxr.resample(y, S.SR, 8000), 8000, S.SR).astype(np.float32)
    drive = float(rng.uniform(1.0, 4.0))
    y = np.tanh(drive * y / (np.max(np.abs(y)) + 1e-9)) / np.tanh(drive)
    return y.astype(np.float32), f"telephone_drive_{drive:.1f}"


def noise(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """White, pink or brown noise at 5-30 dB SNR."""
    colour = ("white", "pink", "brown")[int(rng.integers(3))]
    if colour == "white":
        bg = rng.standard_normal(len(x)).astype(np.float32)
    elif colour == "pink":
        bg = S.pink_noise(rng, len(x))
    else:
        bg = np.cumsum(rng.standard_normal(len(x))).astype(np.float32)
        bg = S.band_filter(bg - bg.mean(), 20.0, None)
    snr = float(rng.uniform(5.0, 30.0))
    return S.mix_at_snr(x, bg, snr), f"{colour}_noise_{snr:.0f}dB"


def shaped(texts: list[str], pick: int, rng: np.random.Generator, fragments: float, joined: float) -> str:
    """Sentence ``pick`` of ``texts``, cut to a fragment or followed by one or two other sentences
    with the chances ``fragments`` and ``joined`` (see the module docstring); draws nothing when both
    are 0, so outputs made without them do not change."""
    text = texts[pick]
    if not fragments and not joined:
        return text
    draw = float(rng.random())
    if draw < fragments:
        words = text.rstrip(".!?").split()
        return " ".join(words[: int(rng.integers(2, 5))]).rstrip(",;:-") + "."
    if draw < fragments + joined:
        others = rng.choice(len(texts), size=int(rng.integers(1, 3)), replace=False)
        return " ".join([text] + [texts[int(o)] for o in others])
    return text


def make_item(job: tuple[str, int, str, int, Path, tuple[str, ...]]) -> dict[str, Any] | None:
    """Render one item; None when the speech is longer than :data:`MAX_SECONDS`
    (:data:`MAX_JOINED_SECONDS` for joined sentences)."""
    split, index, text, seed, out, engines = job
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
    held_out = split != "train"
    engine = engines[min(int(rng.random() * len(engines)), len(engines) - 1)]
    if engine == "espeak":
        voice = S.draw_voice(rng, held_out)
        x, voice_name = S.speak(text, voice), f"espeak:{voice.name}"
    elif engine == "flite":
        names = VALID_FLITE if held_out else TRAIN_FLITE
        name = names[int(rng.integers(len(names)))]
        x, voice_name = flite_speak(text, name, float(rng.uniform(0.8, 1.25))), f"flite:{name}"
    elif engine == "festival":
        name = TRAIN_FESTIVAL[int(rng.integers(len(TRAIN_FESTIVAL)))]
        x, voice_name = festival_speak(text, name, float(rng.uniform(0.8, 1.25))), f"festival:{name}"
    else:
        x, voice_name = hibari_speak(text, float(rng.uniform(0.8, 1.25)), int(rng.integers(2**31))), "hibari:heart"
    x = np.pad(x, (int(rng.uniform(0.05, 0.4) * S.SR), int(rng.uniform(0.05, 0.4) * S.SR)))
    acoustics = ACOUSTICS[int(rng.choice(len(ACOUSTICS), p=ACOUSTIC_WEIGHTS))]
    how = "clean"
    if acoustics == "noise":
        x, how = noise(x, rng)
    elif acoustics == "room":
        x, how = room(x, rng)
    elif acoustics == "telephone":
        x, how = telephone(x, rng)
    if len(x) > (MAX_JOINED_SECONDS if re.search(r"[.!?] [A-Z]", text) else MAX_SECONDS) * S.SR:
        return None
    x = S.limit_peak(S.set_rms_db(x, float(rng.uniform(-35.0, -14.0))))
    rel = Path("audio") / split / f"{split}_{index:05d}.wav"
    S.write_wav(out / rel, x)
    return {"path": str(rel), "text": text, "task": "asr", "kind": "asr_broad", "split": split,
            "voice": voice_name, "acoustics": how, "duration": round(len(x) / S.SR, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=2400)
    parser.add_argument("--valid", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--voices", default="espeak,flite",
                        help=f"comma-separated engines, drawn with equal chance per item: {', '.join(ENGINES)}")
    parser.add_argument("--fragments", type=float, default=0.0,
                        help="the share of items that say only their sentence's first 2-4 words (0)")
    parser.add_argument("--joined", type=float, default=0.0,
                        help="the share of items that say two or three sentences in a row (0)")
    args = parser.parse_args(argv)
    if not (0.0 <= args.fragments and 0.0 <= args.joined and args.fragments + args.joined <= 1.0):
        parser.error("--fragments and --joined are shares between 0 and 1 that add up to 1 at most")
    engines = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    unknown = [v for v in engines if v not in ENGINES]
    if not engines or unknown:
        parser.error(f"--voices takes some of {', '.join(ENGINES)}; got {args.voices!r}")
    if args.valid and {"festival", "hibari"} & set(engines):
        parser.error("festival and hibari are train-only voices: give --valid 0 with them")
    tools = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}
    for engine in engines:
        if engine in tools and shutil.which(tools[engine]) is None:
            print(f"make_broad_asr: {tools[engine]} is missing: run `apt-get install espeak-ng flite festival "
                  "festvox-kallpc16k festvox-kdlpc16k`.", file=sys.stderr)
            return 2
    texts = {"train": fortune_sentences(), "valid": wordnet_sentences()}
    rng = np.random.default_rng(args.seed)
    jobs = []
    for split, count in (("train", args.train), ("valid", args.valid)):
        (args.out / "audio" / split).mkdir(parents=True, exist_ok=True)
        # Draw a few more than asked: items longer than 10 s are dropped.
        picks = rng.choice(len(texts[split]), size=min(len(texts[split]), int(count * 1.25)), replace=False)
        jobs += [(split, i, shaped(texts[split], int(p), rng, args.fragments, args.joined), args.seed, args.out, engines)
                 for i, p in enumerate(picks)]
    with Pool(args.workers) as pool:
        items = pool.map(make_item, jobs, chunksize=8)
    summary: dict[str, Any] = {"sentences": {k: len(v) for k, v in texts.items()}}
    for split, count in (("train", args.train), ("valid", args.valid)):
        kept = [i for i in items if i is not None and i["split"] == split][:count]
        (args.out / f"{split}.json").write_text(json.dumps({"annotation": kept}, indent=1))
        summary[split] = {"items": len(kept), "seconds": round(sum(i["duration"] for i in kept), 1),
                          "voices": len({i["voice"].split("+")[0] for i in kept})}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
