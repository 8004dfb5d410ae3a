"""The tool-calling prompt protocol: tools in the system prompt, calls as JSON answers.

SALMONN was not trained with a tool format, so the protocol is written out in plain text:

1. **Tools** are rendered into the system prompt (after the user's own system text)::

       You can call tools. Each tool is one JSON line: name, description, parameters (JSON schema).
       {"name": "get_weather", "description": "Get the weather.", "parameters": {...}}
       To call a tool, answer with only a JSON object: {"name": "<tool name>", "arguments": {...}}.
       Otherwise answer in plain text.

   With a forced ``tool_choice`` the last line says which tool(s) the answer must call instead.
2. **The answer** is parsed as a tool call when, stripped, it is a JSON object
   ``{"name": ..., "arguments": {...}}`` naming a bound tool (or a JSON list of such objects).
   Each call gets an id ``call_<24 hex>``. With a forced ``tool_choice`` the answer is decoded
   under a JSON grammar (:mod:`salmonn_agent.chat.grammar`), so it is always a valid call.
3. **Earlier calls** (``AIMessage.tool_calls``) are rendered back as the assistant's answer in
   the same JSON form (several calls as a JSON list), after any text the message had.
4. **Tool results** (``ToolMessage``) go in the next user turn, one line each:
   ``Tool result (get_weather, id call_…): It's sunny.`` — or ``Tool error (…): …`` when the
   message has ``status="error"``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.messages.tool import tool_call as make_tool_call

ToolChoiceMode = Literal["auto", "none", "any", "named"]


@dataclass(frozen=True)
class ToolChoice:
    """A normalised ``tool_choice``: ``auto`` (may call), ``none``, ``any`` (must call one), or ``named``."""

    mode: ToolChoiceMode = "auto"
    name: str | None = None

    @property
    def forced(self) -> bool:
        """Whether the answer must be a tool call (decoded under a grammar)."""
        return self.mode in ("any", "named")


def normalize_tool_choice(choice: Any, tool_names: Sequence[str]) -> ToolChoice:
    """Read LangChain's/OpenAI's ``tool_choice`` spellings into a :class:`ToolChoice`."""
    if choice is None or choice == "auto" or choice is False:
        return ToolChoice("auto")
    if choice == "none":
        return ToolChoice("none")
    if choice in ("any", "required") or choice is True:
        return ToolChoice("any")
    name: Any = None
    if isinstance(choice, str):
        name = choice
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
    if not isinstance(name, str) or name not in tool_names:
        raise ValueError(
            f"tool_choice={choice!r} names no bound tool; bound tools: {list(tool_names)}. Use "
            "'auto', 'none', 'any' / 'required', or one of the tool names."
        )
    return ToolChoice("named", name)


def tool_definitions(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{"name", "description", "parameters"}`` of OpenAI-format tools (``convert_to_openai_tool``)."""
    out = []
    for tool in tools:
        function = tool.get("function", tool)
        out.append({
            "name": function["name"],
            "description": function.get("description", ""),
            "parameters": function.get("parameters") or {"type": "object", "properties": {}},
        })
    return out


def render_tools(tools: Sequence[dict[str, Any]], choice: ToolChoice) -> str:
    """The system-prompt text that describes the tools and how to call them."""
    lines = ["You can call tools. Each tool is one JSON line: name, description, parameters (JSON schema)."]
    lines += [_dumps(definition) for definition in tool_definitions(tools)]
    call = 'To call a tool, answer with only a JSON object: {"name": "<tool name>", "arguments": {...}}.'
    if choice.mode == "named":
        lines.append(f'{call} You must call the tool "{choice.name}".')
    elif choice.mode == "any":
        lines.append(f"{call} You must call one of these tools.")
    else:
        lines.append(f"{call} Otherwise answer in plain text.")
    return "\n".join(lines)


def render_tool_calls(calls: Sequence[ToolCall]) -> str:
    """Earlier tool calls as the assistant wrote them: one JSON object, or a JSON list."""
    objects = [{"name": c["name"], "arguments": c.get("args") or {}} for c in calls]
    return _dumps(objects[0] if len(objects) == 1 else objects)


def render_tool_result(message: ToolMessage, name: str | None) -> str:
    """A tool result line for the user turn that follows the call."""
    label = "Tool error" if getattr(message, "status", "success") == "error" else "Tool result"
    text = message.text if not isinstance(message.content, str) else message.content
    who = ", ".join(part for part in (name or message.name, f"id {message.tool_call_id}") if part)
    return f"{label} ({who}): {text.strip()}"


def parse_tool_calls(text: str, tool_names: Sequence[str] | None) -> list[ToolCall] | None:
    """Tool calls in an answer that follows the protocol, or ``None`` if it is plain text (or
    names a tool outside ``tool_names``; ``None`` accepts any name)."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or (tool_names is not None and name not in tool_names):
            return None
        arguments = item.get("arguments", {})
        if not isinstance(arguments, dict):
            return None
        calls.append(make_tool_call(name=item["name"], args=arguments, id=new_call_id()))
    return calls or None


def call_parts(text: str) -> tuple[str | None, str | None]:
    """The parts of one call object ``{"name": ..., "arguments": {...}}`` that ``text`` (the
    answer so far, maybe cut anywhere) already holds: the name once its string is complete, and
    the raw JSON text of the arguments object so far (None until it starts).

    The arguments' text only grows as ``text`` does, so it streams as string deltas.
    """
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return None, None
    offset = len(text) - len(stripped)
    depth, in_string, escaped = 0, False, False
    expecting, key, string_start = "key", None, 0
    name: str | None = None
    args_start: int | None = None
    args_end: int | None = None
    for pos in range(offset, len(text)):
        char = text[pos]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                if depth == 1:
                    value = _loads_string(text[string_start : pos + 1])
                    if expecting == "key":
                        key, expecting = value, "colon"
                    elif expecting == "value":
                        if key == "name":
                            name = value
                        expecting = "comma"
            continue
        if char == '"':
            in_string, string_start = True, pos
        elif char in "{[":
            if depth == 1 and expecting == "value" and key == "arguments" and char == "{":
                args_start = pos
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 1 and expecting == "value":
                if key == "arguments" and args_start is not None and args_end is None:
                    args_end = pos + 1
                expecting = "comma"
            if depth <= 0:
                break
        elif depth == 1:
            if char == ":" and expecting == "colon":
                expecting = "value"
            elif char == ",":
                expecting = "key"
    args = None if args_start is None else text[args_start : args_end if args_end is not None else len(text)]
    return name, args


def _loads_string(literal: str) -> str | None:
    try:
        value = json.loads(literal)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, str) else None


def new_call_id() -> str:
    """A fresh tool-call id (``call_`` and 24 hex digits)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def call_schema(tools: Sequence[dict[str, Any]], choice: ToolChoice) -> dict[str, Any]:
    """JSON schema of a valid answer under a forced ``choice``: one call of an allowed tool."""
    options = []
    defs: dict[str, dict[str, Any]] = {"$defs": {}, "definitions": {}}
    for definition in tool_definitions(tools):
        if choice.mode == "named" and definition["name"] != choice.name:
            continue
        parameters = dict(definition["parameters"])
        for section in defs:  # references stay valid: they are resolved from the root
            defs[section].update(parameters.pop(section, {}))
        parameters.setdefault("type", "object")
        options.append({
            "type": "object",
            "properties": {"name": {"const": definition["name"]}, "arguments": parameters},
            "required": ["name", "arguments"],
        })
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    return {**schema, **{section: d for section, d in defs.items() if d}}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
