"""The model registry: which model an entry point loads, and each model's profile."""

from __future__ import annotations

from pathlib import Path

import pytest

import salmonn_agent.mini.shipped as shipped
from salmonn_agent import registry
from salmonn_agent.registry import (
    DEFAULT_MODEL,
    GENERIC_PROFILE,
    MODEL_ENV,
    ModelProfile,
    profile_for,
    resolve_model_name,
)


def test_an_explicit_name_wins_over_the_environment_which_wins_over_salmonn_mini(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert resolve_model_name(None) == DEFAULT_MODEL == "salmonn-mini"
    monkeypatch.setenv(MODEL_ENV, "/models/from-env")
    assert resolve_model_name(None) == "/models/from-env"
    assert resolve_model_name("/models/explicit") == "/models/explicit"
    monkeypatch.setenv(MODEL_ENV, "")  # an empty variable names no model
    assert resolve_model_name(None) == DEFAULT_MODEL


def test_salmonn_mini_has_its_own_profile_and_any_other_model_the_generic_one():
    mini = profile_for("salmonn-mini")
    assert mini.hears_audio and mini.memory_turns == 0
    assert profile_for("/models/salmonn-13b") is GENERIC_PROFILE
    assert GENERIC_PROFILE.hears_audio and GENERIC_PROFILE.memory_turns is None


def test_a_model_directory_built_on_salmonn_minis_llm_has_salmonn_minis_profile(tmp_path, monkeypatch):
    import json

    from salmonn_agent.mini.parts import mini_parts_dir

    monkeypatch.setenv("SALMONN_AGENT_CACHE", str(tmp_path / "cache"))
    (mini_parts_dir() / "llm").mkdir(parents=True)
    trained = tmp_path / "runs" / "stage" / "model"  # a checkpoint of salmonn-mini trained further
    trained.mkdir(parents=True)
    relative = Path("..") / ".." / ".." / "cache" / "mini-parts" / mini_parts_dir().name / "llm"
    (trained / "salmonn_config.json").write_text(json.dumps({"llm": str(relative)}))
    assert profile_for(str(trained)) == profile_for("salmonn-mini")
    other = tmp_path / "vicuna-based"
    other.mkdir()
    (other / "salmonn_config.json").write_text(json.dumps({"llm": "lmsys/vicuna-7b-v1.5"}))
    assert profile_for(str(other)) is GENERIC_PROFILE
    assert profile_for(str(tmp_path / "missing")) is GENERIC_PROFILE


def test_profiles_are_frozen_and_checked():
    with pytest.raises(ValueError):
        ModelProfile(memory_turns=-1)
    with pytest.raises(ValueError):
        ModelProfile(context=4096)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        GENERIC_PROFILE.hears_audio = False  # type: ignore[misc]


def test_load_model_resolves_before_loading(monkeypatch):
    loaded: list[str] = []
    monkeypatch.setattr(shipped, "mini_weights_available", lambda: True)
    monkeypatch.setattr(shipped, "load_mini", lambda **kw: loaded.append("mini") or "the mini model")
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert registry.load_model(None, device="cpu") == "the mini model"
    monkeypatch.setenv(MODEL_ENV, "salmonn-mini")
    assert registry.load_model() == "the mini model"
    assert loaded == ["mini", "mini"]


def test_missing_mini_weights_name_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(shipped, "WEIGHTS_FILE", tmp_path / "none.safetensors")
    with pytest.raises(registry.ModelNotAvailableError, match=MODEL_ENV):
        registry.load_model("salmonn-mini")
