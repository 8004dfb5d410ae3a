"""LangChain's standard chat-model test suites, run against salmonn-mini, the embedded default model.

salmonn-mini is small (SmolLM2-135M under the audio parts) and was trained on synthetic audio
tasks and spoken voice-assistant requests, not on text tool use. It passes the tool-calling
tests (it reads the argument 3 from the question, and copies a Chinese name). The three tests
that need a stronger text model (decide by itself to call a tool, follow a JSON-mode prompt's
keys, copy a Japanese name into a tool's arguments) are xfailed with that reason; everything
the grammar or the code guarantees passes. The per-call model override switches to a tiny
random model built locally.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from salmonn_agent.chat_model import ChatSALMONN
from salmonn_agent.registry import DEFAULT_MODEL, MODEL_ENV

class _Paths:
    model_dir = DEFAULT_MODEL
    other_model_dir = ""
    audio_file = Path()

    @pytest.fixture(autouse=True)
    def _local_files(self, mini_parts, mini_cache: Path, second_model_dir: Path, chirp_wav: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SALMONN_AGENT_CACHE", str(mini_cache))  # salmonn-mini's prepared base parts
        type(self).other_model_dir = str(second_model_dir)
        type(self).audio_file = chirp_wav


class TestChatSALMONNUnit(_Paths, ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatSALMONN]:
        return ChatSALMONN

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": self.model_dir}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return {MODEL_ENV: "/models/salmonn-13b"}, {}, {"model": "/models/salmonn-13b"}

    @property
    def supports_audio_inputs(self) -> bool:
        return True


class TestChatSALMONNIntegration(_Paths, ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatSALMONN]:
        return ChatSALMONN

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # greedy and deterministic; 80 tokens hold any grammar-forced call of these tests
        return {"model": self.model_dir, "temperature": 0, "max_tokens": 80}

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return self.other_model_dir

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[str]]:
        return {"invoke": ["audio_input"], "stream": ["audio_input"]}

    def invoke_with_audio_input(self, *, stream: bool = False) -> AIMessage:
        model = ChatSALMONN(**self.chat_model_params)
        message = HumanMessage([
            {"type": "text", "text": "Describe this audio:"},
            {"type": "audio", "url": str(self.audio_file)},
        ])
        if not stream:
            return model.invoke([message])
        full: AIMessageChunk | None = None
        for chunk in model.stream([message]):
            full = chunk if full is None else full + chunk
        assert full is not None
        return full

    @pytest.fixture(autouse=True)
    def _local_audio_download(self, monkeypatch: pytest.MonkeyPatch, chirp_wav: Path) -> None:
        """test_audio_inputs downloads a bird call from wikimedia: hand it a local WAV instead."""
        import langchain_tests.integration_tests.chat_models as standard

        monkeypatch.setattr(standard, "_get_base64_from_url", lambda url: base64.b64encode(chirp_wav.read_bytes()).decode())

    @pytest.mark.xfail(
        reason="with tool_choice='auto' salmonn-mini answers in text instead of deciding to call "
        "the tool (forced choices always call: test_tool_choice)"
    )
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(
        reason="json_mode guarantees any JSON object, not these keys; salmonn-mini does not pick "
        "'setup' and 'punchline' from the prompt (method='json_schema' enforces them: "
        "test_structured_output passes)"
    )
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)

    @pytest.mark.xfail(
        reason="salmonn-mini copies the Chinese name into the tool's arguments but writes other "
        "characters for the Japanese one ('アマ' for 'こんにちは株式会社'): a text skill of SmolLM2-135M "
        "that its hint-stage LoRA weakened"
    )
    def test_unicode_tool_call_integration(self, model: BaseChatModel) -> None:
        super().test_unicode_tool_call_integration(model)
