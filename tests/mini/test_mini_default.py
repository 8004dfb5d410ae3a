"""salmonn-mini as the default model: its architecture over the real base parts, and loading
shipped weights through the default resolution (with weights made here, since none ship yet)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage
from safetensors.torch import save_file

import salmonn_agent.mini.shipped as shipped
import salmonn_agent.registry as registry
from salmonn_agent.chat.blocks import BlockReader
from salmonn_agent.chat.render import render_conversation
from salmonn_agent.mini.model import PROMPT_TEMPLATE, chat_prompt_template, mini_config
from salmonn_agent.model.salmonn import SALMONN

SPEECH = Path(__file__).resolve().parents[2] / "examples" / "audio" / "speech.wav"


@pytest.mark.slow
def test_default_model_loads_shipped_weights(mini_parts, mini_cache, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = SALMONN.from_config(mini_config(mini_parts.whisper_dir, mini_parts.llm_dir))
    assert model.tokens_per_chunk() == 58  # 10 s context: 500 frames in 29 windows of 17, 2 queries each
    assert model.render_prompt("hi").startswith("<|im_start|>system\n")
    weights = {k: v.to(torch.float16) for k, v in model.trainable_state_dict().items()}
    assert sum(v.numel() * 2 for v in weights.values()) < 25e6  # the shipped file's size bound
    monkeypatch.setattr(shipped, "WEIGHTS_FILE", tmp_path / "salmonn-mini.safetensors")
    save_file(weights, str(shipped.WEIGHTS_FILE))
    monkeypatch.setenv("SALMONN_AGENT_CACHE", str(mini_cache))
    monkeypatch.delenv(registry.MODEL_ENV, raising=False)

    loaded = registry.load_model(None)
    for name, value in weights.items():
        assert torch.equal(loaded.trainable_state_dict()[name], value.float()), name
    answer = loaded.generate(SPEECH, "Recognize the speech.", max_new_tokens=5)[0]
    assert isinstance(answer, str)


def test_prompt_template_is_the_llms_own_chat_template(mini_parts):
    assert PROMPT_TEMPLATE == chat_prompt_template(mini_parts.llm_dir)


def test_a_conversation_renders_as_the_llms_own_chat_template(mini_parts):
    # ChatSALMONN's rendering of two turns with salmonn-mini's config is the text SmolLM2's own
    # chat template gives the same conversation (the system prompt once, answers closed).
    from transformers import AutoTokenizer

    config = mini_config(mini_parts.whisper_dir, mini_parts.llm_dir)
    conversation = [HumanMessage("What time is it?"), AIMessage("It is noon."), HumanMessage("And tomorrow?")]
    reader = BlockReader(lambda data: None, max_bytes=0)  # text only: nothing to read
    ours = render_conversation(conversation, config.prompt_template, reader,
                               follow_up_template=config.follow_up_template, answer_end=config.answer_end).prompt
    turns = [{"role": "user" if isinstance(m, HumanMessage) else "assistant", "content": m.text}
             for m in conversation]
    tokenizer = AutoTokenizer.from_pretrained(str(mini_parts.llm_dir))
    assert ours == tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)


def test_missing_default_weights_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "WEIGHTS_FILE", tmp_path / "none.safetensors")
    monkeypatch.delenv(registry.MODEL_ENV, raising=False)
    with pytest.raises(registry.ModelNotAvailableError, match="--model DIR"):
        registry.load_model(None)

