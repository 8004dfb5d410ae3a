"""Spoken voice-assistant requests in wording that salmonn-mini's training never used (evaluation only).

:mod:`devkit.assistant_bank` makes every request salmonn-mini learned from a few templates ("Set a
{label} timer for {d}.", "Take a note: {x}."), and ``tools/bench_agent.py`` scores held-out
sentences of those same templates. The requests below were written by hand the way people talk to
an assistant (other verbs, other sentence shapes, durations and labels outside the training lists,
chit-chat and general questions that must not trigger an action), and nothing here feeds training
or prompt choices. ``tools/bench_agent.py --bank other`` says them with voices no training stage
used (flite's and festival's ``slt``: :data:`OTHER_VOICES`).

Expected arguments follow the assistant's tools: ``set_timer(seconds, label="timer")``,
``add_note(text)``, ``list_timers()``, ``read_notes(last=10)``. A question's ``answer`` is the word
its answer must contain; chit-chat has none (only "no action" is expected of it).
"""

from __future__ import annotations

from devkit.assistant_bank import Request


def _timer(text: str, seconds: int, label: str | None = None) -> Request:
    args: dict = {"seconds": seconds} | ({"label": label} if label else {})
    return Request(text, "set_timer", args, key=f"other|{text}", split="other")


def _note(text: str, note: str) -> Request:
    return Request(text, "add_note", {"text": note}, key=f"other|{text}", split="other")


def _plain(text: str, tool: str) -> Request:
    return Request(text, tool, {}, key=f"other|{text}", split="other")


def _say(text: str, answer: str | None = None) -> Request:
    return Request(text, None, {}, answer=answer, key=f"other|{text}", split="other")


OTHER_REQUESTS: list[Request] = [
    _timer("Could you start a ten minute timer for the eggs?", 600, "eggs"),
    _timer("I need a countdown of three minutes.", 180),
    _timer("Give me five minutes on the clock for the tea.", 300, "tea"),
    _timer("Count down ninety seconds.", 90),
    _timer("Time my steak for six minutes.", 360, "steak"),
    _timer("Wake me up in twenty minutes.", 1200),
    _timer("Put on a timer, eleven minutes.", 660),
    _timer("Let me know when thirty five seconds have passed.", 35),
    _timer("Homework timer, forty five minutes please.", 2700, "homework"),
    _timer("Can I get a two minute timer?", 120),
    _timer("Start counting down from eight minutes for the cake.", 480, "cake"),
    _timer("Fifteen minutes for the laundry, please.", 900, "laundry"),
    _note("Jot down that the plumber comes on Tuesday.", "the plumber comes on tuesday"),
    _note("Remember for me: pick up the dry cleaning.", "pick up the dry cleaning"),
    _note("Could you save a note saying call the vet?", "call the vet"),
    _note("Write this down, the spare key is under the mat.", "the spare key is under the mat"),
    _note("Remember to buy oat milk, put that in my notes.", "buy oat milk"),
    _note("Note to self: renew my passport.", "renew my passport"),
    _note("Don't let me forget to send the invoice.", "send the invoice"),
    _note("Keep a note that the meeting moved to Friday.", "the meeting moved to friday"),
    _note("I have to feed the cat tonight, make a note of it.", "feed the cat tonight"),
    _note("Store a reminder to charge the car.", "charge the car"),
    _plain("Go through my notes for me.", "read_notes"),
    _plain("What have I saved so far?", "read_notes"),
    _plain("Tell me what's on my list.", "read_notes"),
    _plain("Any notes from earlier?", "read_notes"),
    _plain("How long until my timer goes off?", "list_timers"),
    _plain("Do I have anything counting down?", "list_timers"),
    _plain("Check on my timers.", "list_timers"),
    _plain("Is the egg timer still going?", "list_timers"),
    _say("What is the capital of Italy?", "rome"),
    _say("Who wrote Romeo and Juliet?", "shakespeare"),
    _say("What's seven plus five?", "twelve"),
    _say("How many days are there in a week?", "seven"),
    _say("What color is the sky on a clear day?", "blue"),
    _say("How are you doing today?"),
    _say("Thanks, that's all for now."),
    _say("Tell me a joke."),
    _say("Good morning!"),
    _say("I just got back from a long walk."),
]
"""Thirty commands (twelve timers, ten notes, four reads of the notes, four of the timers) and ten
utterances that must not act (five questions with an expected word, five pieces of chit-chat)."""

OTHER_VOICES = ("flite:slt", "festival:cmu_us_slt_arctic_hts")
"""Voices that no training stage used: flite's ``slt`` (the broad-text data's validation voice)
and festival's HTS voice of the same CMU ARCTIC speaker (Debian ``festvox-us-slt-hts``)."""
