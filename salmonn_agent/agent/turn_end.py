"""The adaptive end of a turn: does what the speaker said so far sound finished?

A fixed silence ends every request alike: long enough for "set a timer for... ten minutes", it
makes every complete request wait as long; short, it cuts the hesitating speaker off. The voice
assistant ends a turn at two points instead (``AgentConfig.end_of_turn = "adaptive"``): after
``settle_ms`` of silence when the request sounds complete, and only after
``unfinished_wait_ms`` when it trails off ("... and", "set a timer for", "um"). Whether it
sounds complete is read from Whisper's transcript of the speech so far, which a brain like
salmonn-mini reports ahead of its answer (``response_metadata["transcripts"]``): the answer
started at the pause is the one that reads it, so the judgement costs nothing extra.

The judgement is a rule on the transcript's last word (a conjunction, preposition, article,
possessive or filler) and trailing punctuation (a comma, dash or ellipsis). Turn-detector
models (LiveKit's) do this with a language model over the transcript; this rule needs none and
errs towards "complete", which ends the turn as the fixed wait did.
"""

from __future__ import annotations

import re

CONTINUATION_WORDS = frozenset({
    # conjunctions
    "and", "or", "but", "so", "because", "then", "if", "when", "while", "than", "unless", "until",
    # prepositions
    "to", "for", "of", "with", "at", "in", "on", "from", "by", "about", "into", "onto", "after",
    "before", "called", "named",
    # articles, possessives and other words a noun must follow
    "a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "some", "every",
    # fillers
    "um", "uh", "er", "erm", "hmm", "mm", "like",
})
"""Last words after which a request is not finished."""

_TRAILING_MARKS = (",", "...", "\u2026", "-", "\u2014", ":", ";")
_WORD = re.compile(r"[a-z']+")


def sounds_unfinished(transcript: str | None) -> bool:
    """Whether ``transcript`` (what was said so far) trails off: its last word is one that must
    be followed (:data:`CONTINUATION_WORDS`) or it ends in a comma, dash or ellipsis. An empty
    or unknown transcript is not unfinished."""
    text = (transcript or "").strip()
    if not text:
        return False
    if text.endswith(_TRAILING_MARKS):
        return True
    words = _WORD.findall(text.lower())
    return bool(words) and words[-1] in CONTINUATION_WORDS
