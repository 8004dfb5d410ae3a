"""Answers started at a pause: the front-end's ``pause`` windows and the runtime's held answers."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from langchain_core.messages import AIMessage

from salmonn_agent.agent.actions import notes_tools
from salmonn_agent.agent.audio_refs import WindowStore
from salmonn_agent.agent.policy import ActionGate, ActionPolicy, AuditLog
from salmonn_agent.agent.runtime import AgentConfig, VoiceAgent
from salmonn_agent.stream.config import SegmenterConfig
from salmonn_agent.stream.segmenter import segment
from salmonn_agent.stream.windows import AudioWindow
from tests.agent.test_runtime import Feed, ScriptedBrain, agent_for, book, call, tone_window  # noqa: F401

SR = 16_000


def utterance(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced-sounding signal (a 150 Hz buzz with harmonics, gently modulated) webrtcvad calls speech."""
    t = np.arange(int(seconds * SR)) / SR
    buzz = sum(np.sin(2 * np.pi * 150 * k * t + rng.uniform(0, 6)) / k for k in range(1, 12))
    return (0.05 * buzz * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)


def scene(*parts: float) -> np.ndarray:
    """Alternating silence and speech lengths in seconds, starting and ending with silence."""
    rng = np.random.default_rng(0)
    pieces = [
        utterance(s, rng) if i % 2 else np.zeros(int(s * SR), dtype=np.float32) for i, s in enumerate(parts)
    ]
    return np.concatenate(pieces) + rng.normal(0, 1e-4, sum(p.size for p in pieces)).astype(np.float32)


CONFIG = SegmenterConfig.webrtcvad_only(pause_ms=250)


def test_a_pause_window_previews_the_speech_window_with_the_same_samples():
    windows = segment(scene(0.5, 1.2, 1.5), CONFIG)
    assert [w.kind for w in windows] == ["pause", "speech"]
    pause, speech = windows
    assert np.array_equal(pause.samples, speech.samples)
    assert (pause.start_sample, pause.end_sample, pause.index) == (speech.start_sample, speech.end_sample, speech.index)
    assert (pause.event_start, pause.event_end) == (speech.event_start, speech.event_end)
    # it comes hangover - pause earlier
    assert speech.emitted_at - pause.emitted_at == pytest.approx((600 - 250) / 1000, abs=0.031)


def test_speech_that_goes_on_after_a_pause_ends_in_one_longer_window():
    windows = segment(scene(0.5, 1.0, 0.4, 1.0, 1.5), CONFIG)
    kinds = [w.kind for w in windows]
    assert kinds == ["pause", "pause", "speech"]
    first, _, speech = windows
    assert speech.event_end > first.event_end + 1.0  # the speech window holds both parts
    assert speech.index == first.index  # a preview, not a window of its own
    without = segment(scene(0.5, 1.0, 0.4, 1.0, 1.5), SegmenterConfig.webrtcvad_only())
    assert [w.kind for w in without] == ["speech"]


@pytest.mark.parametrize("pause_ms", [100, 600, 900])
def test_a_pause_must_fit_between_the_post_roll_and_the_hangover(pause_ms):
    with pytest.raises(ValidationError, match="pause_ms"):
        SegmenterConfig(pause_ms=pause_ms)


def pause_of(window: AudioWindow, head_start_s: float = 0.35) -> AudioWindow:
    return dataclasses.replace(window, kind="pause", emitted_at=window.emitted_at - head_start_s)


def paused_then_ended(book: Any) -> tuple[AuditLog, ScriptedBrain, Any, Feed]:
    """An assistant whose brain adds a note, fed a pause window and then its speech window."""
    audit = AuditLog()
    brain = ScriptedBrain(responses=[call("add_note", text="buy eggs")])
    agent = agent_for(brain, book, audit, allow=["add_note"], brain_hears_audio=True)
    speech = tone_window(1.0, start=2.0)
    feed = Feed()
    for window in (pause_of(speech), speech, None):
        feed.queue.put_nowait(window)
    return audit, brain, agent, feed


async def test_the_speech_window_takes_over_the_answer_started_at_its_pause(book):
    audit, brain, agent, feed = paused_then_ended(book)

    [result] = await agent.process(feed)

    assert len(brain.seen) == 1  # generated once, at the pause
    assert [r.args for r in audit.records()] == [{"text": "buy eggs"}]  # the action ran once
    assert book.read()[-1].endswith(" buy eggs")
    m = result.metrics
    assert m.head_start_ms == pytest.approx(350.0)
    # nothing is handed out before the speech window would have come
    assert m.action_ms is not None and m.action_ms >= 350.0
    assert result.window["id"] == "w1"  # the pause window is not stored


async def test_speech_that_goes_on_is_answered_whole_and_acts_once(book):
    audit = AuditLog()
    brain = ScriptedBrain(responses=[call("add_note", text="buy"), call("add_note", text="buy eggs and rice")])
    agent = agent_for(brain, book, audit, allow=["add_note"], brain_hears_audio=True)
    longer = tone_window(2.0, start=2.0)
    early = pause_of(tone_window(1.0, start=2.0))
    feed = Feed()
    task = asyncio.ensure_future(agent.process(feed))
    feed.queue.put_nowait(early)
    await asyncio.sleep(0.1)  # the early answer is generated meanwhile
    for window in (longer, None):
        feed.queue.put_nowait(window)

    [result] = await task

    assert [r.args for r in audit.records()] == [{"text": "buy eggs and rice"}]
    assert result.metrics.head_start_ms == 0.0
    assert len(brain.seen) == 2 and brain.seen[1][-1] != brain.seen[0][-1]  # asked again about the whole


async def test_a_pause_alone_says_and_does_nothing(book):
    audit = AuditLog()
    brain = ScriptedBrain(responses=[call("add_note", text="buy eggs")])
    agent = agent_for(brain, book, audit, allow=["add_note"], brain_hears_audio=True)
    feed = Feed()
    for window in (pause_of(tone_window(1.0)), None):
        feed.queue.put_nowait(window)

    assert await agent.process(feed) == []
    assert audit.records() == [] and len(book.read()) == 2


def test_the_assistant_asks_the_front_end_for_pause_windows(book):
    brain = ScriptedBrain(responses=[])
    hearing_agent = agent_for(brain, book, AuditLog(), allow=[], brain_hears_audio=True)
    assert hearing_agent.segmenter_config().pause_ms == 200
    assert hearing_agent.segmenter_config(SegmenterConfig(post_roll_ms=300)).pause_ms == 300
    off = agent_for(brain, book, AuditLog(), allow=[], brain_hears_audio=True, preemptive=False)
    assert off.segmenter_config().pause_ms is None


async def test_a_live_assistant_takes_over_the_early_answer_too(book):
    audit, brain, agent, feed = paused_then_ended(book)

    [result] = await agent.run(feed)

    assert len(brain.seen) == 1 and [r.args for r in audit.records()] == [{"text": "buy eggs"}]
    assert result.metrics.head_start_ms == pytest.approx(350.0)


# ---------------------------------------------------------------- the adaptive end of turn

SETTLING = SegmenterConfig.webrtcvad_only(pause_ms=200, settle_ms=600, hangover_ms=1200)


def test_a_settled_window_repeats_the_pause_window_once_the_silence_is_long_enough():
    windows = segment(scene(0.5, 1.2, 2.0), SETTLING)
    assert [(w.kind, w.metrics.reason) for w in windows] == [
        ("pause", "pause"), ("pause", "settled"), ("speech", "end_of_speech")
    ]
    pause, settled, speech = windows
    assert np.array_equal(settled.samples, speech.samples)
    assert (settled.start_sample, settled.end_sample, settled.event_end) == (speech.start_sample, speech.end_sample, speech.event_end)
    assert settled.emitted_at - pause.emitted_at == pytest.approx(0.4, abs=0.031)
    assert speech.emitted_at - settled.emitted_at == pytest.approx(0.6, abs=0.031)


def test_no_settled_window_when_the_speaker_goes_on_before_it():
    windows = segment(scene(0.5, 1.0, 0.4, 1.0, 2.0), SETTLING)
    assert [(w.kind, w.metrics.reason) for w in windows] == [
        ("pause", "pause"), ("pause", "pause"), ("pause", "settled"), ("speech", "end_of_speech")
    ]
    assert windows[2].event_end == windows[3].event_end  # only the whole request settles


@pytest.mark.parametrize("settle_ms", [150, 1200, 1500])
def test_the_settle_point_must_fit_between_the_pause_and_the_hangover(settle_ms):
    with pytest.raises(ValidationError, match="settle_ms"):
        SegmenterConfig(pause_ms=200, settle_ms=settle_ms, hangover_ms=1200)


@pytest.mark.parametrize("text, unfinished", [
    ("Set a timer for", True), ("Add milk and", True), ("Remind me to um", True),
    ("Set a timer for...", True), ("Add eggs,", True), ("Set a timer for ten minutes.", False),
    ("What time is it?", False), ("Read me my notes", False), ("", False), (None, False),
])
def test_a_request_that_trails_off_sounds_unfinished(text, unfinished):
    from salmonn_agent.agent.turn_end import sounds_unfinished

    assert sounds_unfinished(text) is unfinished


def heard(message: AIMessage, text: str) -> AIMessage:
    """``message`` as a brain that reports Whisper's transcript answers it."""
    return message.model_copy(update={"response_metadata": {"transcripts": [text]}})


def settled_of(window: AudioWindow, after_s: float = 0.6) -> AudioWindow:
    metrics = window.metrics.model_copy(update={"reason": "settled"})
    return dataclasses.replace(window, kind="pause", metrics=metrics, emitted_at=window.event_end + after_s)


def at_pause(window: AudioWindow) -> AudioWindow:
    return dataclasses.replace(window, kind="pause", emitted_at=window.event_end + 0.2)


def at_hangover(window: AudioWindow) -> AudioWindow:
    return dataclasses.replace(window, emitted_at=window.event_end + 1.2)


def one_request(book: Any, heard_text: str, **config: Any) -> tuple[AuditLog, ScriptedBrain, Any, AudioWindow, Feed]:
    """An assistant whose brain adds a note and reports hearing ``heard_text``, and a feed holding
    one request's pause, settled and hangover windows (the test closes the feed)."""
    audit = AuditLog()
    brain = ScriptedBrain(responses=[heard(call("add_note", text="buy eggs"), heard_text)])
    agent = agent_for(brain, book, audit, allow=["add_note"], brain_hears_audio=True, **config)
    speech = at_hangover(tone_window(1.0, start=2.0))
    feed = Feed()
    for window in (at_pause(speech), settled_of(speech)):
        feed.queue.put_nowait(window)
    return audit, brain, agent, speech, feed


async def test_a_complete_request_ends_at_its_settled_window_and_acts_once(book):
    audit, brain, agent, speech, feed = one_request(book, "Add buy eggs to my notes.")
    for window in (speech, None):
        feed.queue.put_nowait(window)

    [result] = await agent.process(feed)

    assert len(brain.seen) == 1 and [r.args for r in audit.records()] == [{"text": "buy eggs"}]
    assert result.metrics.eou_delay_ms == pytest.approx(600.0)  # not the 1.2 s hangover
    assert result.metrics.head_start_ms == pytest.approx(400.0)
    assert result.window["kind"] == "speech"


async def test_a_request_that_trails_off_waits_and_is_answered_whole(book):
    audit = AuditLog()
    brain = ScriptedBrain(responses=[
        heard(call("add_note", text="buy"), "Add buy and"),
        heard(call("add_note", text="buy eggs and rice"), "Add buy eggs and rice."),
    ])
    agent = agent_for(brain, book, audit, allow=["add_note"], brain_hears_audio=True)
    first = tone_window(1.0, start=2.0)
    whole = at_hangover(tone_window(2.5, start=2.0))
    feed = Feed()
    for window in (at_pause(first), settled_of(first), at_pause(whole), settled_of(whole), whole, None):
        feed.queue.put_nowait(window)

    [result] = await agent.process(feed)

    assert [r.args for r in audit.records()] == [{"text": "buy eggs and rice"}]  # one turn, the whole request
    assert result.metrics.eou_delay_ms == pytest.approx(600.0)


async def test_a_next_request_within_the_hangover_is_asked_without_the_answered_one(book):
    # The first request ended at its settled window; the speaker's next one starts 0.9 s later,
    # within the 1.2 s hangover, so the front-end's event (and its windows) hold both.
    audit = AuditLog()
    brain = ScriptedBrain(responses=[
        heard(call("add_note", text="buy eggs"), "Add buy eggs to my notes."),
        heard(call("add_note", text="buy rice"), "Add buy rice to my notes."),
    ])
    agent = agent_for(brain, book, audit, allow=["add_note"], brain_hears_audio=True)
    first = tone_window(1.0, start=2.0)
    both = at_hangover(tone_window(3.0, start=2.0))
    feed = Feed()
    for window in (at_pause(first), settled_of(first), at_pause(both), settled_of(both), both, None):
        feed.queue.put_nowait(window)

    results = await agent.process(feed)

    assert [r.args for r in audit.records()] == [{"text": "buy eggs"}, {"text": "buy rice"}]  # each once
    assert len(results) == 2 and len(brain.seen) == 2
    second = results[1].window
    assert second["start"] == pytest.approx(first.end) and second["end"] == pytest.approx(both.end)


async def test_a_request_that_trails_off_and_stops_ends_at_the_hangover(book):
    audit, brain, agent, speech, feed = one_request(book, "Add buy eggs to")
    for window in (speech, None):
        feed.queue.put_nowait(window)

    [result] = await agent.process(feed)

    assert len(brain.seen) == 1  # the answer started at the pause is still the one handed out
    assert [r.args for r in audit.records()] == [{"text": "buy eggs"}]
    assert result.metrics.eou_delay_ms == pytest.approx(1200.0)
    assert result.metrics.head_start_ms == pytest.approx(1000.0)


async def test_a_live_assistant_ends_a_complete_request_at_its_settled_window(book):
    audit, brain, agent, speech, feed = one_request(book, "Add buy eggs to my notes.")
    task = asyncio.ensure_future(agent.run(feed))
    await asyncio.sleep(0.3)  # the hangover's speech window comes later than the settled one
    for window in (speech, None):
        feed.queue.put_nowait(window)

    [result] = await task

    assert len(brain.seen) == 1 and [r.args for r in audit.records()] == [{"text": "buy eggs"}]
    assert result.metrics.eou_delay_ms == pytest.approx(600.0)


async def test_a_fixed_end_of_turn_ignores_settled_windows(book):
    audit, _, agent, speech, feed = one_request(book, "Add buy eggs to my notes.", end_of_turn="fixed")
    for window in (speech, None):
        feed.queue.put_nowait(window)

    [result] = await agent.process(feed)

    assert len(audit.records()) == 1 and result.metrics.eou_delay_ms == pytest.approx(1200.0)


def test_the_assistant_asks_the_front_end_for_the_adaptive_end_of_turn(book):
    brain = ScriptedBrain(responses=[])
    config = agent_for(brain, book, AuditLog(), allow=[], brain_hears_audio=True).segmenter_config()
    assert (config.pause_ms, config.settle_ms, config.hangover_ms) == (200, 600, 1200)
    fixed = agent_for(brain, book, AuditLog(), allow=[], brain_hears_audio=True, end_of_turn="fixed").segmenter_config()
    assert (fixed.settle_ms, fixed.hangover_ms) == (None, 600)
    deaf = agent_for(brain, book, AuditLog(), allow=[], brain_hears_audio=True, preemptive=False).segmenter_config()
    assert (deaf.pause_ms, deaf.settle_ms, deaf.hangover_ms) == (None, None, 600)


async def test_the_assistants_turn_end_judge_reads_what_the_brain_heard(book):
    asked: list[str] = []

    def judge(transcript: str) -> bool:
        asked.append(transcript)
        return transcript == "Set a pasta."

    audit = AuditLog()
    brain = ScriptedBrain(responses=[heard(call("add_note", text="x"), "Set a pasta.")])
    agent = VoiceAgent(brain, actions=notes_tools(book), gate=ActionGate(ActionPolicy(allow=["add_note"]), audit),
                       store=WindowStore(), config=AgentConfig(brain_hears_audio=True), turn_end=judge)
    speech = at_hangover(tone_window(1.0, start=2.0))
    feed = Feed()
    for window in (at_pause(speech), settled_of(speech), speech, None):
        feed.queue.put_nowait(window)

    [result] = await agent.process(feed)

    assert asked == ["Set a pasta."] and result.metrics.eou_delay_ms == pytest.approx(1200.0)  # it waited
