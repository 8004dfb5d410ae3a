"""Text that follows a clip's audio tokens in the prompt: what Whisper and YAMNet heard.

Two options of ``SALMONNConfig`` add it (salmonn-mini uses both; the official models neither):
``speech_transcript`` (Whisper's own transcript, the DeSTA2 design, see
:mod:`salmonn_agent.model.transcript`) and ``sound_tags`` (YAMNet's AudioSet tags with their
scores, see :mod:`salmonn_agent.sound_tags`). The LLM reads both beside the audio tokens::

    ...<audio tokens>
    Transcript: turn on the kitchen lights
    Sounds: Speech 0.99, Music 0.12
    ...

Generation and training (``SALMONN.merge_inputs``, left- or right-padded) insert the
same tokens, from this one function. With both options, the transcript is left out when YAMNet
hears no speech (:data:`SPEECH_GATE`).
"""

from __future__ import annotations

from collections.abc import Sequence

from salmonn_agent.sound_tags import SoundTag, format_tags

NOTHING = "(no speech)"
"""What a hint line says when Whisper decoded nothing (or heard no speech: see below)."""
SPEECH_TAGS = frozenset({"Speech", "Child speech, kid speaking", "Conversation", "Narration, monologue",
                         "Speech synthesizer"})
"""YAMNet's classes of someone speaking."""
PARENT_TAGS = frozenset({"Animal", "Domestic animals, pets", "Livestock, farm animals, working animals",
                         "Wild animals", "Sound effect", "Musical instrument", "Vehicle"})
"""AudioSet parent classes that name no particular sound ("Animal" above "Cattle, bovinae"): a
hint leaves them out when a more specific tag is listed, so the first tag it shows names the sound."""
SILENCE_TAG = "Silence"
"""A clip's tags are each class's best patch score, so a sound with quiet gaps also scores
"Silence" (often first, at 0.99): a hint leaves it out when it lists anything else, so that the
first tag it shows names what was heard."""
SPEECH_GATE = 0.25
"""With tags, the transcript is shown only when a speech class is among them at this score or more.
Whisper writes words for sounds without speech ("you", "I'm going to go to the end."); YAMNet
gives speech 0.9 or more on the speech it hears and keeps it out of the top tags of such sounds."""


def hears_speech(tags: Sequence[SoundTag]) -> bool:
    """Whether YAMNet's tags of a clip pass the speech gate (:data:`SPEECH_GATE`)."""
    return any(t.label in SPEECH_TAGS and t.score >= SPEECH_GATE for t in tags)


def hint_text(transcript: str | None, tags: Sequence[SoundTag] | None) -> str:
    """The prompt text for one clip's transcript and tags ("" when the model uses neither)."""
    lines = []
    if transcript is not None:
        if tags is not None and not hears_speech(tags):
            transcript = ""
        lines.append(f"Transcript: {transcript.strip() or NOTHING}")
    if tags is not None:
        specific = [t for t in tags if t.label not in PARENT_TAGS]
        specific = [t for t in specific if t.label != SILENCE_TAG] or specific
        lines.append(f"Sounds: {format_tags(specific or list(tags))}")
    return "".join(f"\n{line}" for line in lines) + ("\n" if lines else "")
