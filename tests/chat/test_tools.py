"""Tool calling and structured output: the prompt protocol and grammar-constrained decoding."""

from __future__ import annotations

import json
import random
import string

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from salmonn_agent.chat.errors import ToolCallError
from salmonn_agent.chat.tools import (
    ToolChoice,
    normalize_tool_choice,
    parse_tool_calls,
    render_tools,
)
from salmonn_agent.chat_model import ChatSALMONN


@tool
def get_weather(location: str, unit: str = "celsius") -> str:
    """Get the weather at a location."""
    return "sunny"


@tool
def set_alarm(hour: int, minute: int, repeat: bool) -> str:
    """Set an alarm."""
    return "ok"


@tool
def stop_music() -> str:
    """Stop the music."""
    return "stopped"


class Sound(BaseModel):
    """What was heard."""

    label: str = Field(description="what makes the sound")
    loud: bool
    sources: list[str] = Field(default_factory=list)


@pytest.fixture
def chat(tiny_model) -> ChatSALMONN:
    # the tiny model's tokenizer needs ~45 tokens for a minimal call; real ones need ~15
    return ChatSALMONN(client=tiny_model, model="tiny-salmonn", temperature=0, max_tokens=80)


def random_prompt(rng: random.Random) -> str:
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 9))) for _ in range(rng.randint(1, 12))]
    return " ".join(words) + rng.choice(["?", ".", "!", ""])


def test_forced_tool_calls_are_valid_for_20_random_prompts(chat):
    rng = random.Random(0)
    tools = [get_weather, set_alarm, stop_music]
    schemas = {t.name: t.args_schema for t in tools}
    bound = chat.bind_tools(tools, tool_choice="any")
    for _ in range(20):
        message = bound.invoke(random_prompt(rng))
        (call,) = message.tool_calls
        assert call["id"].startswith("call_") and call["type"] == "tool_call"
        schemas[call["name"]].model_validate(call["args"])  # arguments match the tool's schema
        assert set(call["args"]) <= set(schemas[call["name"]].model_fields)
        assert message.content == ""


def test_named_tool_choice_and_streamed_tool_calls(chat):
    bound = chat.bind_tools([get_weather, set_alarm], tool_choice="set_alarm")
    message = bound.invoke("wake me up")
    assert [c["name"] for c in message.tool_calls] == ["set_alarm"]
    full = None
    for chunk in bound.stream("wake me up"):
        full = chunk if full is None else full + chunk
    assert full.tool_calls[0]["name"] == "set_alarm"
    assert full.tool_calls[0]["args"] == message.tool_calls[0]["args"]
    assert full.content == ""
    no_args = chat.bind_tools([stop_music], tool_choice="required").invoke("quiet")
    assert no_args.tool_calls[0]["args"] == {}
    with pytest.raises(ValueError, match="names no bound tool"):
        chat.bind_tools([get_weather], tool_choice="nope")


def test_auto_tool_choice_leaves_plain_answers_alone(chat):
    message = chat.bind_tools([get_weather]).invoke("hello", max_tokens=8)
    assert message.tool_calls == [] and isinstance(message.content, str)


def test_too_small_a_budget_for_a_forced_call_is_a_clear_error(chat):
    with pytest.raises(ToolCallError, match="max_tokens=5"):
        chat.bind_tools([get_weather], tool_choice="any").invoke("hi", max_tokens=5)


def test_tool_results_go_back_to_the_model(chat):
    bound = chat.bind_tools([get_weather], tool_choice="any")
    call = bound.invoke("weather in Paris?")
    result = get_weather.invoke(call.tool_calls[0])
    assert isinstance(result, ToolMessage)
    follow_up = chat.bind_tools([get_weather]).invoke([HumanMessage("weather in Paris?"), call, result], max_tokens=6)
    assert isinstance(follow_up, AIMessage)


def test_protocol_text_and_parsing():
    tools = [convert_to_openai_tool(get_weather)]
    text = render_tools(tools, ToolChoice("auto"))
    first, definition, last = text.split("\n")
    assert json.loads(definition)["name"] == "get_weather"
    assert last.endswith("Otherwise answer in plain text.")
    assert 'must call the tool "get_weather"' in render_tools(tools, ToolChoice("named", "get_weather"))
    (call,) = parse_tool_calls(' {"name": "get_weather", "arguments": {"location": "Oslo"}} ', ["get_weather"])
    assert call["args"] == {"location": "Oslo"} and call["id"].startswith("call_")
    two = parse_tool_calls('[{"name": "get_weather", "arguments": {}}, {"name": "get_weather"}]', ["get_weather"])
    assert len(two) == 2 and two[0]["id"] != two[1]["id"]
    assert parse_tool_calls("It is sunny.", ["get_weather"]) is None
    assert parse_tool_calls('{"name": "other", "arguments": {}}', ["get_weather"]) is None
    assert normalize_tool_choice({"type": "function", "function": {"name": "x"}}, ["x"]) == ToolChoice("named", "x")
    assert normalize_tool_choice("required", ["x"]).forced


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output_always_validates(chat, method):
    structured = chat.with_structured_output(Sound, method=method)
    for prompt in ["what is that noise?", "describe", "x"]:
        assert isinstance(structured.invoke(prompt), Sound)
    as_dict = chat.with_structured_output(Sound.model_json_schema(), method=method).invoke("describe")
    assert {"label", "loud"} <= set(as_dict) <= {"label", "loud", "sources"}
    raw = chat.with_structured_output(Sound, method=method, include_raw=True).invoke("describe")
    assert isinstance(raw["raw"], AIMessage) and isinstance(raw["parsed"], Sound) and raw["parsing_error"] is None


def test_structured_output_streams_partial_objects(chat):
    chunks = list(chat.with_structured_output(Sound.model_json_schema()).stream("describe"))
    assert len(chunks) > 1 and {"label", "loud"} <= set(chunks[-1])
