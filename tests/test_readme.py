"""Every Python example and command in README.md runs.

Examples that name ``runs/tiny/...`` get a tiny local model there; the others use the embedded
default model, salmonn-mini, whose base parts are prepared once per session (``mini_cache``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_python_example_runs(code, tiny_model_dir, mini_parts, mini_cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SALMONN_AGENT_CACHE", str(mini_cache))
    shutil.copytree(tiny_model_dir.parent, tmp_path / "runs" / "tiny")
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
def test_readme_cli_example_runs(command, tiny_model_dir, mini_parts, mini_cache, tmp_path):
    import shlex
    import subprocess
    import sys

    shutil.copytree(tiny_model_dir.parent, tmp_path / "runs" / "tiny")
    shutil.copytree(ROOT / "examples" / "audio", tmp_path / "examples" / "audio")
    argv = shlex.split(command)
    result = subprocess.run(
        [sys.executable, "-m", "salmonn_agent.cli", *argv[1:]],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "SALMONN_AGENT_CACHE": str(mini_cache)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
