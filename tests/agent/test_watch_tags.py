"""The sound watch decides from the front-end's AudioSet tags when they are clear."""

from __future__ import annotations

import dataclasses

from salmonn_agent.agent.watch import SoundWatch
from salmonn_agent.sound_tags import SoundTag

from tests.agent.test_watch import Hearer, sound_window


def tagged(start: float, index: int, *tags: tuple[str, float]):
    window = sound_window(start, index)
    return dataclasses.replace(window, tags=tuple(SoundTag(label=l, score=s) for l, s in tags))


async def test_clear_tags_fire_without_a_model_call():
    hearer = Hearer(present={"a dog"})
    watch = SoundWatch(hearer, ["a dog", "an alarm", "glass breaking"])
    found = await watch.check(tagged(0.0, 0, ("Dog", 0.91), ("Bark", 0.77), ("Animal", 0.6)))
    assert [(d.target, d.source) for d in found] == [("a dog", "tags")]
    assert found[0].answer.startswith("yes") and "Dog" in found[0].answer
    assert hearer.questions == [] and watch.model_calls == 0  # the others are a clear no


async def test_uncertain_tags_ask_the_model():
    hearer = Hearer(present={"an alarm"})
    watch = SoundWatch(hearer, ["an alarm", "a dog"])
    found = await watch.check(tagged(0.0, 0, ("Beep, bleep", 0.32), ("Alarm", 0.3)))
    assert [(d.target, d.source) for d in found] == [("an alarm", "model")]
    assert watch.model_calls == 2  # neither tag is sure enough for a yes or a no


async def test_glass_matches_by_word_and_windows_without_tags_go_to_the_model():
    hearer = Hearer(present={"glass breaking"})
    watch = SoundWatch(hearer, ["glass breaking"])
    found = await watch.check(tagged(0.0, 0, ("Shatter", 0.8), ("Glass", 0.7)))
    assert [d.source for d in found] == ["tags"]
    assert watch.model_calls == 0
    found = await watch.check(sound_window(30.0, 1))
    assert [d.source for d in found] == ["model"] and watch.model_calls == 1
    off = SoundWatch(hearer, ["glass breaking"], use_tags=False)
    await off.check(tagged(60.0, 2, ("Shatter", 0.8)))
    assert off.model_calls == 1


async def test_target_labels_extend_the_table():
    watch = SoundWatch(Hearer(), ["the kettle"], target_labels={"kettle": ["Boiling", "Whistle"]})
    found = await watch.check(tagged(0.0, 0, ("Whistle", 0.7)))
    assert [d.source for d in found] == ["tags"]
