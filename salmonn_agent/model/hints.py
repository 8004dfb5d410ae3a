"""Text that follows a clip's audio tokens in the prompt: what Whisper and YAMNet heard.

Two options of ``SALMONNConfig`` add it (salmonn-mini uses both; the official models neither):
``speech_transcript`` (Whisper's own transcript, the DeSTA2 design, see
:mod:`salmonn_agent.model.transcript`) and ``sound_tags`` (YAMNet's AudioSet tags with their
scores, see :mod:`salmonn_agent.sound_tags`). The LLM reads both beside the audio tokens::

    ...<audio tokens>
    Transcript: turn on the kitchen lights
    Sounds: Speech 0.99, Music 0.12
    ...

Generation (``SALMONN.embed_prompts``) and training (``training.loss.build_inputs``) insert the
same tokens, from this one function.
"""

from __future__ import annotations

from collections.abc import Sequence

from salmonn_agent.sound_tags import SoundTag, format_tags

NOTHING = "-"
"""What a hint line says when Whisper decoded nothing."""


def hint_text(transcript: str | None, tags: Sequence[SoundTag] | None) -> str:
    """The prompt text for one clip's transcript and tags ("" when the model uses neither)."""
    lines = []
    if transcript is not None:
        lines.append(f"Transcript: {transcript.strip() or NOTHING}")
    if tags is not None:
        lines.append(f"Sounds: {format_tags(list(tags))}")
    return "".join(f"\n{line}" for line in lines) + ("\n" if lines else "")
