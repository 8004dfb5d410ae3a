"""The `salmonn-agent ask` command: answers on stdout, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from salmonn_agent.cli import MODEL_ENV, main

SPEECH = Path(__file__).resolve().parent.parent / "examples" / "audio" / "speech.wav"


def test_ask_prints_only_the_answer(tiny_model_dir, capsys):
    status = main(["ask", str(SPEECH), "Recognize the speech.", "--model", str(tiny_model_dir),
                   "--num-beams", "1", "--max-new-tokens", "6"])
    out, err = capsys.readouterr()
    assert status == 0
    assert out.count("\n") == 1
    assert "Traceback" not in err


def test_ask_stream_prints_the_same_answer(tiny_model_dir, capsys):
    args = ["ask", str(SPEECH), "hello", "--model", str(tiny_model_dir), "--max-new-tokens", "6"]
    assert main(args + ["--num-beams", "1"]) == 0
    plain = capsys.readouterr().out
    assert main(args + ["--stream"]) == 0
    assert capsys.readouterr().out.strip() == plain.strip()


def test_ask_without_a_model_and_without_the_default_says_so(monkeypatch, tmp_path, capsys):
    import salmonn_agent.mini.shipped as shipped

    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setattr(shipped, "WEIGHTS_FILE", tmp_path / "missing.safetensors")
    assert main(["ask", str(SPEECH), "hello"]) == 2
    err = capsys.readouterr().err
    assert "no embedded default model" in err and "--model" in err
    assert err.count("\n") == 1


def test_model_resolution_order(monkeypatch, tiny_model_dir, capsys):
    from salmonn_agent.registry import DEFAULT_MODEL, resolve_model_name

    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert resolve_model_name(None) == DEFAULT_MODEL
    monkeypatch.setenv(MODEL_ENV, str(tiny_model_dir))
    assert resolve_model_name(None) == str(tiny_model_dir)
    assert resolve_model_name("other") == "other"
    assert main(["ask", str(SPEECH), "hello", "--num-beams", "1", "--max-new-tokens", "3"]) == 0


@pytest.mark.parametrize("content", [b"not audio", b""])
def test_bad_audio_is_one_line_and_exit_2(tiny_model_dir, tmp_path, capsys, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    assert main(["ask", str(bad), "hello", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("salmonn-agent: error:") and err.count("\n") == 1


def test_bad_audio_fails_before_the_model_loads(monkeypatch, tmp_path, capsys):
    import salmonn_agent.cli as cli

    def never(args):
        raise AssertionError("the model was loaded before the audio was checked")

    monkeypatch.setattr(cli, "load_model_from_args", never)
    assert main(["ask", str(tmp_path / "missing.wav"), "hello"]) == 2
    assert "not found" in capsys.readouterr().err


def test_an_instruction_longer_than_the_context_is_one_line(tiny_model_dir, capsys):
    assert main(["ask", str(SPEECH), "listen " * 5000, "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert "over the model's context" in err and err.count("\n") == 1


def test_broken_model_files_name_the_fault(tiny_model_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["ask", str(SPEECH), "hi", "--model", str(broken)]) == 2
    assert "base model path '../whisper' does not exist" in capsys.readouterr().err  # base parts left behind
    shutil.copytree(tiny_model_dir.parent / "whisper", tmp_path / "whisper")
    shutil.copytree(tiny_model_dir.parent / "llm", tmp_path / "llm")
    assert main(["ask", str(SPEECH), "hi", "--model", str(broken)]) == 2
    assert "not a complete safetensors file" in capsys.readouterr().err
    assert main(["ask", str(SPEECH), "hi", "--config", str(tiny_model_dir / "model.safetensors")]) == 2
    assert "not a text YAML file" in capsys.readouterr().err


def test_bad_options_and_paths(tiny_model_dir, tmp_path, capsys):
    assert main(["ask", str(SPEECH), "hi", "--model", str(tiny_model_dir), "--num-beams", "0"]) == 2
    assert "num_beams" in capsys.readouterr().err
    assert main(["ask", str(SPEECH), "hi", "--model", str(tmp_path)]) == 2
    assert "salmonn_config.json" in capsys.readouterr().err
    assert main(["ask", str(SPEECH), "hi", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["ask", str(SPEECH), "hi", "--model", str(tiny_model_dir), "--dtype", "int3"]) == 2
    assert "dtype" in capsys.readouterr().err


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "salmonn_agent.cli", "ask", "--help"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and "--lora-scale" in result.stdout
