"""Whether an action's arguments were said: the rules the gate applies against the transcript."""

from __future__ import annotations

import pytest

from salmonn_agent.agent.heard import transcript_words, unheard_argument

DURATION = {"hours": "number", "minutes": "number", "seconds": "number"}
NOTE = {"text": "words"}


@pytest.mark.parametrize(("args", "transcript"), [
    ({"minutes": 45}, "Homework timer, forty five minutes please."),
    ({"minutes": 45}, "Set a timer for 45 minutes."),
    ({"minutes": 2, "seconds": 30}, "Two minutes and thirty seconds."),
    ({"hours": 0.5}, "Set a timer for half an hour."),
    ({"hours": 1.5}, "Set a timer for an hour and a half."),
    ({"minutes": 2.5}, "Two and a half minutes, please."),
    ({"minutes": 1}, "A minute timer."),
    ({"hours": 1, "minutes": 10}, "An hour and ten minutes."),
    ({"minutes": 10, "seconds": 0}, "Ten minutes."),  # a part of 0 is not checked
])
def test_durations_that_were_said_pass(args, transcript):
    assert unheard_argument(args, DURATION, transcript) is None


@pytest.mark.parametrize(("args", "transcript", "named"), [
    ({"hours": 1, "minutes": 2}, "Check on my timers.", "hours=1"),
    ({"minutes": 90}, "Set a pasta timer for nine minutes.", "minutes=90"),
    ({"seconds": 30}, "Let me know when thirty five seconds have passed.", "seconds=30"),
    ({"minutes": 3.5}, "Two and a half minutes, please.", "minutes=3.5"),
])
def test_durations_nobody_said_are_named(args, transcript, named):
    assert named in unheard_argument(args, DURATION, transcript)


@pytest.mark.parametrize(("text", "transcript", "heard"), [
    ("the plumber comes on tuesday", "Jot down that the plumber comes on Tuesday.", True),
    ("cat", "I have to feed the cat tonight, make a note of it.", True),
    ("Buy 2 lamps", "Note: buy two lamps!", True),  # digits and words are the same number
    ("call the vet today", "Save a note saying call the vet.", True),  # half of the words is enough
    ("buy a new phone", "Go through my notes for me.", False),
    ("check the weather", "I just got back from a long walk.", False),  # "the" alone is not enough
])
def test_a_note_must_be_mostly_words_that_were_said(text, transcript, heard):
    assert (unheard_argument({"text": text}, NOTE, transcript) is None) is heard


def test_arguments_left_out_or_at_their_default_are_not_checked():
    heard = {**DURATION, "label": "words"}
    assert unheard_argument({"minutes": 5, "label": "timer"}, heard, "Five minutes.", {"label": "timer"}) is None
    assert unheard_argument({"minutes": 5}, heard, "Five minutes.") is None
    assert "label='tea'" in unheard_argument({"minutes": 5, "label": "tea"}, heard, "Five minutes.")


def test_transcript_words_are_lower_case_with_numbers_as_digits():
    assert transcript_words("Don't forget: twenty-one eggs, 3.5 cups!") == ["don't", "forget", "21", "eggs", "3.5", "cups"]
