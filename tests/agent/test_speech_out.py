"""Speaking back: sentence splitting, TTS engines, the speaker and its playback reference."""

from __future__ import annotations

import asyncio
import shutil
import sys

import numpy as np
import pytest

from salmonn_agent.agent.policy import ActionOutcome
from salmonn_agent.agent.speech_out import (
    EspeakTTS,
    NullOutput,
    PlaybackReference,
    SentenceSplitter,
    Speaker,
    SpeechOutputError,
    action_report,
    load_tts,
)

SR = 16_000


def split(pieces: list[str], **kw) -> list[str]:
    splitter = SentenceSplitter(**kw)
    out = [s for piece in pieces for s in splitter.feed(piece)]
    return out + splitter.flush()


def test_sentences_come_out_as_soon_as_their_end_is_seen():
    splitter = SentenceSplitter()
    assert splitter.feed("Sure. I set") == ["Sure."]
    assert splitter.feed(" a timer for 2.5 min") == []
    assert splitter.feed("utes! Anything") == ["I set a timer for 2.5 minutes!"]
    assert splitter.flush() == ["Anything"]


def test_abbreviations_initials_and_symbols_do_not_end_a_sentence():
    text = "Dr. Smith and J. K. Rowling met at 3 p.m. on Main St. today. Done."
    assert split(list(text)) == ["Dr. Smith and J. K. Rowling met at 3 p.m. on Main St. today.", "Done."]
    assert split(["...", " ", "--"]) == []  # nothing to say


def test_a_long_sentence_is_cut_at_a_comma_but_a_short_one_is_not():
    long = "I added the note about the plumber to your list, and I will remind you tomorrow."
    assert split([long]) == ["I added the note about the plumber to your list,", "and I will remind you tomorrow."]
    assert split(["Yes, done."]) == ["Yes, done."]
    assert split([long], clause_words=None) == [long]


def test_lines_are_sentences():
    assert split(["Saved note 3\nTimer t1 set"]) == ["Saved note 3", "Timer t1 set"]


def test_action_report_says_what_actions_did():
    outcomes = [
        ActionOutcome(tool="add_note", allowed=True, reason="allowed", output="Saved note 3."),
        ActionOutcome(tool="read_notes", allowed=True, reason="allowed", output="buy milk\ncall the plumber"),
        ActionOutcome(tool="delete_notes", allowed=False, code="not_allowed", reason="not allowed"),
        ActionOutcome(tool="set_timer", allowed=True, reason="allowed", error="bad seconds"),
        ActionOutcome(tool="add_note", allowed=False, code="not_heard", reason="not heard: text='x'"),
    ]
    assert action_report(outcomes) == (
        "Saved note 3.\nbuy milk call the plumber\nI may not delete notes.\nSet timer failed.\n"
        "Sorry, I did not catch that."
    )


class ToneTTS:
    """A deterministic engine: 0.1 s of a tone per word."""

    name = "tone"
    sample_rate = 24_000

    def __init__(self) -> None:
        self.said: list[str] = []

    def synthesize(self, text: str) -> np.ndarray:
        self.said.append(text)
        n = int(0.1 * self.sample_rate) * len(text.split())
        return (0.2 * np.sin(2 * np.pi * 300 * np.arange(n) / self.sample_rate)).astype(np.float32)


async def test_the_speaker_plays_sentences_in_order_and_records_its_reference():
    played: list[np.ndarray] = []
    engine = ToneTTS()
    with Speaker(engine, output=NullOutput(24_000, realtime=False, sink=played.append), block_ms=20) as speaker:
        answer = speaker.answer()
        for piece in ["Sure. I set a ", "timer. It rings ", "at noon"]:
            answer.say(piece)
        answer.finish()
        assert await asyncio.wait_for(answer.wait(), 10) is True
        assert answer.first_audio_at is not None
    assert engine.said == ["Sure.", "I set a timer.", "It rings at noon"]
    audio = np.concatenate(played)
    assert np.count_nonzero(audio) >= int(0.1 * 24_000) * 8 * 0.99
    ref = speaker.reference
    assert ref.written >= 0.8 * SR  # 8 words of 0.1 s, at 16 kHz
    assert ref.last_sound() is not None


async def test_interrupt_stops_playback_at_once_and_the_answer_reports_it():
    engine = ToneTTS()
    blocks: list[np.ndarray] = []
    with Speaker(engine, output=NullOutput(24_000, realtime=True, sink=blocks.append), block_ms=20) as speaker:
        answer = speaker.answer()
        answer.say("one two three four five six seven eight nine ten eleven twelve.")
        answer.finish()
        while answer.first_audio_at is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert speaker.interrupt() is True
        n = len(blocks)
        assert await asyncio.wait_for(answer.wait(), 5) is False
        await asyncio.sleep(0.1)
        assert not any(np.any(b) for b in blocks[n + 1 :])  # at most the block being filled
        assert speaker.interrupt() is False  # nothing left to stop


def test_the_reference_maps_time_to_samples():
    ref = PlaybackReference(seconds=2.0)
    ref.write(np.ones(160, np.float32), at=10.0)
    ref.write(np.zeros(160, np.float32), at=10.015)  # a late callback does not move the line
    ref.write(2 * np.ones(160, np.float32), at=10.02)
    got = ref.read(10.0 - 0.005, 80 + 480)
    assert not got[:80].any() and (got[80:240] == 1).all() and not got[240:400].any() and (got[400:560] == 2).all()
    assert ref.last_sound() == pytest.approx(10.03)


def test_without_an_engine_the_error_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "hibari", None)  # import hibari fails
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SpeechOutputError, match=r"pip install \"salmonn-agent\[speak\]\".*apt-get install espeak-ng"):
        load_tts()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_ng_engine_speaks():
    audio = EspeakTTS().synthesize("Hello there.")
    assert audio.dtype == np.float32 and 0.3 * 22_050 < audio.size < 3 * 22_050
    assert np.abs(audio).max() > 0.05


def test_hibari_engine_speaks_the_same_every_time():
    pytest.importorskip("hibari")
    engine = load_tts("hibari")
    a, b = engine.synthesize("Timer set."), engine.synthesize("Timer set.")
    assert engine.sample_rate == 24_000 and a.size > 0.3 * 24_000
    np.testing.assert_array_equal(a, b)


async def test_the_assistant_says_its_answer_and_what_its_actions_did(tmp_path):
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    from salmonn_agent.agent.actions import NotesBook, notes_tools
    from salmonn_agent.agent.audio_refs import WindowStore
    from salmonn_agent.agent.policy import ActionGate, ActionPolicy, AuditLog
    from salmonn_agent.agent.runtime import AgentConfig, VoiceAgent
    from salmonn_agent.stream.windows import AudioWindow, WindowMetrics

    class Brain(FakeMessagesListChatModel):
        def bind_tools(self, tools, **kwargs):
            return self

    brain = Brain(responses=[
        AIMessage("It is sunny. Take a hat."),
        AIMessage(content="", tool_calls=[{"name": "add_note", "args": {"text": "buy milk"}, "id": "c1"}]),
    ])
    engine = ToneTTS()
    speaker = Speaker(engine, output=NullOutput(24_000, realtime=True))
    agent = VoiceAgent(brain, actions=notes_tools(NotesBook(tmp_path / "notes.txt")),
                       gate=ActionGate(ActionPolicy(allow=["add_note"]), AuditLog()), store=WindowStore(),
                       config=AgentConfig(brain_hears_audio=True), speaker=speaker)
    metrics = WindowMetrics(reason="end_of_speech", voiced_ratio=0.8, level_db=-20.0, peak_db=-6.0,
                            noise_floor_db=-60.0, snr_db=40.0)
    window = AudioWindow(np.zeros(SR, np.float32), SR, 0, SR, "speech", 0.0, 1.0, 1.6, 0, metrics)
    with speaker:
        first = await agent.handle_window(window)
        second = await agent.handle_window(window)
    assert engine.said == ["It is sunny.", "Take a hat.", "Saved note 1."]
    assert not first.cancelled and 0 < first.metrics.first_audio_ms < first.metrics.turn_ms
    assert first.metrics.turn_ms >= 600  # the turn lasts until its 6 words (0.1 s each) were played
    assert second.metrics.first_audio_ms is not None and [a.tool for a in second.actions] == ["add_note"]


async def test_a_call_written_as_text_for_a_tool_not_given_is_refused_not_spoken(tmp_path):
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    from salmonn_agent.agent.audio_refs import WindowStore
    from salmonn_agent.agent.policy import ActionGate, ActionPolicy, AuditLog
    from salmonn_agent.agent.runtime import AgentConfig, VoiceAgent
    from salmonn_agent.stream.windows import AudioWindow, WindowMetrics

    # A brain trained on tools, run with none allowed, writes the call as its answer's text
    # (streamed word by word: nothing of it may reach the speaker before it is known to be a call).
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    brain = GenericFakeChatModel(messages=iter([
        AIMessage('{"name": "set_timer", "arguments": {"minutes": 10}}'),
        AIMessage("[laughs] Ten minutes is a long time."),
    ]))
    engine = ToneTTS()
    audit = AuditLog(tmp_path / "audit.jsonl")
    agent = VoiceAgent(brain, actions=[], gate=ActionGate(ActionPolicy(), audit), store=WindowStore(),
                       config=AgentConfig(brain_hears_audio=True),
                       speaker=Speaker(engine, output=NullOutput(24_000, realtime=False)))
    metrics = WindowMetrics(reason="end_of_speech", voiced_ratio=0.8, level_db=-20.0, peak_db=-6.0,
                            noise_floor_db=-60.0, snr_db=40.0)
    window = AudioWindow(np.zeros(SR, np.float32), SR, 0, SR, "speech", 0.0, 1.0, 1.6, 0, metrics)
    with agent.speaker:
        refused = await agent.handle_window(window)
        plain = await agent.handle_window(window)
    assert [(a.tool, a.allowed, a.code) for a in refused.actions] == [("set_timer", False, "unknown_tool")]
    assert refused.answer == "" and [r.args for r in audit.records()] == [{"minutes": 10}]
    # Its JSON is not said, what happened is; an answer that only starts like JSON is said whole.
    assert engine.said == ["I may not set timer.", "[laughs] Ten minutes is a long time."]
    assert plain.actions == [] and plain.answer == "[laughs] Ten minutes is a long time."
