"""Sound watch: "tell me when you hear an alarm / a baby crying / glass breaking".

:class:`SoundWatch` asks a chat model that hears (``ChatSALMONN``) one yes/no question per
target about each sound window; the questions of one window run concurrently (ChatSALMONN
batches them and encodes the audio once). One question per target, rather than one listing
them all, keeps every answer a plain yes or no that a small model gets right and that parses
without ambiguity: the answer counts as *yes* only when its first word is "yes"; anything else
(no, maybe, a description) is *no*.

Detections are debounced per target: a detection less than ``cooldown_s`` (stream time) after
the end of the previous detection of the same target belongs to the same event, so an alarm
that rings through five windows fires once. Each new event calls ``on_detect`` and, when an
action is configured, runs it through its :class:`~salmonn_agent.agent.policy.ActionGate`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import BaseModel

from salmonn_agent.agent.policy import ActionGate, ActionOutcome, ActionRequest
from salmonn_agent.chat.messages import audio_message
from salmonn_agent.errors import ConfigError
from salmonn_agent.stream.windows import AudioWindow

logger = logging.getLogger(__name__)

DEFAULT_QUESTION = "Is there {target} in this audio? Answer yes or no."
_FIRST_WORD = re.compile(r"[A-Za-z]+")


class Detection(BaseModel):
    """The model said yes: ``target`` is in ``window`` (its summary), at stream ``time`` (s).

    ``new_event`` is True for the first detection of an event (the one that fires ``on_detect``
    and the action); ``action`` is the action's outcome then.
    """

    target: str
    window: dict[str, Any]
    answer: str
    time: float
    new_event: bool
    action: ActionOutcome | None = None


def is_yes(answer: str) -> bool:
    """Whether an answer's first word is "yes" (any case, any punctuation around it)."""
    match = _FIRST_WORD.search(answer)
    return match is not None and match.group(0).lower() == "yes"


def window_summary(window: AudioWindow, window_id: str | None = None) -> dict[str, Any]:
    """``{"id", "index", "kind", "start", "end", "duration"}`` of a window, for logs and the audit
    (the fields of :meth:`WindowStore.summary`, without needing the window to be kept)."""
    return {
        "id": window_id, "index": window.index, "kind": window.kind,
        "start": round(window.start, 3), "end": round(window.end, 3), "duration": round(window.duration, 3),
    }


def default_action_args(tool: BaseTool) -> Callable[[Detection], dict[str, Any]]:
    """How a detection becomes ``tool``'s arguments: ``event``/``details`` or ``text`` fields.

    Raises :class:`ConfigError` for a tool with neither (pass ``action_args`` for those).
    """
    fields = set(tool.args)

    def details(d: Detection) -> str:
        where = d.window.get("id") or f"#{d.window.get('index')}"
        return f"Heard {d.target} in window {where} at {d.time:.1f} s (the model answered {d.answer!r})."

    if "event" in fields:
        return lambda d: {"event": f"heard: {d.target}"[:200], "details": details(d)}
    if "text" in fields:
        return lambda d: {"text": details(d)}
    raise ConfigError(
        f"The watch action {tool.name!r} takes {sorted(fields) or 'no arguments'}; the sound watch "
        "fills 'event'/'details' (send_webhook, emit_event) or 'text' (add_note). Pick one of "
        "those tools, or pass action_args=... to build its arguments."
    )


class SoundWatch:
    """Asks ``chat`` about each sound window and fires once per detected event.

    ``chat``: a chat model that hears audio content blocks (ChatSALMONN; bind a small
    ``max_tokens``, the answer is one word). ``targets``: what to listen for, phrased to fit
    ``question_template`` (``"an alarm"``, ``"a baby crying"``). ``action``: a tool and the
    gate it must pass (the gate's policy must allow it), run once per event.
    """

    def __init__(
        self,
        chat: Runnable[Any, BaseMessage],
        targets: Sequence[str],
        *,
        on_detect: Callable[[Detection], None] | None = None,
        action: tuple[BaseTool, ActionGate] | None = None,
        cooldown_s: float = 10.0,
        question_template: str = DEFAULT_QUESTION,
        action_args: Callable[[Detection], dict[str, Any]] | None = None,
    ) -> None:
        cleaned = [t.strip() for t in targets if t and t.strip()]
        if not cleaned:
            raise ConfigError("The sound watch needs at least one target, e.g. 'an alarm'.")
        if "{target}" not in question_template:
            raise ConfigError(
                f"question_template {question_template!r} has no '{{target}}' placeholder: write "
                "it like 'Is there {target} in this audio? Answer yes or no.'"
            )
        if cooldown_s < 0:
            raise ConfigError(f"cooldown_s must be 0 or more seconds, got {cooldown_s}.")
        self.chat = chat
        self.targets = list(dict.fromkeys(cleaned))
        self.on_detect = on_detect
        self.action = action
        self.cooldown_s = cooldown_s
        self.question_template = question_template
        self.action_args = action_args or (default_action_args(action[0]) if action else None)
        self._last_end: dict[str, float] = {}

    def question(self, target: str) -> str:
        """The question asked about ``target``."""
        return self.question_template.format(target=target)

    async def check(
        self, window: AudioWindow, window_id: str | None = None, summary: dict[str, Any] | None = None
    ) -> list[Detection]:
        """Ask about every target in ``window``; returns the yes answers (new events fired)."""
        answers = await asyncio.gather(*(self._ask(window, target) for target in self.targets))
        info = summary or window_summary(window, window_id)
        detections = []
        for target, answer in zip(self.targets, answers):
            if not is_yes(answer):
                continue
            last_end = self._last_end.get(target)
            new_event = last_end is None or window.event_start - last_end >= self.cooldown_s
            self._last_end[target] = max(window.event_end, last_end or window.event_end)
            detection = Detection(
                target=target, window=info, answer=answer, time=round(window.event_start, 3),
                new_event=new_event,
            )
            if new_event:
                detection = await self._fire(detection)
            detections.append(detection)
        return detections

    def reset(self) -> None:
        """Forget past detections (the next one of each target is a new event)."""
        self._last_end.clear()

    async def _ask(self, window: AudioWindow, target: str) -> str:
        message = await self.chat.ainvoke([audio_message(window, self.question(target))])
        return _text(message)

    async def _fire(self, detection: Detection) -> Detection:
        if self.action is not None and self.action_args is not None:
            tool, gate = self.action
            request = ActionRequest(
                tool=tool.name, args=self.action_args(detection), window=detection.window,
                heard=f"{detection.target}: {detection.answer}",
            )
            outcome = await asyncio.to_thread(gate.execute, tool, request)
            detection = detection.model_copy(update={"action": outcome})
        if self.on_detect is not None:
            try:
                self.on_detect(detection)
            except Exception:  # a broken callback must not stop the watch
                logger.exception("on_detect failed for %s", detection.target)
        return detection


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content.strip()
    parts = [b if isinstance(b, str) else str(b.get("text", "")) for b in content
             if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")]
    return "".join(parts).strip()
