"""Spoken voice-assistant requests with the action each one should trigger (salmonn-mini data).

A request is a sentence to speak and its expected outcome: a tool call (``tool`` and ``args``,
for the assistant's built-in actions ``set_timer``, ``list_timers``, ``add_note`` and
``read_notes``) or a short spoken-question answer (``tool`` is ``None``). The same bank feeds
``tools/make_assistant_data.py`` (training) and ``tools/bench_agent.py`` (the replayed
conversation), so the benchmark's expectations are the ones the model was taught, on held-out
sentences: the split of a request is decided by a stable hash of its content (a timer's duration
and label, a note's text), as for the other salmonn-mini sentences.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from devkit.text_bank import SPLITS, number_words, query_bank, split_of
from salmonn_agent.registry import DEFAULT_MODEL, PROFILES

# The actions salmonn-mini was taught to call (its profile's taught_tools): its training prompts
# bind exactly these, as ``salmonn-agent assistant`` offers them to it whatever --allow says.
ASSISTANT_TOOLS = list(PROFILES[DEFAULT_MODEL].taught_tools)

TIMER_LABELS = ["pasta", "tea", "laundry", "oven", "workout", "eggs", "bread", "meeting", "pizza",
                "rice", "nap", "cookies", "coffee", "soup", "bus", "stretching"]
TIMER_MINUTES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 45]
TIMER_SECONDS = [10, 15, 20, 30, 40, 45, 50]
TIMER_NO_LABEL = ["Set a timer for {d}.", "Start a timer for {d}.", "Timer for {d}, please.",
                  "Can you set a timer for {d}?", "Remind me in {d}.", "Please start a timer for {d}."]
TIMER_WITH_LABEL = ["Set a {label} timer for {d}.", "Start a timer for {d} for the {label}.",
                    "Set a timer for {d} for my {label}.", "Please set a {label} timer for {d}."]
LIST_TIMERS = ["What timers are running?", "List my timers.", "How much time is left on my timers?",
               "Are any timers running?", "Show me my timers.", "Which timers do I have?"]
READ_NOTES = ["Read my notes.", "What is in my notes?", "Read me my notes, please.",
              "What did I write down?", "Show me my notes.", "Can you read my notes?"]
NOTE_TEMPLATES = ["Add {x} to my notes.", "Take a note: {x}.", "Note that I need to {x}.",
                  "Please write down {x}.", "Make a note to {x}.", "Put {x} on my notes."]
NOTE_VERBS = {
    "buy": ["milk", "bread", "eggs", "coffee", "apples", "rice", "batteries", "a new lamp", "flowers",
            "cheese", "soap", "tomatoes"],
    "call": ["the dentist", "my mother", "the plumber", "the bank", "my brother", "the school",
             "the doctor", "grandma"],
    "email": ["the landlord", "my manager", "the teacher", "the travel agent", "my sister"],
    "pay": ["the rent", "the electric bill", "the phone bill", "the gym", "the water bill"],
    "book": ["a table for friday", "a haircut", "the train tickets", "a hotel room", "a taxi"],
    "clean": ["the kitchen", "the garage", "the car", "the windows", "the fridge"],
    "fix": ["the bike", "the door", "the kitchen tap", "the fence", "the printer"],
    "water": ["the plants", "the garden", "the tomatoes"],
    "return": ["the library books", "the shoes", "the drill", "the rented car"],
    "check": ["the oil", "the tyres", "the mail", "the weather", "the calendar"],
}
# Note templates that take a bare noun phrase ("add milk to my notes") vs an action ("to buy milk").
_NOUN_TEMPLATES = {"Add {x} to my notes.", "Take a note: {x}.", "Please write down {x}.", "Put {x} on my notes."}


@dataclass(frozen=True)
class Request:
    """One spoken request and what the assistant should do about it."""

    text: str  # what is spoken
    tool: str | None  # the action to call, or None for a spoken question answered in words
    args: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None  # the expected words for a question (tool is None)
    key: str = ""  # the content that decides the split
    split: str = "train"

    @property
    def kind(self) -> str:
        return self.tool or "answer"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def spoken_timer_args(seconds: int, text: str, label: str | None = None) -> dict[str, Any]:
    """``set_timer``'s arguments for a duration of ``seconds`` said as in ``text``: in the units the
    speaker used, so the model copies the number it heard ("forty minutes" -> ``{"minutes": 40}``,
    "an hour and ten minutes" -> ``{"hours": 1, "minutes": 10}``, "ninety seconds" ->
    ``{"seconds": 90}``, "half an hour" -> ``{"hours": 0.5}``), then ``label`` if given."""
    said = {unit for unit in ("hour", "minute", "second") if re.search(rf"\b{unit}s?\b", text.lower())}
    if not said:
        raise ValueError(f"no duration unit (hours, minutes, seconds) in {text!r}")
    if said >= {"hour", "minute"}:
        args = {"hours": seconds // 3600, "minutes": _number((seconds % 3600) / 60)}
    elif said >= {"minute", "second"}:
        args = {"minutes": seconds // 60, "seconds": seconds % 60}
    elif "hour" in said:
        args = {"hours": _number(seconds / 3600)}
    elif "minute" in said:
        args = {"minutes": _number(seconds / 60)}
    else:
        args = {"seconds": seconds}
    return {**args, **({"label": label} if label else {})}


def _duration(value: int, unit: str) -> str:
    if value == 1:
        return f"one {unit[:-1]}"
    return f"{number_words(value)} {unit}"


def _timers() -> list[Request]:
    out = []
    for unit, values, factor in (("minutes", TIMER_MINUTES, 60), ("seconds", TIMER_SECONDS, 1)):
        for value in values:
            spoken = _duration(value, unit)
            for template in TIMER_NO_LABEL:
                key = f"timer|{value}{unit}|-|{template}"
                text = template.format(d=spoken)
                out.append(Request(text, "set_timer", spoken_timer_args(value * factor, text),
                                   key=key, split=split_of(key)))
            for label in TIMER_LABELS:
                for template in TIMER_WITH_LABEL:
                    key = f"timer|{value}{unit}|{label}"
                    text = template.format(d=spoken, label=label)
                    out.append(Request(text, "set_timer", spoken_timer_args(value * factor, text, label),
                                       key=key, split=split_of(key)))
    return out


def _notes() -> list[Request]:
    out = []
    for verb, objects in NOTE_VERBS.items():
        for obj in objects:
            action = f"{verb} {obj}"
            key = f"note|{action}"
            for template in NOTE_TEMPLATES:
                out.append(Request(template.format(x=action), "add_note", {"text": action}, key=key,
                                   split=split_of(key)))
    return out


def _fixed(templates: list[str], tool: str) -> list[Request]:
    # Few sentences: every split sees them all (the held-out part is the voice).
    return [Request(t, tool, {}, key=f"{tool}|{t}", split=s) for t in templates for s in SPLITS]


def _questions() -> list[Request]:
    return [Request(q.question, None, {}, answer=q.answer, key=q.key, split=q.split)
            for split in SPLITS for q in query_bank()[split]]


@lru_cache(maxsize=1)
def request_bank() -> dict[str, list[Request]]:
    """All requests by split, sorted by text (fixed, independent of any seed)."""
    by_split: dict[str, list[Request]] = {s: [] for s in SPLITS}
    for request in _timers() + _notes() + _fixed(LIST_TIMERS, "list_timers") + _fixed(READ_NOTES, "read_notes") + _questions():
        by_split[request.split].append(request)
    for items in by_split.values():
        items.sort(key=lambda r: (r.text, r.tool or ""))
    return by_split


# Share of each kind in the data: actions dominate, questions keep plain answers alive.
KIND_WEIGHTS = {"set_timer": 0.34, "add_note": 0.30, "list_timers": 0.08, "read_notes": 0.08, "answer": 0.20}


def sample_requests(split: str, n: int, seed: int) -> list[Request]:
    """``n`` requests of ``split`` drawn by :data:`KIND_WEIGHTS` (deterministic in ``seed``)."""
    rng = random.Random(f"{seed}|{split}")
    pools: dict[str, list[Request]] = {}
    for request in request_bank()[split]:
        pools.setdefault(request.kind, []).append(request)
    kinds = list(KIND_WEIGHTS)
    weights = [KIND_WEIGHTS[k] for k in kinds]
    out = []
    for _ in range(n):
        kind = rng.choices(kinds, weights)[0]
        pool = pools[kind]
        out.append(pool[rng.randrange(len(pool))])
    return out
