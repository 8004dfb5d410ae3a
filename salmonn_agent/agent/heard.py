"""Whether an action's arguments were said: a call checked against the transcript of its request.

A small model asked to act on speech sometimes invents what it should have copied: a note
nobody dictated ("buy a new phone" for "go through my notes"), a timer nobody asked for (an
hour and two minutes for "check on my timers"). A tool names the arguments that must come from
the speech in its metadata, ``heard_args`` (argument name → ``"words"`` or ``"number"``), and
the gate refuses a call where one of them is not in the transcript (:func:`unheard_argument`).

The rules, after lower-casing, dropping punctuation and writing spelled numbers as digits
(``text2num``, for "forty five" → 45):

* a ``words`` argument is heard when at least half of its words are words of the transcript;
* a ``number`` argument is heard when its value is a number of the transcript, where "a" or
  "an" count as 1, "half" as 0.5, and "and a half" adds 0.5 to the number said before it;
* an argument left out, or equal to its default, or 0, is not checked.

The check is only as good as the transcript: a word the recognizer misheard and the model
copied passes, and a note the model wrote in other words than were said may be refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from text_to_num import alpha2digit

HeardKind = Literal["words", "number"]

_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_ONE = frozenset({"a", "an"})


def transcript_words(text: str) -> list[str]:
    """``text`` lower-cased, spelled numbers as digits, split into words (punctuation dropped)."""
    return _WORD.findall(alpha2digit(text.lower(), "en", threshold=0))


def _numbers(words: list[str]) -> set[float]:
    """The numbers said in ``words`` (see the module docstring)."""
    found: set[float] = set()
    said: list[tuple[int, float]] = []  # (position, number), for "an hour and a half"
    for i, word in enumerate(words):
        try:
            value = float(word)
        except ValueError:
            if word in _ONE:
                value = 1.0
            elif word == "half":
                value = 0.5
                before = [number for at, number in said if at < i - 2]
                if before and words[max(i - 2, 0) : i] in (["and", "a"], ["and", "an"]):
                    found.add(before[-1] + 0.5)
            else:
                continue
        found.add(value)
        said.append((i, value))
    return found


def unheard_argument(
    args: Mapping[str, Any], heard_args: Mapping[str, HeardKind], transcript: str,
    defaults: Mapping[str, Any] | None = None,
) -> str | None:
    """Why a call's arguments were not all said in ``transcript`` (None when they were).

    ``heard_args`` names the arguments that must be said and how to compare them; ``defaults``
    are the arguments' defaults (an argument equal to its default is not checked).
    """
    words = transcript_words(transcript)
    vocabulary = set(words)
    numbers = _numbers(words)
    defaults = defaults or {}
    for name, kind in heard_args.items():
        value = args.get(name)
        if value is None or value == defaults.get(name):
            continue
        if kind == "number":
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue  # not a number: the schema's check refuses it
            if number != 0 and not any(abs(number - said) < 1e-9 for said in numbers):
                return f"{name}={value!r} was not said (heard: {transcript.strip()!r})"
        elif isinstance(value, str):
            own = transcript_words(value)
            if own and 2 * sum(word in vocabulary for word in own) < len(own):
                return f"{name}={value!r} is not what was said (heard: {transcript.strip()!r})"
    return None
