"""Every example in README.md runs, with the embedded default model (salmonn-mini)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from salmonn_agent.mini.default import MODEL_ENV

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


@pytest.fixture
def default_model(mini_parts, mini_cache, monkeypatch):
    """salmonn-mini as the model no argument names: its base parts prepared in the test cache."""
    monkeypatch.setenv("SALMONN_AGENT_CACHE", str(mini_cache))
    monkeypatch.delenv(MODEL_ENV, raising=False)


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_python_example_runs(code, default_model, tmp_path, capsys):
    shutil.copytree(ROOT / "examples" / "audio", tmp_path / "examples" / "audio")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out  # the example prints its answers


COMMANDS = [
    line.split("  #")[0].strip()
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    for line in block.splitlines()
    if line.startswith("salmonn-agent ") and " devices" not in line
]


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
