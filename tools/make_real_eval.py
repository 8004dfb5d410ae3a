"""Build an evaluation set of REAL recordings (made by people outside this project) from Debian packages.

    python tools/make_real_eval.py OUT [--cache DIR]

For evaluation only: salmonn-mini was trained on synthetic espeak-ng speech and synthesized
sounds, and this set must never be used for training.

Requirements: a Debian (or Debian-based) system with ``apt-get`` and ``dpkg-deb`` and package
lists (run ``apt-get update`` once first). The ``.deb`` files are fetched with ``apt-get
download`` (no root needed, nothing is installed) into ``<cache>/debs`` and unpacked with
``dpkg-deb -x`` into ``<cache>/x/<package>``; ``--cache`` defaults to
``<salmonn-agent cache>/real-eval`` (``$SALMONN_AGENT_CACHE`` or the user cache). A second run
reuses them. About 80 MB are downloaded.

Sources (licences from each package's ``/usr/share/doc/<package>/copyright``, and for GCompris
from the README/Licence files inside its resources):

* speech: ``asterisk-core-sounds-en-wav`` (telephone prompts read by Allison Smith, 8 kHz,
  CC-BY-SA-3.0), transcripts from ``asterisk-core-sounds-en``'s ``core-sounds-en.txt.gz``: the
  prompts of at least 1.5 s and 3 words, at most 30 s, whose transcript has no markup
  (``[...]``, ``<...>``, ``*``, ``#``, quotes, brackets), sorted by name, 100 of them evenly spaced;
  and ``sound-theme-freedesktop``'s ALSA speaker-test voice ("Front left", ...; GPL-2+).
* sound: animal recordings (GCompris ``explore_farm_animals``), labelled sound effects
  (GCompris ``memory-sound``, Free Art License), telephone/alarm/camera sounds
  (``sound-theme-freedesktop``, ``oxygen-sounds``), a canary and pouring water (``sound-icons``).
* music: instrument recordings (GCompris ``instruments``), instrumental world music (GCompris
  ``explore_world_music``; the pieces with singing - Italy, Mexico, Middle East, USA - are left
  out), music on hold (``asterisk-moh-opsound-wav``, CC-BY-SA-3.0).

GCompris keeps its data in Qt resource files (``.rcc``); :func:`read_rcc` reads them.

Output:

* ``OUT/audio/<id>.wav``: 16 kHz mono 16-bit PCM (channels averaged, resampled with soxr);
  sounds and music are cut to at most 30 s (music from ``offset`` in its source).
* ``OUT/manifest.json``: ``packages`` (package -> deb file, version, licence summary) and
  ``items``, each with ``id``, ``path`` (relative to OUT), ``kind`` (speech | sound | music),
  ``source`` (package), ``origin`` (file in the package, ``rcc-file:/resource/path`` for
  resources), ``license``, ``duration`` (s), and ``transcript`` (speech) or ``label`` and
  ``keywords`` (sound, music: the words an answer may use to name it).

The output is deterministic for the same package versions. One summary line per kind goes to
stdout; errors are one line on stderr (exit status 2).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
MAX_SECONDS = 30.0
SPEECH_COUNT = 100
SPEECH_MIN_SECONDS = 1.5
SPEECH_MIN_WORDS = 3

AST = "asterisk-core-sounds-en-wav"
AST_TEXT = "asterisk-core-sounds-en"
MOH = "asterisk-moh-opsound-wav"
FDO = "sound-theme-freedesktop"
OXY = "oxygen-sounds"
ICONS = "sound-icons"
GC = "gcompris-qt-data"

AST_DIR = "usr/share/asterisk/sounds/en_US_f_Allison"
AST_TRANSCRIPTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
FDO_DIR = "usr/share/sounds/freedesktop/stereo"
GC_RCC = "usr/share/gcompris-qt/rcc"

PACKAGE_LICENSES = {  # package -> licence summary (its copyright file), checked by hand
    AST: "CC-BY-SA-3.0 (recorded by Allison Smith)",
    AST_TEXT: "CC-BY-SA-3.0",
    MOH: "CC-BY-SA-3.0 (Macroform, Manolo Camp, Reno Project)",
    FDO: "per file: CC-BY-SA-3.0, CC-BY-3.0, GPL-2+, GPL-2",
    OXY: "LGPL-3.0-or-later (Nuno Filipe Povoa)",
    ICONS: "GPL-2+ (Brailcom)",
    GC: "per file: GPL-3+, Free-Art-1.2, CC0-1.0, CC-BY-3.0, public domain, CC-Sampling-Plus-1.0",
}


class BuildError(Exception):
    """A one-line reason the set cannot be built."""


# --------------------------------------------------------------------------- Qt resources


RCC_COMPRESSED = 0x01
RCC_DIRECTORY = 0x02
RCC_COMPRESSED_ZSTD = 0x04


def read_rcc(blob: bytes) -> dict[str, bytes]:
    """All files of a Qt binary resource (``.rcc``), path (``/a/b.ogg``) -> uncompressed bytes.

    Layout: ``qres``, then big-endian u32 version, tree offset, data offset, names offset (and
    for version 3 a flags word). Tree nodes are 14 bytes (version 1) or 22 (version 2+, with an
    8-byte modification time): u32 name offset, u16 flags, then for a directory u32 child count
    and u32 index of its first child, else u16 territory, u16 language and u32 data offset.
    A name is u16 length, u32 hash, UTF-16BE text; a data entry is u32 size then bytes: zlib
    data (flag 1) starts with the u32 uncompressed size, zstd data (flag 4) is a zstd frame.
    """
    if len(blob) < 20 or blob[:4] != b"qres":
        raise ValueError("not a Qt resource file (no 'qres' magic)")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    if version not in (1, 2, 3):
        raise ValueError(f"unsupported Qt resource version {version}")
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6
        return blob[start:start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    stack = [(0, "")]
    seen: set[int] = set()
    while stack:
        index, path = stack.pop()
        if index in seen:
            raise ValueError("malformed Qt resource file (a cycle in its tree)")
        seen.add(index)
        pos = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, pos)
        full = f"{path}/{name_at(name_offset)}" if index else ""
        if flags & RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", blob, pos + 6)
            stack.extend((first + i, full) for i in range(count))
            continue
        (offset,) = struct.unpack_from(">I", blob, pos + 10)
        (size,) = struct.unpack_from(">I", blob, data + offset)
        raw = blob[data + offset + 4:data + offset + 4 + size]
        if flags & RCC_COMPRESSED:
            raw = zlib.decompress(raw[4:])
        elif flags & RCC_COMPRESSED_ZSTD:
            try:
                import zstandard
            except ImportError as exc:
                raise ValueError(f"{full} is zstd-compressed: pip install zstandard") from exc
            raw = zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)
        files[full] = raw
    return files


# --------------------------------------------------------------------------- packages


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        hint = " (run 'apt-get update' first?)" if cmd[:2] == ["apt-get", "download"] else ""
        raise BuildError(f"{' '.join(cmd)} failed: {lines[-1] if lines else proc.returncode}{hint}")


def fetch_packages(packages: list[str], cache: Path) -> dict[str, Path]:
    """Download (``apt-get download``) and unpack (``dpkg-deb -x``) each package once; package -> root."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} not found: this script needs Debian's apt and dpkg "
                             "(it fetches the recordings with 'apt-get download')")
    debs, roots = cache / "debs", {}
    debs.mkdir(parents=True, exist_ok=True)
    for package in packages:
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            log(f"apt-get download {package}")
            _run(["apt-get", "download", package], cwd=debs)
            found = sorted(debs.glob(f"{package}_*.deb"))
            if not found:
                raise BuildError(f"apt-get download {package} left no {package}_*.deb in {debs}")
        deb = found[-1]
        root = cache / "x" / package
        stamp = root / ".extracted-from"
        if not stamp.is_file() or stamp.read_text() != deb.name:
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            _run(["dpkg-deb", "-x", str(deb), str(root)])
            stamp.write_text(deb.name)
        roots[package] = root
    return roots


def deb_version(root: Path) -> str:
    """The version of the unpacked package (from its .deb file name)."""
    name = (root / ".extracted-from").read_text()
    return name.split("_")[1].replace("%3a", ":")


# --------------------------------------------------------------------------- items


@dataclass(frozen=True)
class Item:
    """One clip of the set, before decoding."""

    id: str
    kind: str  # speech | sound | music
    source: str  # Debian package
    origin: str  # file inside the package; "<rcc file>:<resource path>" for Qt resources
    license: str
    transcript: str = ""
    label: str = ""
    keywords: tuple[str, ...] = ()
    offset: float = 0.0  # seconds skipped at the start (music: past a quiet intro)


DOG = ("dog", "bark", "puppy", "woof", "yap", "howl")
PHONE_RING = ("phone", "telephone", "ring", "ringtone", "ringing")

# (id, package, origin, license, label, keywords)
SOUNDS: list[tuple[str, str, str, str, str, tuple[str, ...]]] = [
    *[(f"gcompris-farm-{name}", GC, f"{GC_RCC}/explore_farm_animals.rcc:"
       f"/gcompris/src/activities/explore_farm_animals/resource/animals/{name}.ogg",
       "GPL-3 (GCompris, Bruno Coudoin and others)", label, words)
      for name, label, words in [
          ("cat", "cat", ("cat", "meow", "miaow", "mew", "kitten", "kitty", "purr")),
          ("chickens", "chickens", ("chicken", "hen", "cluck", "poultry", "rooster", "chick")),
          ("cow", "cow", ("cow", "moo", "cattle", "bull", "calf", "ox")),
          ("dog", "dog", DOG),
          ("duck", "duck", ("duck", "quack")),
          ("horse", "horse", ("horse", "neigh", "whinny", "pony")),
          ("owl", "owl", ("owl", "hoot")),
          ("pig", "pig", ("pig", "oink", "grunt", "hog", "swine", "piglet", "boar")),
          ("sheep", "sheep", ("sheep", "baa", "bleat", "lamb")),
      ]],
    *[(f"gcompris-memory-{name}", GC, f"{GC_RCC}/memory-sound.rcc:"
       f"/gcompris/src/activities/memory-sound/resource/{file}.ogg",
       "Free-Art-1.2 (Lionel Allorge, Yves Combe)", label, words)
      for name, file, label, words in [
          ("applause", "LRApplauses_1_LA_cut", "applause",
           ("applause", "applaud", "clap", "clapping", "cheer", "audience", "crowd")),
          ("bark-1", "LRBark_1_LA_cut", "dog", DOG),
          ("bark-3", "LRBark_3_LA_cut", "dog", DOG),
          ("car-engine", "LRStartAndStopCarEngine1LACut", "car engine",
           ("car", "engine", "motor", "vehicle", "ignition", "truck")),
          ("door", "LRDoor_Open_2_LA", "door opening", ("door", "creak", "squeak", "hinge")),
          ("frogs", "LRFrogsInPondDuringStormLACut", "frogs in a storm",
           ("frog", "croak", "toad", "ribbit", "rain", "storm", "thunder")),
          ("gong", "LRBuddhist_gong_05_LA", "gong", ("gong", "bell", "chime", "cymbal")),
          ("heartbeat", "LRHeart_beat_01_LA", "heartbeat", ("heart", "heartbeat", "pulse", "thump")),
          ("rain", "LRRain_in_garden_01_LA_cut", "rain",
           ("rain", "raindrop", "drizzle", "shower", "downpour", "drip", "storm")),
          ("train", "LRTrain_slowing_down_01_LA_cut", "train",
           ("train", "locomotive", "railway", "railroad", "tram", "subway", "brake")),
      ]],
    ("freedesktop-alarm-clock-elapsed", FDO, f"{FDO_DIR}/alarm-clock-elapsed.oga", "CC-BY-SA-3.0 (Tim/corsica_s)",
     "alarm clock", ("alarm", "clock", "bell", "ring", "ringing", "beep")),
    ("freedesktop-camera-shutter", FDO, f"{FDO_DIR}/camera-shutter.oga", "CC-BY-SA-3.0 (horsthorstensen)",
     "camera shutter", ("camera", "shutter", "photo", "click")),
    ("freedesktop-phone-incoming-call", FDO, f"{FDO_DIR}/phone-incoming-call.oga", "GPL-2+ (Damien Sandras)",
     "phone ringing", PHONE_RING),
    ("freedesktop-phone-outgoing-busy", FDO, f"{FDO_DIR}/phone-outgoing-busy.oga", "GPL-2+ (Damien Sandras)",
     "busy signal", ("phone", "telephone", "busy", "dial", "tone", "beep")),
    ("freedesktop-phone-outgoing-calling", FDO, f"{FDO_DIR}/phone-outgoing-calling.oga", "GPL-2+ (Damien Sandras)",
     "ringback tone", ("phone", "telephone", "ring", "ringing", "dial", "tone", "beep")),
    ("oxygen-im-phone-ring", OXY, "usr/share/sounds/Oxygen-Im-Phone-Ring.ogg", "LGPL-3.0-or-later (Nuno Filipe Povoa)",
     "phone ringing", PHONE_RING),
    ("sound-icons-canary", ICONS, "usr/share/sounds/sound-icons/canary-long.wav", "GPL-2+ (Brailcom)",
     "canary", ("bird", "canary", "chirp", "tweet", "birdsong", "whistle")),
    ("sound-icons-glass-water", ICONS, "usr/share/sounds/sound-icons/glass-water-1.wav", "GPL-2+ (Brailcom)",
     "water poured into a glass", ("water", "pour", "glass", "splash", "drip", "liquid", "bubble")),
]

# (id, package, origin, license, label, keywords, offset seconds)
MUSIC: list[tuple[str, str, str, str, str, tuple[str, ...], float]] = [
    *[(f"gcompris-instrument-{name}", GC, f"{GC_RCC}/instruments.rcc:"
       f"/gcompris/src/activities/instruments/resource/{file}.ogg",
       license, label, words, 0.0)
      for name, file, label, words, license in [
          ("accordion", "accordion", "accordion", ("accordion",), "GPL (GCompris, Sylvain Dechy and others)"),
          ("drum-kit", "drum_kit", "drum kit", ("drum", "drums", "drummer", "percussion", "cymbal", "snare"),
           "CC-Sampling-Plus-1.0 (ocea)"),
          ("flute", "flute_traversiere", "flute", ("flute", "recorder", "piccolo", "woodwind"),
           "GPL (GCompris, Sylvain Dechy and others)"),
          ("guitar", "guitar", "guitar", ("guitar",), "GPL (GCompris, Sylvain Dechy and others)"),
          ("piano", "piano", "piano", ("piano", "keyboard"), "GPL (GCompris, Sylvain Dechy and others)"),
          ("saxophone", "saxophone", "saxophone", ("saxophone", "sax", "jazz"),
           "GPL (GCompris, Sylvain Dechy and others)"),
          ("trumpet", "trumpet", "trumpet", ("trumpet", "horn", "brass", "cornet", "bugle"),
           "GPL (GCompris, Sylvain Dechy and others)"),
          ("violin", "violin", "violin", ("violin", "fiddle", "strings", "viola"),
           "GPL (GCompris, Sylvain Dechy and others)"),
      ]],
    *[(f"gcompris-world-{name}", GC, f"{GC_RCC}/explore_world_music.rcc:"
       f"/gcompris/src/activities/explore_world_music/resource/music/{name}.ogg",
       license, label, words, 0.0)
      for name, label, words, license in [
          ("africa", "djembe drums", ("djembe", "drum", "drums", "percussion", "bongo"), "CC0-1.0 (Michi Henning)"),
          ("australia", "didgeridoo", ("didgeridoo", "drone", "horn"), "public domain (Jouke Kooistra, Rob Tol)"),
          ("beethoven", "orchestra", ("orchestra", "orchestral", "symphony", "classical", "strings", "violin"),
           "CC0-1.0 (Drummyfish)"),
          ("ireland", "fiddle tune", ("fiddle", "violin", "folk", "celtic", "irish"), "CC-BY-3.0 (peakfiddler)"),
          ("japan", "taiko drums", ("taiko", "drum", "drums", "percussion"), "CC0-1.0 (Scott Harding)"),
      ]],
    *[(f"moh-{name}", MOH, f"usr/share/asterisk/moh/{name}.wav",
       f"CC-BY-SA-3.0 ({credit})", "music", (), 30.0)
      for name, credit in [
          ("macroform-cold_day", "Paul Shuler (Macroform)"),
          ("macroform-robot_dity", "Paul Shuler (Macroform)"),
          ("macroform-the_simplicity", "Paul Shuler (Macroform)"),
          ("manolo_camp-morning_coffee", "Manolo Camp"),
          ("reno_project-system", "Reno Project"),
      ]],
]

CHANNELS = ("front-left", "front-center", "front-right", "rear-left", "rear-center", "rear-right",
            "side-left", "side-right")
"""sound-theme-freedesktop's audio-channel-* clips: a human voice saying the channel's name."""

_MARKUP = re.compile(r"[\[\]<>*#()\"]")


def parse_transcripts(text: str) -> dict[str, str]:
    """``name: text`` lines of asterisk's core-sounds-en.txt (``;`` comments skipped)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";") or ": " not in line:
            continue
        name, said = line.split(": ", 1)
        out[name.strip()] = " ".join(said.split())
    return out


def evenly(names: list[str], count: int) -> list[str]:
    """``count`` names spread evenly over ``names`` (all of them when there are fewer)."""
    if len(names) <= count:
        return list(names)
    return [names[i * len(names) // count] for i in range(count)]


def speech_items(roots: dict[str, Path]) -> list[Item]:
    """The asterisk prompts (see the module docstring) and the freedesktop channel names."""
    import soundfile as sf

    transcripts = parse_transcripts(gzip.decompress((roots[AST_TEXT] / AST_TRANSCRIPTS).read_bytes()).decode())
    if not transcripts:
        raise BuildError(f"no transcripts in {AST_TEXT}'s {AST_TRANSCRIPTS}")
    candidates = []
    for name in sorted(transcripts):
        text = transcripts[name]
        wav = roots[AST] / AST_DIR / f"{name}.wav"
        if _MARKUP.search(text) or len(text.split()) < SPEECH_MIN_WORDS or not wav.is_file():
            continue
        if SPEECH_MIN_SECONDS <= sf.info(str(wav)).duration <= MAX_SECONDS:
            candidates.append(name)
    items = [Item(f"asterisk-{name.replace('/', '-')}", "speech", AST, f"{AST_DIR}/{name}.wav",
                  PACKAGE_LICENSES[AST], transcript=transcripts[name])
             for name in evenly(candidates, SPEECH_COUNT)]
    for channel in CHANNELS:
        items.append(Item(f"freedesktop-audio-channel-{channel}", "speech", FDO,
                          f"{FDO_DIR}/audio-channel-{channel}.oga", "GPL-2+ (The ALSA developers)",
                          transcript=channel.replace("-", " ").capitalize() + "."))
    return items


def other_items() -> list[Item]:
    sounds = [Item(i, "sound", pkg, origin, lic, label=label, keywords=words)
              for i, pkg, origin, lic, label, words in SOUNDS]
    music = [Item(i, "music", pkg, origin, lic, label=label, keywords=words, offset=offset)
             for i, pkg, origin, lic, label, words, offset in MUSIC]
    return sounds + music


# --------------------------------------------------------------------------- audio


def read_member(roots: dict[str, Path], item: Item, rcc_cache: dict[str, dict[str, bytes]]) -> bytes:
    """The bytes of an item's source file (from inside a Qt resource file where it says so)."""
    root = roots[item.source]
    if ".rcc:" in item.origin:
        rcc, inner = item.origin.split(":", 1)
        if rcc not in rcc_cache:
            rcc_cache[rcc] = read_rcc((root / rcc).read_bytes())
        if inner not in rcc_cache[rcc]:
            raise BuildError(f"{inner} not found in {item.source}'s {rcc}")
        return rcc_cache[rcc][inner]
    path = root / item.origin
    if not path.is_file():
        raise BuildError(f"{item.origin} not found in {item.source}")
    return path.read_bytes()


def to_16k_mono(data: bytes, offset: float = 0.0, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Decode (wav/ogg/oga via soundfile), average channels, resample to 16 kHz, cut, float32."""
    import soundfile as sf
    import soxr

    samples, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    mono = samples.mean(axis=1)
    start = int(round(offset * rate))
    if start >= len(mono):
        start = 0
    mono = mono[start:start + int(round(max_seconds * rate))]
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- build


def log(message: str) -> None:
    print(f"[make_real_eval] {message}", file=sys.stderr, flush=True)


def default_cache() -> Path:
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from salmonn_agent.mini.parts import cache_root

    return cache_root() / "real-eval"


def build(out: Path, cache: Path) -> dict:
    """Fetch the packages, write OUT/audio/*.wav and OUT/manifest.json; returns the manifest."""
    import soundfile as sf

    roots = fetch_packages([AST, AST_TEXT, FDO, OXY, ICONS, GC, MOH], cache)
    items = speech_items(roots) + other_items()
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise BuildError("duplicate item ids")
    audio = out / "audio"
    if audio.exists():
        shutil.rmtree(audio)
    audio.mkdir(parents=True)
    rcc_cache: dict[str, dict[str, bytes]] = {}
    records = []
    for item in items:
        samples = to_16k_mono(read_member(roots, item, rcc_cache), item.offset)
        if len(samples) < SAMPLE_RATE // 4:
            raise BuildError(f"{item.id}: under 0.25 s of audio")
        rel = f"audio/{item.id}.wav"
        sf.write(str(out / rel), samples, SAMPLE_RATE, subtype="PCM_16")
        rec: dict = {"id": item.id, "path": rel, "kind": item.kind, "source": item.source,
                     "origin": item.origin, "license": item.license,
                     "duration": round(len(samples) / SAMPLE_RATE, 3)}
        if item.offset:
            rec["offset"] = item.offset
        if item.kind == "speech":
            rec["transcript"] = item.transcript
        else:
            rec["label"] = item.label
            rec["keywords"] = list(item.keywords)
        records.append(rec)
    used = sorted({it.source for it in items} | {AST_TEXT})
    manifest = {
        "description": "Real recordings from Debian packages, for evaluation only (never training); "
                       "built by tools/make_real_eval.py",
        "sample_rate": SAMPLE_RATE,
        "packages": {p: {"deb": (roots[p] / ".extracted-from").read_text(), "version": deb_version(roots[p]),
                         "license": PACKAGE_LICENSES[p], "copyright": f"usr/share/doc/{p}/copyright"}
                     for p in used},
        "items": records,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def summary_lines(manifest: dict) -> list[str]:
    lines = []
    for kind in ("speech", "sound", "music"):
        sub = [r for r in manifest["items"] if r["kind"] == kind]
        sources = {}
        for r in sub:
            sources[r["source"]] = sources.get(r["source"], 0) + 1
        seconds = sum(r["duration"] for r in sub)
        extra = f", {sum(len(r['transcript'].split()) for r in sub)} words" if kind == "speech" else ""
        lines.append(f"{kind}: {len(sub)} items, {seconds:.1f} s{extra} ("
                     + ", ".join(f"{s} {n}" for s, n in sorted(sources.items())) + ")")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output directory (audio/ and manifest.json)")
    p.add_argument("--cache", type=Path, help="where .deb files are downloaded and unpacked "
                                              "(default: <salmonn-agent cache>/real-eval)")
    args = p.parse_args(argv)
    try:
        cache = args.cache or default_cache()
        manifest = build(args.out, cache)
    except (BuildError, OSError, ValueError, RuntimeError) as err:
        print(f"make_real_eval: error: {err}", file=sys.stderr)
        return 2
    for line in summary_lines(manifest):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
