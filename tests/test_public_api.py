"""The top-level public API: every name resolves, and ``import salmonn_agent`` stays cheap."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module

import salmonn_agent

REQUIRED = {
    "ChatSALMONN", "load_model", "SALMONN", "HearingTools", "VoiceAgent", "Listener",
    "MicrophoneSource", "FileSource", "SegmenterConfig",
    "SalmonnError", "AudioError", "ConfigError", "CheckpointError", "ModelNotAvailableError",
}


def test_public_names_resolve_to_their_defining_modules() -> None:
    assert REQUIRED <= set(salmonn_agent.__all__)
    assert set(dir(salmonn_agent)) >= set(salmonn_agent.__all__)
    for name in salmonn_agent.__all__:
        value = getattr(salmonn_agent, name)
        assert value is getattr(import_module(value.__module__), name), name

    from salmonn_agent import ChatSALMONN, load_model
    from salmonn_agent.chat_model import ChatSALMONN as Defined
    from salmonn_agent.registry import load_model as defined

    assert ChatSALMONN is Defined and load_model is defined


def test_errors_share_the_base_class() -> None:
    for name in ("AudioError", "ConfigError", "CheckpointError", "ModelNotAvailableError",
                 "FrontendError", "ContentBlockError"):
        assert issubclass(getattr(salmonn_agent, name), salmonn_agent.SalmonnError), name


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        salmonn_agent.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("no AttributeError")


def test_import_does_not_load_torch_or_langchain() -> None:
    code = ("import sys, salmonn_agent; "
            "print(sorted(m for m in ('torch', 'transformers', 'langchain_core') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
