"""Every Python example in README.md runs (against a tiny local model at the README's path)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_python_example_runs(code, tiny_model_dir, tmp_path, capsys):
    shutil.copytree(tiny_model_dir.parent, tmp_path / "runs" / "tiny")
    shutil.copytree(ROOT / "examples" / "audio", tmp_path / "examples" / "audio")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out  # the example prints its answers
