"""The adaptive end of a turn: does what the speaker said so far sound finished?

A fixed silence ends every request alike: long enough for "set a timer for... ten minutes", it
makes every complete request wait as long; short, it cuts the hesitating speaker off. The voice
assistant ends a turn at two points instead (``AgentConfig.end_of_turn = "adaptive"``): after
``settle_ms`` of silence when the request sounds complete, and only after
``unfinished_wait_ms`` when it trails off ("... and", "set a timer for", "um"). Whether it
sounds complete is read from Whisper's transcript of the speech so far, which a brain like
salmonn-mini reports ahead of its answer (``response_metadata["transcripts"]``): the answer
started at the pause is the one that reads it, so the judgement costs nothing extra.

The judgement: a rule on the transcript's last word (a conjunction, preposition, article,
possessive or filler) and trailing punctuation (a comma, dash or ellipsis), the default; and,
as an option with a brain built on salmonn-mini (``salmonn-agent assistant --turn-end model``),
its base chat LLM's probability that the user's message ends there (:class:`TurnEndModel`),
which also hears "Read me." or "What timers." as unfinished. The option is not the default
because salmonn-mini's Whisper tiny.en mishears synthetic voices often enough that the LLM
calls a third of their complete requests unfinished ("Start at timer 440 minutes from the clock
is."), and each of those waits the longer silence: ``tools/turn_end_threshold.py`` measures both.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from salmonn_agent.errors import ConfigError

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
_WORD = re.compile(r"[a-z0-9']+")


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


END_OF_TURN_THRESHOLD = 0.1
"""A request whose end-of-turn probability (:class:`TurnEndModel`) is below this sounds unfinished.
Chosen on the training request bank's requests as text, whole and cut in the middle (0.76 of
the cut ones held, 0.90 of the whole ones ended; ``tools/turn_end_threshold.py``), not on the
benchmark's requests."""


class TurnEndModel:
    """Whether a request sounds finished, read by a small chat LLM: the probability that the
    user's message ends right after the transcript (the chat template's end-of-turn token next),
    as LiveKit's turn detector reads it from a fine-tuned SmolLM2. ``path``: a transformers chat
    model directory (salmonn-mini's base LLM, SmolLM2-135M-Instruct: ``salmonn-agent assistant``
    builds one for a brain built on salmonn-mini), ``dtype`` its weights' (default float32).

    Whisper ends almost every transcript with a full stop, so punctuation says little; the
    words do: "Set a pasta." scores 0.05, "Set a pasta timer for nine minutes." 0.35. The word
    rule (:func:`sounds_unfinished`) is checked first and costs nothing; the model adds one
    forward pass over the chat-formatted transcript (about 40 tokens, tens of milliseconds on a
    CPU).
    """

    def __init__(self, path: str | Path, threshold: float = END_OF_TURN_THRESHOLD, dtype: Any = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        if self.tokenizer.eos_token_id is None or not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"{path} is not a chat model with an end-of-turn token: pick a chat LLM's directory.")
        self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32).eval()
        self.threshold = threshold
        self._lock = threading.Lock()

    def end_probability(self, transcript: str) -> float:
        """The probability that the speaker's turn ends after ``transcript``."""
        import torch

        ids = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": transcript.strip()}], tokenize=True, add_generation_prompt=False
        )
        ids = list(ids if isinstance(ids, list) else ids["input_ids"])
        end = self.tokenizer.eos_token_id
        if end in ids:  # keep the message open: cut at its end-of-turn token
            ids = ids[: len(ids) - 1 - ids[::-1].index(end)]
        with self._lock, torch.inference_mode():
            logits = self.model(torch.tensor([ids])).logits[0, -1].float()
        return float(torch.softmax(logits, dim=-1)[end])

    def unfinished(self, transcript: str) -> bool:
        """Whether ``transcript`` sounds unfinished: the word rule, else an end-of-turn
        probability below the threshold."""
        if not transcript.strip():
            return False
        return sounds_unfinished(transcript) or self.end_probability(transcript) < self.threshold
