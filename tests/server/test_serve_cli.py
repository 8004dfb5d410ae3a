"""The CLI side of the server: ``ask --server`` (without PyTorch) and ``serve``'s refusals."""

from __future__ import annotations

import subprocess
import sys

from salmonn_agent.cli import main


def test_ask_server_answers_without_importing_torch(start_server, tmp_path, wav_bytes):
    server = start_server()
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes)
    code = (
        "import sys\n"
        "from salmonn_agent.cli import main\n"
        f"status = main(['ask', '--server', {server.base!r}, {str(clip)!r}, 'What do you hear?', '--max-new-tokens', '4'])\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy imports'\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    streamed = subprocess.run([sys.executable, "-m", "salmonn_agent.cli", "ask", "--server", server.url, str(clip),
                               "What do you hear?", "--max-new-tokens", "4", "--stream"],
                              capture_output=True, text=True, timeout=120)
    assert streamed.returncode == 0 and streamed.stdout == result.stdout


def test_ask_server_errors_are_one_line(start_server, tmp_path, wav_bytes, capsys):
    server = start_server(api_key="k")
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes)
    assert main(["ask", "--server", server.url, str(clip), "hi"]) == 2
    assert "401" in capsys.readouterr().err
    assert main(["ask", "--server", server.url, "--api-key", "k", str(tmp_path / "missing.wav"), "hi"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["ask", "--server", "http://127.0.0.1:9", str(clip), "hi"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and "salmonn-agent serve" in err and "Traceback" not in err


def test_serve_refuses_a_network_address_without_a_key(capsys, monkeypatch):
    monkeypatch.delenv("SALMONN_AGENT_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--api-key" in err and "--insecure" in err


def test_serve_ui_refuses_bad_assistant_options_before_loading(capsys, monkeypatch):
    monkeypatch.delenv("SALMONN_AGENT_API_KEY", raising=False)
    assert main(["serve", "--allow", "add_note"]) == 2
    assert "add --ui" in capsys.readouterr().err
    assert main(["serve", "--ui", "--allow", "send_webhook"]) == 2
    err = capsys.readouterr().err
    assert "send_webhook needs --webhook URL" in err and "add_note" in err
    assert main(["serve", "--ui", "--webhook", "ftp://x"]) == 2
    assert "http://" in capsys.readouterr().err
    assert main(["serve", "--ui", "--max-sessions", "0"]) == 2
    assert "max_sessions" in capsys.readouterr().err
    assert main(["serve", "--ui", "--host", "0.0.0.0"]) == 2  # the page is no exception to the key rule
    assert "--api-key" in capsys.readouterr().err
