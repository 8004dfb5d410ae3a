"""Sound watch: "tell me when you hear an alarm / a baby crying / glass breaking".

:class:`SoundWatch` asks a chat model that hears (``ChatSALMONN``) one yes/no question per
target about each sound window; the questions of one window run concurrently (ChatSALMONN
batches them and encodes the audio once). One question per target, rather than one listing
them all, keeps every answer a plain yes or no that a small model gets right and that parses
without ambiguity: the answer counts as *yes* only when its first word is "yes"; anything else
(no, maybe, a description) is *no*.

When the front-end labelled the window (``AudioWindow.tags``, YAMNet's AudioSet classes), a
target is decided from the labels without a model call where they are clear: a matching label
scoring ``tag_yes`` or more is a detection; no matching label over ``tag_no`` while the window
has a confident label of something else is a *no*. Only the uncertain cases reach the model.
A target matches the labels named for its words in :data:`TARGET_LABELS` ("dog" -> Dog, Bark,
...) and any label that contains one of its words (``target_labels`` adds or overrides).

Detections are debounced per target: a detection less than ``cooldown_s`` (stream time) after
the end of the previous detection of the same target belongs to the same event, so an alarm
that rings through five windows fires once. Each new event calls ``on_detect`` and, when an
action is configured, runs it through its :class:`~salmonn_agent.agent.policy.ActionGate`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import BaseModel

from salmonn_agent.agent.audio_refs import window_summary
from salmonn_agent.agent.policy import ActionGate, ActionOutcome, ActionRequest
from salmonn_agent.chat.messages import audio_message
from salmonn_agent.errors import ConfigError
from salmonn_agent.stream.windows import AudioWindow

logger = logging.getLogger(__name__)

DEFAULT_QUESTION = "Is there {target} in this audio? Answer yes or no."
TARGET_LABELS: dict[str, tuple[str, ...]] = {
    "dog": ("Dog", "Bark", "Yip", "Howl", "Bow-wow", "Growling", "Whimper (dog)"),
    "bark": ("Dog", "Bark", "Yip", "Bow-wow"),
    "cat": ("Cat", "Meow", "Purr", "Hiss", "Caterwaul"),
    "alarm": ("Alarm", "Alarm clock", "Smoke detector, smoke alarm", "Fire alarm", "Siren",
              "Buzzer", "Car alarm", "Civil defense siren"),
    "siren": ("Siren", "Civil defense siren", "Police car (siren)", "Ambulance (siren)",
              "Fire engine, fire truck (siren)"),
    "smoke": ("Smoke detector, smoke alarm", "Fire alarm"),
    "glass": ("Glass", "Shatter", "Chink, clink", "Breaking"),
    "baby": ("Baby cry, infant cry", "Baby laughter"),
    "crying": ("Crying, sobbing", "Baby cry, infant cry"),
    "doorbell": ("Doorbell", "Ding-dong"),
    "knock": ("Knock", "Tap"),
    "knocking": ("Knock", "Tap"),
    "phone": ("Telephone", "Telephone bell ringing", "Ringtone", "Telephone dialing, DTMF"),
    "ringing": ("Telephone bell ringing", "Ringtone", "Bell", "Doorbell"),
    "beep": ("Beep, bleep", "Buzzer"),
    "water": ("Water", "Water tap, faucet", "Pour", "Drip", "Liquid"),
    "gunshot": ("Gunshot, gunfire", "Machine gun", "Cap gun"),
}
"""AudioSet labels that stand for a target's word (lower case) in :class:`SoundWatch`."""
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
    source: Literal["model", "tags"] = "model"
    """Who decided: the chat model, or the window's AudioSet tags alone (no model call)."""


def is_yes(answer: str) -> bool:
    """Whether an answer's first word is "yes" (any case, any punctuation around it)."""
    match = _FIRST_WORD.search(answer)
    return match is not None and match.group(0).lower() == "yes"


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
        use_tags: bool = True,
        tag_yes: float = 0.5,
        tag_no: float = 0.15,
        target_labels: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``use_tags``: decide from the window's AudioSet tags when they are clear (see the
        module docstring): a matching tag at ``tag_yes`` or more is a yes, none above ``tag_no``
        (while another tag reaches ``tag_yes``) a no; ``target_labels`` maps a target (or one
        of its words) to AudioSet labels, beside :data:`TARGET_LABELS`."""
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
        if not 0.0 <= tag_no < tag_yes <= 1.0:
            raise ConfigError(f"Need 0 <= tag_no < tag_yes <= 1, got tag_no={tag_no}, tag_yes={tag_yes}.")
        self.chat = chat
        self.targets = list(dict.fromkeys(cleaned))
        self.on_detect = on_detect
        self.action = action
        self.cooldown_s = cooldown_s
        self.question_template = question_template
        self.action_args = action_args or (default_action_args(action[0]) if action else None)
        self.use_tags = use_tags
        self.tag_yes = tag_yes
        self.tag_no = tag_no
        self.target_labels = {k.lower(): tuple(v) for k, v in (target_labels or {}).items()}
        self.model_calls = 0
        """Questions asked to the chat model so far (the tags answer the others)."""
        self._last_end: dict[str, float] = {}

    def labels_for(self, target: str) -> tuple[set[str], list[str]]:
        """(AudioSet labels named for ``target``, its words of 3+ letters that a label may contain)."""
        words = [w for w in re.findall(r"[a-z]+", target.lower()) if len(w) >= 3]
        named: set[str] = set(self.target_labels.get(target.lower(), ()))
        for word in words:
            named.update(self.target_labels.get(word, TARGET_LABELS.get(word, ())))
        return named, [w for w in words if w not in {"the", "and", "some", "sound", "noise"}]

    def tag_answer(self, window: AudioWindow, target: str) -> str | None:
        """The tags' answer for ``target`` ("yes: Dog 0.91" / "no: ...") or None (uncertain,
        or no tags): then the model is asked."""
        if not self.use_tags or not window.tags:
            return None
        named, words = self.labels_for(target)
        matching = [t for t in window.tags
                    if t.label in named or any(w in t.label.lower() for w in words)]
        best = max((t.score for t in matching), default=0.0)
        top = max(window.tags, key=lambda t: t.score)
        if best >= self.tag_yes:
            hit = max(matching, key=lambda t: t.score)
            return f"yes: tagged {hit.label} {hit.score:.2f}"
        if best < self.tag_no and top.score >= self.tag_yes:
            return f"no: tagged {top.label} {top.score:.2f}"
        return None

    def question(self, target: str) -> str:
        """The question asked about ``target``."""
        return self.question_template.format(target=target)

    async def check(
        self, window: AudioWindow, window_id: str | None = None, summary: dict[str, Any] | None = None
    ) -> list[Detection]:
        """Ask about every target in ``window``; returns the yes answers (new events fired)."""
        from_tags = {t: self.tag_answer(window, t) for t in self.targets}
        ask = [t for t in self.targets if from_tags[t] is None]
        asked = await asyncio.gather(*(self._ask(window, target) for target in ask))
        self.model_calls += len(ask)
        answers = {**{t: a for t, a in from_tags.items() if a is not None}, **dict(zip(ask, asked))}
        info = summary or window_summary(window, window_id)
        detections = []
        for target in self.targets:
            answer = answers[target]
            if not is_yes(answer):
                continue
            last_end = self._last_end.get(target)
            new_event = last_end is None or window.event_start - last_end >= self.cooldown_s
            self._last_end[target] = max(window.event_end, last_end or window.event_end)
            detection = Detection(
                target=target, window=info, answer=answer, time=round(window.event_start, 3),
                new_event=new_event, source="model" if target in ask else "tags",
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
