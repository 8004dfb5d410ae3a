"""Build labelled evaluation streams for the front-end from real packaged recordings.

    python tools/make_frontend_streams.py [--debs DIR] [--out DIR]

Real audio nobody here made, from Debian packages (fetched with ``apt-get download`` and
unpacked with ``dpkg-deb -x`` when ``--debs`` does not already hold them):

- speech: ``asterisk-core-sounds-en-wav`` (a human voice, telephone prompts recorded at 8 kHz;
  only those whose transcript in ``asterisk-core-sounds-en`` is words, not ``[beep]``)
  and the spoken channel names of ``sound-theme-freedesktop`` (``audio-channel-*.oga``);
- sound: the other freedesktop sounds (bell, camera shutter, phone rings, busy tone, alarm
  clock...), ``oxygen-sounds``, ``deepin-sound-theme``, ``sound-icons``' non-instrument sounds,
  ``fillets-ng-data``'s shared effects, GCompris' farm animals and sound-memory effects (read
  out of its Qt ``.rcc`` resource files by :func:`read_rcc`);
- music: ``lomiri-sounds`` ringtones, GCompris' instruments and world music, sound-icons'
  instrument notes, fillets-ng's music (excerpts).

Each item goes to the ``dev`` or the ``heldout`` part by a hash of its name (about a third
held out: never look at it while tuning). Streams of a part lay its items end to end with
1.2-2.5 s pauses over a low noise floor (white, pink, or a brown rumble that the VAD's
high-pass filter must remove), at varied levels. Stream types:

- ``mixed``: speech, sounds and music; every fourth speech item follows a sound after 0.3 s;
- ``sounds``: sounds and music only (false speech windows);
- ``bursts``: a short sound repeated 3-5 times with 0.15-0.5 s gaps, which is one event.

Writes ``<out>/<stream>.flac`` (16 kHz mono) and ``<out>/manifest.json``: for each stream
its part, type, file and true events (``kind`` speech/sound/music, ``start``/``end`` seconds,
``label``, ``source``). Event bounds are the first and last 10 ms frames within 40 dB of the
item's loudest frame. ``tools/bench_frontend.py --streams <out>`` scores the front-end on them.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import io
import json
import struct
import subprocess
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from salmonn_agent.audio import SAMPLE_RATE, load_audio  # noqa: E402
from devkit.scenes import noise  # noqa: E402

PACKAGES = [
    "sound-theme-freedesktop", "oxygen-sounds", "deepin-sound-theme", "sound-icons",
    "lomiri-sounds", "fillets-ng-data", "gcompris-qt-data", "asterisk-core-sounds-en-wav",
    "asterisk-core-sounds-en",
]
TRANSCRIPTS = "asterisk-core-sounds-en/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
FREEDESKTOP = "usr/share/sounds/freedesktop/stereo"
GC_RCC = "usr/share/gcompris-qt/rcc"
MAX_SPEECH_S = 6.0
MAX_SOUND_S = 5.0
MUSIC_EXCERPT_S = 4.0
MAX_INNER_PAUSE_S = 0.4  # speech items with a longer pause inside would be two utterances
INSTRUMENT_ICONS = ("cembalo", "guitar", "klavichord", "trumpet", "piano", "violoncello",
                    "electric-piano", "xylofon", "chord", "pipe", "cymbaly")
NOISES = [("white", -66.0), ("pink", -58.0), ("brown", -42.0)]


@dataclass
class Item:
    """One recording: ``kind`` speech/sound/music, its samples and true bounds (samples)."""

    name: str
    kind: str
    source: str
    samples: np.ndarray
    start: int
    end: int

    @property
    def split(self) -> str:
        """``heldout`` for about a third of the items (by a hash of the name), else ``dev``."""
        return "heldout" if int(hashlib.sha1(self.name.encode()).hexdigest(), 16) % 3 == 0 else "dev"


@dataclass
class Event:
    """A true event of a stream (seconds)."""

    kind: str
    start: float
    end: float
    label: str
    source: str


def read_rcc(blob: bytes) -> dict[str, bytes]:
    """Files of a Qt binary resource file (``.rcc``), resource path -> bytes (zlib-inflated).

    Format (Qt's rcc.cpp): ``qres``, version, then offsets of the tree, data and names
    sections; tree nodes of 14 bytes (22 from version 2: a modification time follows) hold
    a name offset, flags (1 zlib, 2 directory, 4 zstd), then either child count and first
    child index or locale and data offset; data entries are a 4-byte size then the bytes
    (zlib ones start with the 4-byte inflated size); names are a 2-byte length, a 4-byte
    hash and UTF-16BE characters. zstd entries are skipped.
    """
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, data, names = struct.unpack(">4i", blob[4:20])
    node_size = 14 if version == 1 else 22
    out: dict[str, bytes] = {}

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        return blob[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">iH", blob[at : at + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:
            count, first = struct.unpack(">ii", blob[at + 6 : at + 14])
            for child in range(first, first + count):
                walk(child, f"{prefix}{name}/" if index else "/")
            return
        (offset,) = struct.unpack(">i", blob[at + 10 : at + 14])
        (size,) = struct.unpack(">i", blob[data + offset : data + offset + 4])
        raw = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & 4:
            return
        out[prefix + name] = zlib.decompress(raw[4:]) if flags & 1 else raw

    walk(0, "/")
    return out


def fetch(debs: Path) -> None:
    """Download and unpack the packages missing under ``debs``."""
    for package in PACKAGES:
        target = debs / package
        if target.is_dir():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", package], cwd=tmp, check=True)
            (deb,) = Path(tmp).glob("*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)


def bounds(x: np.ndarray, threshold_db: float = -40.0) -> tuple[int, int, float]:
    """(start, end, longest inner pause in s) of the 10 ms frames within ``threshold_db`` of
    the loudest one."""
    n = x.size // 160
    level = 10 * np.log10(np.mean(x[: n * 160].reshape(n, 160).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level >= level.max() + threshold_db)
    pause = float(np.max(np.diff(loud), initial=1) - 1) * 0.01
    return int(loud[0] * 160), int((loud[-1] + 1) * 160), pause


def make_item(name: str, kind: str, source: str, data: Path | bytes, max_s: float) -> Item | None:
    """Decode, cut to ``max_s`` (music: an excerpt from the middle) and find the bounds."""
    try:
        x = load_audio(data if isinstance(data, bytes) else str(data))
    except Exception as exc:  # an unreadable file is left out, and said so
        print(f"skip {name}: {exc}", file=sys.stderr)
        return None
    if kind == "music" and x.size > max_s * SAMPLE_RATE:
        a = max(0, x.size // 2 - int(max_s * SAMPLE_RATE / 2))
        x = x[a : a + int(max_s * SAMPLE_RATE)]
    if x.size < 0.1 * SAMPLE_RATE or x.size > max_s * SAMPLE_RATE or not np.any(x):
        return None
    start, end, pause = bounds(x)
    if end - start < 0.1 * SAMPLE_RATE or (kind == "speech" and pause > MAX_INNER_PAUSE_S):
        return None
    x = x[start:end]
    if kind == "music":  # an excerpt: fade in and out over 20 ms, as a real cut would not click
        ramp = np.linspace(0.0, 1.0, 320, dtype=np.float32)
        x[:320] *= ramp
        x[-320:] *= ramp[::-1]
    return Item(name, kind, source, x.astype(np.float32), 0, x.size)


def transcribed_prompts(path: Path) -> set[str]:
    """Names of the asterisk prompts whose transcript is words (``beep: [a beep tone]`` is not)."""
    names = set()
    for line in gzip.decompress(path.read_bytes()).decode("utf-8", "replace").splitlines():
        name, sep, text = line.partition(":")
        if sep and not line.startswith(";") and text.strip() and not text.strip().startswith("["):
            names.add(name.strip())
    return names


def collect(debs: Path) -> list[Item]:
    """Every usable item of the packages."""
    items: list[Item] = []

    def add(name: str, kind: str, source: str, data: Path | bytes, max_s: float) -> None:
        item = make_item(name, kind, source, data, max_s)
        if item is not None:
            items.append(item)

    fd = debs / "sound-theme-freedesktop" / FREEDESKTOP
    for f in sorted(fd.glob("*.oga")):
        speech = f.stem.startswith("audio-channel-")
        add(f"fd-{f.stem}", "speech" if speech else "sound", "sound-theme-freedesktop", f,
            MAX_SPEECH_S if speech else MAX_SOUND_S)
    spoken = transcribed_prompts(debs / TRANSCRIPTS)
    ast = sorted(glob.glob(str(debs / "asterisk-core-sounds-en-wav/usr/share/asterisk/sounds/*/*.wav")))
    ast = [f for f in ast if Path(f).stem in spoken]
    for f in ast[::4]:  # every fourth prompt: enough voices' worth, a bounded stream length
        add(f"ast-{Path(f).stem}", "speech", "asterisk-core-sounds-en-wav", Path(f), MAX_SPEECH_S)
    for f in sorted((debs / "oxygen-sounds").rglob("*.ogg")):
        add(f"oxy-{f.stem}", "sound", "oxygen-sounds", f, MAX_SOUND_S)
    for f in sorted((debs / "deepin-sound-theme").rglob("*.wav")):
        add(f"deepin-{f.stem}", "sound", "deepin-sound-theme", f, MAX_SOUND_S)
    for f in sorted((debs / "sound-icons").rglob("*.wav")):
        music = f.stem.startswith(INSTRUMENT_ICONS)
        add(f"icons-{f.stem}", "music" if music else "sound", "sound-icons", f, MAX_SOUND_S)
    for f in sorted((debs / "lomiri-sounds").rglob("*.ogg")):
        alarm = "alarm" in f.stem.lower() or "battery" in f.stem.lower()
        add(f"lomiri-{f.stem.replace(' ', '_')}", "sound" if alarm else "music", "lomiri-sounds", f,
            MAX_SOUND_S if alarm else MUSIC_EXCERPT_S)
    fillets = debs / "fillets-ng-data/usr/share/games/fillets-ng"
    for f in sorted((fillets / "sound/share").glob("*.ogg")):
        add(f"fillets-{f.stem}", "sound", "fillets-ng-data", f, MAX_SOUND_S)
    for f in sorted((fillets / "music").glob("*.ogg")):
        add(f"fillets-{f.stem}", "music", "fillets-ng-data", f, MUSIC_EXCERPT_S)
    rcc = debs / "gcompris-qt-data" / GC_RCC
    for file, kind in [("explore_farm_animals.rcc", "sound"), ("memory-sound.rcc", "sound"),
                       ("instruments.rcc", "music"), ("explore_world_music.rcc", "music")]:
        if not (rcc / file).is_file():
            continue
        for path, blob in sorted(read_rcc((rcc / file).read_bytes()).items()):
            if not path.endswith(".ogg"):
                continue
            stem = Path(path).stem
            k = "music" if stem.startswith("guitar") else kind
            add(f"gc-{stem}", k, "gcompris-qt-data", blob, MUSIC_EXCERPT_S if k == "music" else MAX_SOUND_S)
    return items


def _level(x: np.ndarray, rms_db: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) or 1.0
    y = x * (10 ** (rms_db / 20) / rms)
    peak = float(np.max(np.abs(y)))
    return (y * (0.9 / peak) if peak > 0.9 else y).astype(np.float32)


class StreamBuilder:
    """Lays items end to end and records their true events."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.parts: list[np.ndarray] = []
        self.events: list[Event] = []
        self.length = 0

    def pause(self, seconds: float) -> None:
        """Silence (the noise floor is added at the end)."""
        n = int(seconds * SAMPLE_RATE)
        self.parts.append(np.zeros(n, np.float32))
        self.length += n

    def add(self, item: Item, label: str | None = None, kind: str | None = None) -> None:
        """One item at a random level (speech -32..-20 dBFS RMS, others -34..-16)."""
        low, high = (-32.0, -20.0) if item.kind == "speech" else (-34.0, -16.0)
        x = _level(item.samples, float(self.rng.uniform(low, high)))
        self.events.append(Event(kind or item.kind, self.length / SAMPLE_RATE,
                                 (self.length + x.size) / SAMPLE_RATE, label or item.name, item.source))
        self.parts.append(x)
        self.length += x.size

    def burst(self, item: Item, rng: np.random.Generator) -> None:
        """``item`` 3-5 times with 0.15-0.5 s gaps: one sound event."""
        level = float(rng.uniform(-30.0, -16.0))
        start = self.length
        for i in range(int(rng.integers(3, 6))):
            if i:
                self.pause(float(rng.uniform(0.15, 0.5)))
            x = _level(item.samples, level)
            self.parts.append(x)
            self.length += x.size
        self.events.append(Event("sound", start / SAMPLE_RATE, self.length / SAMPLE_RATE,
                                 f"burst:{item.name}", item.source))

    def build(self, color: str, noise_db: float, seed: int) -> np.ndarray:
        """The samples with the noise floor under them."""
        x = np.concatenate(self.parts)
        return (x + noise(x.size / SAMPLE_RATE, noise_db, color, np.random.default_rng(seed))).astype(np.float32)


def streams(items: list[Item], seed: int = 0, stream_s: float = 60.0) -> list[tuple[str, str, str, np.ndarray, list[Event]]]:
    """(name, part, type, samples, events) of every stream."""
    out = []
    for part in ("dev", "heldout"):
        rng = np.random.default_rng(seed + (part == "heldout"))
        mine = [it for it in items if it.split == part]
        speech = [it for it in mine if it.kind == "speech"]
        other = [it for it in mine if it.kind != "speech"]
        rng.shuffle(speech)
        rng.shuffle(other)
        n = 0

        def new() -> StreamBuilder:
            b = StreamBuilder(rng)
            b.pause(1.0)
            return b

        def close(b: StreamBuilder, kind: str) -> None:
            nonlocal n
            color, db = NOISES[n % len(NOISES)]
            out.append((f"{part}-{kind}-{n:02d}", part, kind, b.build(color, db, seed + n), b.events))
            n += 1

        # mixed: alternate speech and other items; every fourth speech follows a sound closely
        b, si, oi = new(), 0, 0
        while si < len(speech):
            if oi < len(other) and si % 2 == 0:
                b.add(other[oi])
                oi += 1
                b.pause(0.3 if si % 4 == 0 else float(rng.uniform(1.2, 2.5)))
            b.add(speech[si])
            si += 1
            b.pause(float(rng.uniform(1.2, 2.5)))
            if b.length / SAMPLE_RATE >= stream_s:
                close(b, "mixed")
                b = new()
        if b.events:
            close(b, "mixed")
        # sounds only: every non-speech item once
        b = new()
        for it in other:
            b.add(it)
            b.pause(float(rng.uniform(1.2, 2.5)))
            if b.length / SAMPLE_RATE >= stream_s:
                close(b, "sounds")
                b = new()
        if b.events:
            close(b, "sounds")
        # bursts: short sounds repeated
        short = [it for it in other if it.kind == "sound" and it.samples.size <= 0.6 * SAMPLE_RATE]
        b = new()
        for it in short:
            b.burst(it, rng)
            b.pause(float(rng.uniform(1.5, 2.5)))
            if b.length / SAMPLE_RATE >= stream_s:
                close(b, "bursts")
                b = new()
        if b.events:
            close(b, "bursts")
    return out


def main(argv: list[str] | None = None) -> int:
    """Fetch the packages if needed, build the streams, write them and the manifest."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--debs", type=Path, default=Path.home() / ".cache/salmonn-agent/frontend-debs",
                        help="unpacked packages, one folder per package (fetched when missing)")
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache/salmonn-agent/frontend-streams")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import soundfile as sf

    fetch(args.debs)
    items = collect(args.debs)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {"sources": PACKAGES, "items": {}, "streams": []}
    for kind in ("speech", "sound", "music"):
        for part in ("dev", "heldout"):
            manifest["items"][f"{part}_{kind}"] = sum(1 for it in items if it.kind == kind and it.split == part)
    for name, part, kind, x, events in streams(items, args.seed):
        buf = io.BytesIO()
        sf.write(buf, x, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        (args.out / f"{name}.flac").write_bytes(buf.getvalue())
        manifest["streams"].append({"name": name, "part": part, "type": kind, "file": f"{name}.flac",
                                    "seconds": round(x.size / SAMPLE_RATE, 2),
                                    "events": [asdict(e) for e in events]})
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    total = sum(s["seconds"] for s in manifest["streams"])
    print(f"{len(manifest['streams'])} streams, {total / 60:.1f} min, items {manifest['items']} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
