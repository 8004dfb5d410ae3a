"""The real-recordings evaluation set: tools/make_real_eval.py's Qt resource reader and helpers,
and its scoring (devkit.scoring, tools/eval_mini.py --real). Offline, no model."""

from __future__ import annotations

import importlib.util
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from devkit import scoring as SC

ROOT = Path(__file__).resolve().parents[2]


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mre():
    return load_tool("make_real_eval")


# --------------------------------------------------------------------------- Qt resources


def make_rcc(version: int, zstd: bool = False) -> bytes:
    """A small .rcc: /a/x.txt (stored), /a/y.bin (zlib), /z.dat (stored, or zstd when asked)."""
    names = b""
    name_offsets = {}
    for name in ("a", "x.txt", "y.bin", "z.dat"):
        name_offsets[name] = len(names)
        text = name.encode("utf-16-be")
        names += struct.pack(">HI", len(name), 0x1234) + text
    payloads = {"x.txt": (0, b"hello"), "y.bin": (1, struct.pack(">I", 6000) + zlib.compress(b"\x07" * 6000))}
    if zstd:
        import zstandard

        payloads["z.dat"] = (4, zstandard.ZstdCompressor().compress(b"zed" * 100))
    else:
        payloads["z.dat"] = (0, b"zed" * 100)
    data = b""
    data_offsets = {}
    for name, (_, blob) in payloads.items():
        data_offsets[name] = len(data)
        data += struct.pack(">I", len(blob)) + blob
    stamp = b"\0" * 8 if version >= 2 else b""

    def directory(name_offset: int, count: int, first: int) -> bytes:
        return struct.pack(">IHII", name_offset, 2, count, first) + stamp

    def file(name: str) -> bytes:
        flags = payloads[name][0]
        return struct.pack(">IHHHI", name_offsets[name], flags, 0, 0, data_offsets[name]) + stamp

    # node 0: root (children 1-2), 1: dir a (children 3-4), 2: z.dat, 3: x.txt, 4: y.bin
    tree = directory(0, 2, 1) + directory(name_offsets["a"], 2, 3) + file("z.dat") + file("x.txt") + file("y.bin")
    header_size = 24 if version >= 3 else 20
    tree_offset = header_size
    data_offset = tree_offset + len(tree)
    names_offset = data_offset + len(data)
    header = b"qres" + struct.pack(">IIII", version, tree_offset, data_offset, names_offset)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + tree + data + names


@pytest.mark.parametrize("version", [1, 2, 3])
def test_read_rcc(mre, version: int) -> None:
    files = mre.read_rcc(make_rcc(version))
    assert files == {"/a/x.txt": b"hello", "/a/y.bin": b"\x07" * 6000, "/z.dat": b"zed" * 100}


def test_read_rcc_zstd(mre) -> None:
    pytest.importorskip("zstandard")
    assert mre.read_rcc(make_rcc(3, zstd=True))["/z.dat"] == b"zed" * 100


def test_read_rcc_rejects_other_files(mre) -> None:
    with pytest.raises(ValueError, match="qres"):
        mre.read_rcc(b"RIFF" + b"\0" * 40)
    with pytest.raises(ValueError, match="version"):
        mre.read_rcc(b"qres" + struct.pack(">IIII", 9, 20, 20, 20))


# --------------------------------------------------------------------------- set building helpers


def test_parse_transcripts_and_evenly(mre) -> None:
    text = "; Core Asterisk Sounds\n\nactivated: Activated.\nagent-pass: Please enter  your password.\nbad line\n"
    assert mre.parse_transcripts(text) == {"activated": "Activated.", "agent-pass": "Please enter your password."}
    names = [f"n{i:03d}" for i in range(244)]
    picked = mre.evenly(names, 100)
    assert len(picked) == 100 and picked[0] == "n000" and picked == sorted(set(picked))
    assert mre.evenly(names[:5], 100) == names[:5]


def test_markup_transcripts_are_left_out(mre) -> None:
    assert mre._MARKUP.search("[ascending tones]") and mre._MARKUP.search("press * to pause")
    assert mre._MARKUP.search('a polite "don\'t call" menu')
    assert not mre._MARKUP.search("I'm sorry, that number is not valid.")


def test_to_16k_mono(mre) -> None:
    import soundfile as sf

    rate = 8000
    t = np.arange(rate * 3) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 440 * t)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, rate, format="WAV", subtype="PCM_16")
    out = mre.to_16k_mono(buf.getvalue(), offset=1.0, max_seconds=1.5)
    assert out.dtype == np.float32 and out.ndim == 1
    assert len(out) == pytest.approx(1.5 * 16000, abs=2)
    assert np.abs(out).max() == pytest.approx(0.3, abs=0.02)  # the channels averaged


def test_item_tables(mre) -> None:
    items = mre.other_items()
    ids = [it.id for it in items]
    assert len(ids) == len(set(ids))
    sounds = [it for it in items if it.kind == "sound"]
    music = [it for it in items if it.kind == "music"]
    assert 20 <= len(sounds) <= 40 and 10 <= len(music) <= 20
    assert all(it.keywords and it.label for it in sounds)
    assert all(it.source in mre.PACKAGE_LICENSES and it.license for it in items)
    assert all(".rcc:" in it.origin for it in items if it.source == mre.GC)


def test_missing_apt_get_is_one_clear_error(mre, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(mre.shutil, "which", lambda tool: None)
    with pytest.raises(mre.BuildError, match="apt-get not found"):
        mre.fetch_packages(["sound-icons"], tmp_path)


# --------------------------------------------------------------------------- scoring


@pytest.mark.parametrize(("text", "keywords", "want"), [
    ("A dog is barking.", ("dog", "bark"), "dog"),
    ("Barking.", ("dog", "bark", "woof"), "barking"),
    ("Dogs bark in the distance", ("dog",), "dogs"),
    ("A hotdog stand.", ("dog",), None),
    ("A DOORBELL.", ("bell",), None),
    ("Wind chimes chiming.", ("chime",), "chimes"),
    ("A phone is ringing", ("telephone", "ring"), "ringing"),
    ("Some cows mooing.", ("cow", "moo"), "cows"),
    ("A drum kit", ("drum kit",), "drum kit"),
    ("", ("dog",), None),
    ("Music.", (), None),
])
def test_keyword_in(text: str, keywords: tuple[str, ...], want: str | None) -> None:
    assert SC.keyword_in(text, keywords) == want


def test_score_real_items_and_summarize() -> None:
    speech = {"id": "s1", "kind": "speech", "transcript": "Press 1 for sales."}
    dog = {"id": "d", "kind": "sound", "label": "dog", "keywords": ["dog", "bark", "woof"]}
    cow = {"id": "c", "kind": "sound", "label": "cow", "keywords": ["cow", "moo"]}
    violin = {"id": "v", "kind": "music", "label": "violin", "keywords": ["violin", "fiddle"]}
    moh = {"id": "m", "kind": "music", "label": "music", "keywords": []}
    cases = [  # (group, item, prediction, correct)
        ("real_asr", speech, "Press one for sales.", True),
        ("real_sound", dog, "A dog barking.", True),
        ("real_sound", cow, "A siren.", False),
        ("real_music", violin, "Someone plays a fiddle.", True),
        ("real_music", moh, "A slow melody.", True),
        ("real_music", moh, "A doorbell.", False),
        ("real_presence", speech, "Yes.", True),
        ("real_presence", dog, "Yes, a man speaks.", False),
        ("real_presence", violin, "No.", True),
    ]
    records = []
    for group, item, prediction, correct in cases:
        scored = SC.score_real_item(group, item, prediction)
        assert scored["correct"] is correct, (group, prediction)
        records.append({**item, "prediction": prediction, **scored})
    assert records[0]["label"] == "Press 1 for sales." and records[0]["wer"] == 0.0
    assert records[1]["extracted"] == "dog" and records[4]["extracted"] == "melody"
    with pytest.raises(ValueError):
        SC.score_real_item("real_story", speech, "x")
    m = SC.summarize_real(records)
    assert m["real_wer"] == 0.0 and m["real_wer_n"] == 1 and m["real_wer_ref_words"] == 4
    assert m["real_sound_acc"] == 0.5 and m["real_sound_acc_n"] == 2
    assert m["real_music_acc"] == pytest.approx(0.6667, abs=1e-4) and m["real_music_acc_n"] == 3
    assert m["real_speech_presence_acc"] == pytest.approx(0.6667, abs=1e-4) and m["real_speech_presence_acc_n"] == 3
    assert m["real_presence_speech_acc"] == 1.0 and m["real_presence_nonspeech_acc_n"] == 2
    empty = SC.summarize_real([])
    assert empty["real_wer"] is None and empty["real_sound_acc_n"] == 0


def test_eval_tool_real_groups(tmp_path) -> None:
    tool = load_tool("eval_mini")
    items = ([{"id": f"s{i}", "kind": "speech", "duration": 2.0 + i} for i in range(4)]
             + [{"id": f"n{i}", "kind": "sound"} for i in range(2)] + [{"id": "m0", "kind": "music"}])
    groups = tool.select_real(items, 3)
    assert [it["id"] for it in groups["real_asr"]] == ["s0", "s1", "s2"]
    assert [it["id"] for it in groups["real_presence"]] == ["s0", "n0", "m0"]
    assert len(tool.select_real(items, None)["real_presence"]) == 7
    assert tool.asr_tokens(groups["real_asr"], 40) == 40
    assert tool.asr_tokens([{"duration": 25.0}], 40) == 116
    with pytest.raises(RuntimeError, match="make_real_eval"):
        tool.load_real(tmp_path)
