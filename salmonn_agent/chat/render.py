"""A LangChain conversation written in SALMONN's prompt format.

With the model's template ``T`` (official: ``"USER: {}\\nASSISTANT:"``), its template for later
turns ``F`` (default ``T``), the text that closes a past answer ``E`` (default ``"\\n"``) and
the separator ``s`` before an answer (``""`` when ``T`` ends with whitespace, as a chat template
ending in a newline does, else ``" "``) a conversation renders as::

    [S + "\\n"] + T(u1) + s + a1 + E + F(u2) + s + a2 + E + ... + F(un)

so that a past answer is written as the model generated it and a later turn's prompt begins
with the earlier turn's prompt and answer (its key/value cache is reused).

* ``S`` is the system text: every ``SystemMessage`` (wherever it is) in order, joined by
  ``"\\n"``, then the tool protocol text (:mod:`salmonn_agent.chat.tools`) when tools are bound,
  separated by a blank line. No system text, no prefix.
* Messages are grouped into turns: consecutive ``HumanMessage`` / ``ToolMessage`` form one
  user turn ``u``, consecutive ``AIMessage`` one answer ``a``.
* A user turn is its clips first, each ``<Speech><SpeechHere></Speech>``, joined by spaces, in
  the order they appear, then a space and the turn's text (text blocks and tool results joined
  by ``"\\n"``, stripped). Without clips it is just the text. SALMONN was trained with the audio
  before the instruction, so a single turn with one clip is exactly the official prompt:
  ``USER: <Speech><SpeechHere></Speech> {instruction}\\nASSISTANT:``.
* An answer is the AI message's text, then its tool calls as JSON (one per line group).
  The official end symbol is not written (SentencePiece prompts would keep ``</s>`` as text); a chat
  template closes an answer with its own ``E``.
* A conversation that ends with an ``AIMessage`` ends with ``F(un) + s + an``: the model
  continues that answer (a prefill).

Each ``<SpeechHere>`` is replaced by that clip's audio tokens, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from salmonn_agent.chat.blocks import AudioClip, BlockReader
from salmonn_agent.chat.errors import ContentBlockError
from salmonn_agent.chat.tools import render_tool_calls, render_tool_result
from salmonn_agent.config import AUDIO_PLACEHOLDER, AUDIO_WRAPPER


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt string with one ``<SpeechHere>`` per clip, and the clips in order."""

    prompt: str
    clips: list[AudioClip]


@dataclass
class _Turn:
    role: str  # "user" or "assistant"
    texts: list[str] = field(default_factory=list)
    clips: list[AudioClip] = field(default_factory=list)


def render_conversation(
    messages: Sequence[BaseMessage],
    template: str,
    reader: BlockReader,
    *,
    extra_system: str | None = None,
    follow_up_template: str | None = None,
    answer_end: str = "\n",
) -> RenderedPrompt:
    """Render ``messages`` (see the module docstring) with the audio clips they carry."""
    system: list[str] = []
    turns: list[_Turn] = []
    call_names: dict[str, str] = {}
    for index, message in enumerate(messages):
        role = _role(message, index)
        if role == "system":
            parts = reader.read(message, index)
            if parts.clips:
                raise ContentBlockError(
                    f"messages[{index}] (SystemMessage) carries audio; put audio in a human message."
                )
            system.append("\n".join(parts.texts).strip())
            continue
        if not turns or turns[-1].role != role:
            turns.append(_Turn(role))
        turn = turns[-1]
        parts = reader.read(message, index)
        if role == "assistant":
            if parts.clips:
                raise ContentBlockError(
                    f"messages[{index}] (AIMessage) carries audio; SALMONN answers in text, so "
                    "audio can only come from the user or a tool."
                )
            text = "\n".join(parts.texts).strip()
            calls = getattr(message, "tool_calls", None) or []
            for call in calls:
                if call.get("id"):
                    call_names[call["id"]] = call["name"]
            pieces = [text] if text else []
            if calls:
                pieces.append(render_tool_calls(calls))
            turn.texts.append("\n".join(pieces))
        elif isinstance(message, ToolMessage):
            name = call_names.get(message.tool_call_id)
            turn.clips.extend(parts.clips)
            turn.texts.append(render_tool_result(message, name))
        else:
            turn.clips.extend(parts.clips)
            turn.texts.extend(parts.texts)
    return _assemble(system, extra_system, turns, template, follow_up_template or template, answer_end)


def _assemble(system: list[str], extra_system: str | None, turns: list[_Turn], template: str,
              follow_up: str, answer_end: str) -> RenderedPrompt:
    head = "\n".join(s for s in system if s)
    if extra_system:
        head = f"{head}\n\n{extra_system}" if head else extra_system
    out = [head + "\n"] if head else []
    clips: list[AudioClip] = []
    if not turns or turns[0].role == "assistant":
        turns.insert(0, _Turn("user"))
    separator = "" if template[-1:].isspace() else " "
    for number, turn in enumerate(turns):
        if turn.role == "user":
            _check_placeholder(turn.texts)
            out.append((template if number == 0 else follow_up).format(_user_content(turn)))
            clips.extend(turn.clips)
        else:
            answer = "\n".join(t for t in turn.texts if t)
            out.append(separator + answer)
            if number < len(turns) - 1:
                out.append(answer_end)
    return RenderedPrompt("".join(out), clips)


def _user_content(turn: _Turn) -> str:
    text = "\n".join(t.strip() for t in turn.texts if t.strip())
    if not turn.clips:
        return text
    return " ".join(AUDIO_WRAPPER for _ in turn.clips) + " " + text


def _role(message: BaseMessage, index: int) -> str:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, (HumanMessage, ToolMessage)):
        return "user"
    if isinstance(message, ChatMessage):
        mapping = {"system": "system", "assistant": "assistant", "ai": "assistant",
                   "user": "user", "human": "user", "tool": "user"}
        if message.role in mapping:
            return mapping[message.role]
    raise ContentBlockError(
        f"messages[{index}] is a {type(message).__name__} (role "
        f"{getattr(message, 'role', message.type)!r}); use system, human, ai or tool messages."
    )


def _check_placeholder(texts: list[str]) -> None:
    for text in texts:
        if AUDIO_PLACEHOLDER in text:
            raise ContentBlockError(
                f"A text block contains {AUDIO_PLACEHOLDER!r}, which marks where audio tokens go; "
                "send audio as an audio content block instead of writing the placeholder."
            )
