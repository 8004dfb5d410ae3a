"""ChatSALMONN's prefix KV cache: a follow-up turn reuses the prefill of the earlier ones."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.messages import HumanMessage

from salmonn_agent.chat.messages import audio_message
from salmonn_agent.chat_model import ChatSALMONN

SR = 16_000


@pytest.fixture
def question(noise_clips) -> HumanMessage:
    return audio_message(noise_clips["5s"], "Please describe the audio.", sample_rate=SR)


def prompt_positions(message) -> int:
    return message.usage_metadata["input_tokens"]


def test_second_turn_reuses_the_first_and_answers_the_same(tiny_model, question):
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=8)
    plain = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=8, prefix_cache_size=0)
    store = chat.prefix_cache
    first = chat.invoke([question])
    assert first.content == plain.invoke([question]).content
    assert (store.hits, store.misses, store.reused_tokens, len(store)) == (0, 1, 0, 1)
    conversation = [question, first, HumanMessage("Is there speech in it?")]
    second = chat.invoke(conversation)
    assert second.content == plain.invoke(conversation).content
    uncached = plain.invoke(conversation).usage_metadata
    assert uncached["input_token_details"]["cache_read"] == 0
    assert {**second.usage_metadata, "input_token_details": {}} == {**uncached, "input_token_details": {}}
    assert store.hits == 1 and len(store) == 1  # the conversation's entry moved on to this turn
    assert store.reused_tokens >= prompt_positions(first)  # the first prompt, audio included
    # the answer reports what it took from the cache, as OpenAI's cached_tokens
    assert second.usage_metadata["input_token_details"]["cache_read"] == store.reused_tokens
    assert store.prefilled_tokens - prompt_positions(first) == prompt_positions(second) - store.reused_tokens
    # a third turn, streamed, reuses the second
    conversation += [second, HumanMessage("Really?")]
    reused = store.reused_tokens
    chunks = list(chat.stream(conversation))
    assert "".join(chunk.content for chunk in chunks) == plain.invoke(conversation).content
    assert store.hits == 2 and store.reused_tokens - reused >= prompt_positions(second)
    assert chunks[-1].usage_metadata["input_token_details"]["cache_read"] == store.reused_tokens - reused
    assert store.nbytes > 0


def test_lora_scale_change_rebuilds_the_cache(tiny_model, question):
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=8)
    store = chat.prefix_cache
    first = chat.invoke([question])
    conversation = [question, first, HumanMessage("Is there speech in it?")]
    scaled = chat.invoke(conversation, lora_scale=0.0)
    assert store.hits == 1 and store.reused_tokens == 0  # found, but built under another scale
    assert scaled.content == ChatSALMONN(client=tiny_model, temperature=0, max_tokens=8,
                                         prefix_cache_size=0).invoke(conversation, lora_scale=0.0).content


def test_size_zero_turns_it_off(tiny_model, question, monkeypatch):
    calls = []
    original = tiny_model.generate_detailed
    monkeypatch.setattr(tiny_model, "generate_detailed",
                        lambda *a, **k: calls.append(k.get("prefix_cache")) or original(*a, **k))
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=4, prefix_cache_size=0)
    first = chat.invoke([question])
    chat.invoke([question, first, HumanMessage("And?")])
    assert calls == [None, None]
    assert (len(chat.prefix_cache), chat.prefix_cache.hits, chat.prefix_cache.misses) == (0, 0, 0)


def test_store_is_bounded_and_beam_search_skips_it(tiny_model, noise_clips):
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=2, prefix_cache_size=2)
    store = chat.prefix_cache
    for seconds in (1, 2, 3):
        chat.invoke([audio_message(noise_clips["30s"][: seconds * SR], "hi", sample_rate=SR)])
    # three conversations: the later two copied the first's cache for the shared prompt start
    assert len(store) == 2 and (store.hits, store.shared, store.misses) == (0, 2, 1)
    chat.invoke([audio_message(noise_clips["30s"][: 3 * SR], "hi", sample_rate=SR)], num_beams=2)
    assert (store.hits, store.shared, store.misses) == (0, 2, 1)


def test_another_conversation_with_the_same_start_reuses_a_copy(tiny_model, noise_clips):
    """A voice assistant's prompts share the system text; when its bounded memory drops the
    oldest turn, the new prompt no longer continues the stored one, but its start is reused."""
    from langchain_core.messages import SystemMessage

    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=4)
    plain = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=4, prefix_cache_size=0)
    system = SystemMessage("You are a careful assistant. " * 20)
    store = chat.prefix_cache
    first = [system, audio_message(noise_clips["30s"][:SR], "hi", sample_rate=SR)]
    second = [system, audio_message(noise_clips["30s"][SR: 3 * SR], "hello", sample_rate=SR)]
    chat.invoke(first)
    answer = chat.invoke(second)
    assert answer.content == plain.invoke(second).content
    assert (store.hits, store.shared, store.misses, len(store)) == (0, 1, 1, 2)  # the first entry stays
    assert store.reused_tokens >= 40  # at least the system text's positions
    again = chat.invoke(first + [chat.invoke(first), HumanMessage("And?")])
    assert store.hits >= 1 and isinstance(again.content, str)


def test_batched_requests_run_without_it(tiny_model, noise_clips, monkeypatch):
    calls = []
    original = tiny_model.generate_detailed

    def record(prompts, *args, **kwargs):
        calls.append((len(prompts), kwargs.get("prefix_cache")))
        return original(prompts, *args, **kwargs)

    monkeypatch.setattr(tiny_model, "generate_detailed", record)
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=4, batch_window_ms=300)
    requests = [[audio_message(noise_clips["5s"], f"Question {i}?", sample_rate=SR)] for i in range(3)]
    alone = [chat.invoke(r).content for r in requests]
    barrier = threading.Barrier(3)

    def run(messages):
        barrier.wait()
        return chat.invoke(messages).content

    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(run, requests))
    assert together == alone
    assert any(size > 1 for size, _ in calls)
    assert all(cache is None for size, cache in calls if size > 1)
    assert all(cache is not None for size, cache in calls if size == 1)


def test_a_follow_up_turn_skips_the_batch_window(tiny_model, question):
    """A new conversation waits a batch window for company; its follow-up turn, whose cache is
    kept, starts at once (it runs alone anyway, prefilling only its new text)."""
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=4, batch_window_ms=1500)
    plain = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=4, prefix_cache_size=0, batch_window_ms=0)
    start = time.perf_counter()
    first = chat.invoke([question])
    assert time.perf_counter() - start >= 1.45  # waited out the window: nobody joined
    conversation = [question, first, HumanMessage("Is there speech in it?")]
    start = time.perf_counter()
    second = chat.invoke(conversation)
    assert time.perf_counter() - start < 1.2  # 4 tokens of the tiny model take far less than the window
    assert second.content == plain.invoke(conversation).content
    assert chat.prefix_cache.hits == 1
    assert not chat.prefix_cache.continues("a prompt no kept conversation begins", [])
