"""Every example in README.md runs, with the embedded default model (salmonn-mini)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from devkit.serving import wait_until_healthy
from salmonn_agent.registry import MODEL_ENV

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


@pytest.fixture
def default_model(mini_parts, mini_cache, monkeypatch):
    """salmonn-mini as the model no argument names: its base parts prepared in the test cache."""
    monkeypatch.setenv("SALMONN_AGENT_CACHE", str(mini_cache))
    monkeypatch.delenv(MODEL_ENV, raising=False)


SERVER = "127.0.0.1:8000"
"""Examples that talk to the README's `salmonn-agent serve` (started by the ``readme_server`` fixture)."""


@pytest.fixture
def readme_server(default_model):
    """The README's ``salmonn-agent serve`` command, running until the test ends."""
    import shlex
    import subprocess

    (line,) = [c for c in ALL_COMMANDS if c.startswith("salmonn-agent serve") and "--ui" not in c]
    server = subprocess.Popen([sys.executable, "-m", "salmonn_agent.cli", *shlex.split(line)[1:]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_healthy(f"http://{SERVER}", 180, server)
        yield
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize("code", [b for b in BLOCKS if SERVER not in b])
def test_readme_python_example_runs(code, default_model, tmp_path, capsys):
    shutil.copytree(ROOT / "examples" / "audio", tmp_path / "examples" / "audio")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out  # the example prints its answers


BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
ALL_COMMANDS = [
    line.split("  #")[0].strip()
    for block in BASH_BLOCKS
    for line in block.splitlines()
    if line.startswith("salmonn-agent ")
]
COMMANDS = [c for c in ALL_COMMANDS if " devices" not in c and not c.startswith("salmonn-agent serve")
            and "--server" not in c]
"""Commands that run on their own (``serve`` runs until stopped: see ``readme_server``)."""


def test_readme_server_examples_run(readme_server, tmp_path, capsys):
    """The serving section: its shell block (curl, ``ask --server``) and its Python examples."""
    import subprocess

    shutil.copytree(ROOT / "examples" / "audio", tmp_path / "examples" / "audio")
    (block,) = [b for b in BASH_BLOCKS if SERVER in b and "curl" in b]
    script = "set -euo pipefail\n" + block.replace("salmonn-agent ", f"{sys.executable} -m salmonn_agent.cli ")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert '"choices"' in result.stdout and '"text"' in result.stdout and result.stdout.strip().splitlines()[-1]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for code in [b for b in BLOCKS if SERVER in b]:
            exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_cli_example_runs(command, default_model, tmp_path):
    import shlex
    import subprocess
    import sys

    shutil.copytree(ROOT / "examples" / "audio", tmp_path / "examples" / "audio")
    argv = shlex.split(command)
    result = subprocess.run(
        [sys.executable, "-m", "salmonn_agent.cli", *argv[1:]],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_readme_ui_command_serves_the_page(default_model, tmp_path):
    """The README's ``salmonn-agent serve --ui`` command: the page, and a live session on salmonn-mini."""
    import json
    import shlex
    import subprocess

    import httpx
    from websockets.sync.client import connect

    (line,) = [c for c in ALL_COMMANDS if c.startswith("salmonn-agent serve --ui")]
    server = subprocess.Popen([sys.executable, "-m", "salmonn_agent.cli", *shlex.split(line)[1:]], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout's package
    try:
        wait_until_healthy(f"http://{SERVER}", 180, server)
        assert "/ui/app.js" in httpx.get(f"http://{SERVER}/").text
        with connect(f"ws://{SERVER}/v1/live") as ws:
            ws.send(json.dumps({"type": "hello", "format": "s16le", "sample_rate": 16000}))
            ready = json.loads(ws.recv(timeout=30))
        assert ready["type"] == "ready" and ready["model"] == "salmonn-mini"
        assert ready["allow"] == ["add_note", "set_timer", "list_timers"]
    finally:
        server.terminate()
        server.wait(30)
