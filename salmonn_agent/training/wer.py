"""The form of a transcript that word error rates are measured on.

Training validation scores ``asr*`` answers in this form, and salmonn-mini's data labels are
written in it (``tools/make_mini_data.py``), so both agree on what counts as a word error.
"""

from __future__ import annotations

import re


def normalize_transcript(text: str) -> str:
    """Lower case; punctuation except ``'`` becomes a space; whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())
