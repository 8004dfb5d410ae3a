"""Bounded conversation memory of the voice assistant.

The assistant keeps the last ``max_turns`` turns (what was heard, what the brain answered and
which tools it called). Audio is what makes prompts long, so only the newest
``keep_audio_turns`` remembered turns keep their audio; in older ones each audio block is
replaced by a short text note such as ``[audio w3, 2.1 s]``. Memory therefore holds at most
``keep_audio_turns`` clips and ``max_turns`` turns, however long the assistant runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from salmonn_agent.errors import ConfigError


class MemoryTurn(BaseModel):
    """One remembered turn: the window it answered and its messages, heard request first."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    window_id: str
    duration: float
    messages: list[BaseMessage] = Field(default_factory=list)

    @property
    def has_audio(self) -> bool:
        """Whether any message of the turn still carries an audio block."""
        return any(_has_audio(m) for m in self.messages)

    def without_audio(self) -> MemoryTurn:
        """A copy whose audio blocks are replaced by ``[audio <id>, <seconds> s]`` notes."""
        note = f"[audio {self.window_id}, {self.duration:.1f} s]"
        return self.model_copy(update={"messages": [_strip_audio(m, note) for m in self.messages]})


class ConversationMemory:
    """The last ``max_turns`` turns; only the newest ``keep_audio_turns`` keep their audio."""

    def __init__(self, max_turns: int = 6, keep_audio_turns: int = 1) -> None:
        if max_turns < 0 or keep_audio_turns < 0:
            raise ConfigError(
                f"max_turns ({max_turns}) and keep_audio_turns ({keep_audio_turns}) must be 0 or more."
            )
        self.max_turns = max_turns
        self.keep_audio_turns = keep_audio_turns
        self._turns: deque[MemoryTurn] = deque(maxlen=max_turns)

    def add(self, window_id: str, duration: float, messages: Sequence[BaseMessage]) -> None:
        """Remember a finished turn (the oldest is forgotten once ``max_turns`` are kept)."""
        if self.max_turns == 0:
            return
        self._turns.append(MemoryTurn(window_id=window_id, duration=duration, messages=list(messages)))
        # Strip as soon as a turn falls out of the audio span, so memory never holds more clips.
        for index in range(len(self._turns) - self.keep_audio_turns):
            if self._turns[index].has_audio:
                self._turns[index] = self._turns[index].without_audio()

    def messages(self) -> list[BaseMessage]:
        """The remembered turns' messages, oldest first, ready to put before a new request."""
        return [message for turn in self._turns for message in turn.messages]

    @property
    def turns(self) -> list[MemoryTurn]:
        """The remembered turns, oldest first."""
        return list(self._turns)

    def clear(self) -> None:
        """Forget everything."""
        self._turns.clear()

    def __len__(self) -> int:
        return len(self._turns)


def _has_audio(message: BaseMessage) -> bool:
    content = message.content
    return isinstance(content, list) and any(_is_audio_block(block) for block in content)


def _is_audio_block(block: object) -> bool:
    return isinstance(block, dict) and block.get("type") in ("audio", "input_audio")


def _strip_audio(message: BaseMessage, note: str) -> BaseMessage:
    """``message`` with each audio block replaced by ``note`` (plain text)."""
    if not _has_audio(message):
        return message
    parts: list[str] = []
    for block in message.content:
        if _is_audio_block(block):
            parts.append(note)
        elif isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    text = " ".join(part for part in parts if part)
    if isinstance(message, HumanMessage):
        return HumanMessage(content=text)
    return message.model_copy(update={"content": text})
