"""OpenAI's chat-completions wire format ↔ ChatSALMONN's LangChain messages and answers.

Requests are validated with pydantic (known fields typed, unknown fields ignored as OpenAI's own
server ignores them); what SALMONN cannot do (``n`` > 1, audio output, log probabilities) is
refused by :func:`unsupported_options` rather than silently dropped. Responses and stream chunks
are plain dicts in OpenAI's shapes (``chat.completion`` and ``chat.completion.chunk``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, ToolCallChunk, convert_to_messages
from pydantic import BaseModel, ConfigDict, Field


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (OpenAI's fields, plus SALMONN's own)."""

    model_config = ConfigDict(extra="ignore")

    messages: list[dict[str, Any]] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    lora_scale: float | None = Field(default=None, ge=0)
    num_beams: int | None = Field(default=None, ge=1, le=8)
    repetition_penalty: float | None = Field(default=None, gt=0)


def unsupported_options(request: ChatCompletionRequest) -> str | None:
    """Why the request asks for something SALMONN does not do (None when it does not)."""
    if request.n not in (None, 1):
        return f"n={request.n} is not supported: SALMONN returns one choice; send n=1 or leave it out."
    if request.audio is not None or (request.modalities and "audio" in request.modalities):
        return "Audio output is not supported: SALMONN hears audio and answers in text; use modalities=['text']."
    if request.logprobs or request.top_logprobs:
        return "logprobs are not supported by this server; leave logprobs and top_logprobs out."
    if request.num_beams and request.num_beams > 1 and (request.tools or request.response_format):
        return "num_beams > 1 cannot be combined with tools or response_format (those decode greedily)."
    return None


def to_messages(raw: list[dict[str, Any]]) -> list[BaseMessage]:
    """OpenAI message dicts → LangChain messages (``input_audio`` parts stay audio blocks).

    Raises ``ValueError`` naming the message that cannot be read.
    """
    for index, message in enumerate(raw):
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise ValueError(
                f"messages[{index}]: role {role!r} is not supported; use system, user, assistant or tool."
            )
        if role == "tool" and not message.get("tool_call_id"):
            raise ValueError(f"messages[{index}]: a tool message needs its tool_call_id.")
        if role == "developer":
            raise ValueError(f"messages[{index}]: send the developer message with role 'system'.")
        if message.get("content") is None and not message.get("tool_calls"):
            if role != "assistant":
                raise ValueError(f"messages[{index}] ({role}) has no content.")
        if isinstance(message.get("content"), list):
            for number, part in enumerate(message["content"]):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind not in ("text", "input_audio"):
                    raise ValueError(
                        f"messages[{index}].content[{number}]: part type {kind!r} is not supported; "
                        "send 'text' parts and 'input_audio' parts ({'data': base64, 'format': 'wav'})."
                    )
    cleaned = [{k: v for k, v in m.items() if v is not None or k == "content"} for m in raw]
    for message in cleaned:
        if message.get("content") is None:
            message["content"] = ""
    try:
        return convert_to_messages(cleaned)
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"messages could not be read: {err}") from None


def response_format_binding(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI's ``response_format`` → ChatSALMONN's (``{"type", "schema"}``)."""
    if not response_format or response_format.get("type") == "text":
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise ValueError("response_format.json_schema.schema must be a JSON schema object.")
        return {"type": "json_schema", "schema": schema}
    raise ValueError(f"response_format type {kind!r} is not supported; use text, json_object or json_schema.")


def new_completion_id() -> str:
    """An id in OpenAI's style (``chatcmpl-`` and 24 hex digits)."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(message: AIMessage) -> dict[str, Any]:
    """OpenAI's ``usage`` object of an answer, audio tokens and cached prompt tokens included."""
    meta = message.usage_metadata or {}
    details = meta.get("input_token_details") or {}
    return {
        "prompt_tokens": int(meta.get("input_tokens", 0)),
        "completion_tokens": int(meta.get("output_tokens", 0)),
        "total_tokens": int(meta.get("total_tokens", 0)),
        "prompt_tokens_details": {"audio_tokens": int(details.get("audio", 0)),
                                  "cached_tokens": int(details.get("cache_read", 0))},
    }


def tool_calls(message: AIMessage) -> list[dict[str, Any]]:
    """The answer's tool calls in OpenAI's shape (arguments as a JSON string)."""
    return [
        {"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
         "function": {"name": call["name"], "arguments": json.dumps(call["args"], ensure_ascii=False)}}
        for call in message.tool_calls
    ]


def tool_call_deltas(chunks: list[ToolCallChunk]) -> list[dict[str, Any]]:
    """LangChain tool-call chunks as OpenAI's streamed ``delta.tool_calls``: the id, type and
    name with a call's first delta, then pieces of its JSON ``arguments`` string."""
    deltas = []
    for piece in chunks:
        delta: dict[str, Any] = {"index": piece.get("index") or 0}
        if piece.get("id"):
            delta.update(id=piece["id"], type="function")
        function = {key: piece[name] for key, name in (("name", "name"), ("arguments", "args")) if piece.get(name)}
        if function:
            delta["function"] = function
        if len(delta) > 1:  # a chunk with nothing new (the end of a call) adds no delta
            deltas.append(delta)
    return deltas


FinishReason = Literal["stop", "length", "tool_calls"]


def finish_reason(message: AIMessage) -> FinishReason:
    """OpenAI's finish reason of an answer."""
    if message.tool_calls:
        return "tool_calls"
    return "length" if (message.response_metadata or {}).get("finish_reason") == "length" else "stop"


def completion(message: AIMessage, model: str) -> dict[str, Any]:
    """A whole ``chat.completion`` response."""
    calls = tool_calls(message)
    body: dict[str, Any] = {"role": "assistant", "content": None if calls else str(message.content)}
    if calls:
        body["tool_calls"] = calls
    return {
        "id": new_completion_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": body, "finish_reason": finish_reason(message), "logprobs": None}],
        "usage": usage(message),
    }


def chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None,
          usage_body: dict[str, Any] | None = None, with_choice: bool = True) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a streamed answer."""
    body: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                            "model": model, "choices": []}
    if with_choice:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    if usage_body is not None:
        body["usage"] = usage_body
    return body


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
