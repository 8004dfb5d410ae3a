"""ChatSALMONN's behaviour: metadata, streaming, parameters, caching, cancellation, batching."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from salmonn_agent.chat.errors import ContentBlockError, GenerationTimeout
from salmonn_agent.chat.messages import audio_message
from salmonn_agent.chat_model import ChatSALMONN

SR = 16_000


def model_idle_within(model, seconds: float) -> bool:
    """Whether the model stops generating within ``seconds`` (its lock becomes free)."""
    if not model._generate_lock.acquire(timeout=seconds):
        return False
    model._generate_lock.release()
    return True


@pytest.fixture
def question(noise_clips) -> HumanMessage:
    return audio_message(noise_clips["5s"], "Please describe the audio.", sample_rate=SR)


def test_answer_equals_the_model_and_reports_usage(chat, tiny_model, question, noise_clips):
    answer = chat.invoke([question])
    expected = tiny_model.generate(noise_clips["5s"], "Please describe the audio.", sample_rate=SR,
                                   num_beams=1, max_new_tokens=8)[0]
    assert answer.content == expected
    usage = answer.usage_metadata
    assert usage["input_token_details"]["audio"] == 88
    assert usage["input_tokens"] > 88 and 0 < usage["output_tokens"] <= 8
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert answer.response_metadata == {"model_name": "tiny-salmonn", "finish_reason": "length"}


def test_stream_is_token_by_token_and_joins_to_the_answer(chat, question):
    answer = chat.invoke([question])
    chunks = list(chat.stream([question]))
    assert len(chunks) >= 3  # several pieces, not one block at the end
    assert "".join(c.content for c in chunks) == answer.content
    assert chunks[-1].chunk_position == "last"
    streamed = chunks[-1].usage_metadata
    assert {**streamed, "input_token_details": {}} == {**answer.usage_metadata, "input_token_details": {}}
    assert streamed["input_token_details"]["audio"] == answer.usage_metadata["input_token_details"]["audio"]
    # the same prompt again: its positions (all but the last) come from the conversation cache
    assert streamed["input_token_details"]["cache_read"] == streamed["input_tokens"] - 1
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    beams = list(chat.stream([question], num_beams=2))  # beam search cannot stream: one piece
    assert len(beams) == 1 and beams[0].content == chat.invoke([question], num_beams=2).content


def test_streamed_tokens_arrive_as_they_are_chosen(chat, tiny_model, question):
    """Each token reaches the stream before the next decoding step starts, not a step later."""
    forwards: list[int] = []
    hook = tiny_model.llm.get_decoder().register_forward_hook(lambda *_: forwards.append(1))
    engine = chat._runtime(None).engine
    submit, seen = engine.submit, []

    def recording(job):
        post = job.control.on_tokens

        def on_tokens(ids: list[int]) -> None:
            seen.append((len(ids), len(forwards)))  # tokens so far, LLM passes so far
            post(ids)

        job.control.on_tokens = on_tokens
        return submit(job)

    engine.submit = recording
    try:
        chunks = list(chat.stream([question]))
    finally:
        hook.remove()
    tokens = chunks[-1].usage_metadata["output_tokens"]
    assert [count for count, _ in seen] == list(range(1, tokens + 1))  # every token, the last one too
    assert all(passes == count for count, passes in seen)  # token k after the prefill and k - 1 steps


async def test_async_invoke_and_stream_match_sync(chat, question):
    answer = chat.invoke([question])
    assert (await chat.ainvoke([question])).content == answer.content
    pieces = [chunk.content async for chunk in chat.astream([question])]
    assert "".join(pieces) == answer.content


def test_parameters_per_call(chat, question):
    default = chat.invoke([question])
    assert chat.invoke([question], max_tokens=3).usage_metadata["output_tokens"] <= 3
    assert chat.invoke([question], lora_scale=0.0).content != default.content
    assert chat.bind(lora_scale=0.0).invoke([question]).content == chat.invoke([question], lora_scale=0.0).content
    beams = chat.invoke([question], num_beams=3)
    assert isinstance(beams.content, str)
    sampled = chat.invoke([question], temperature=0.8, top_p=0.9, repetition_penalty=1.2)
    assert isinstance(sampled.content, str)
    assert chat.invoke([question]).content == default.content  # nothing leaked into the instance
    with pytest.raises(TypeError, match="unsupported parameters \\['max_new_tokenz'\\]"):
        chat.invoke([question], max_new_tokenz=3)


def test_stop_sequences_cut_the_answer(chat, question):
    full = chat.invoke([question], max_tokens=16).content
    stop = full[3:5]
    cut = chat.invoke([question], max_tokens=16, stop=[stop])
    assert cut.content == full[: full.index(stop)]
    assert cut.response_metadata["finish_reason"] == "stop"
    streamed = "".join(c.content for c in chat.stream([question], max_tokens=16, stop=[stop]))
    assert streamed == cut.content


def test_encoder_runs_once_for_a_two_turn_conversation(chat, tiny_model, question, monkeypatch):
    calls = []
    original = tiny_model.encode_samples
    monkeypatch.setattr(tiny_model, "encode_samples", lambda clips: calls.append(len(clips)) or original(clips))
    first = chat.invoke([question])
    second = chat.invoke([question, first, HumanMessage("And is it loud?")])
    third = list(chat.stream([question, first, HumanMessage("Really?")]))
    assert calls == [1]
    assert second.usage_metadata["input_token_details"]["audio"] == 88 and third
    assert chat.audio_cache.hits == 2 and chat.audio_cache.misses == 1


def test_seeded_sampling_is_reproducible_and_decoded_alone(tiny_model, question):
    chat = ChatSALMONN(client=tiny_model, temperature=1.0, max_tokens=12)
    jobs = capture_jobs(chat)
    first = chat.invoke([question], seed=7).content
    assert chat.invoke([question], seed=7).content == first
    assert {chat.invoke([question], seed=s).content for s in (1, 2, 3, 4)} != {first}
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # at once: each still gets its seeded answer
        answers = list(pool.map(lambda _: chat.invoke([question], seed=7).content, range(4)))
    assert answers == [first] * 4
    assert all(job.options["seed"] == 7 for job in jobs[:2])
    greedy = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=4)
    greedy_jobs = capture_jobs(greedy)
    greedy.invoke([question], seed=7)
    assert "seed" not in greedy_jobs[0].options  # greedy answers need no seed (and still batch)


@pytest.mark.parametrize("messages", [
    [], [SystemMessage("Be brief.")], [AIMessage("Hello there.")], [HumanMessage("")], [HumanMessage("   ")],
    [SystemMessage("Be brief."), HumanMessage([{"type": "text", "text": ""}])],
])
def test_requests_with_nothing_to_answer_are_refused_before_generating(chat, messages):
    jobs = capture_jobs(chat)
    with pytest.raises(ContentBlockError, match="Nothing to answer"):
        chat.invoke(messages)
    assert not jobs


def test_a_prompt_longer_than_the_context_fails_before_generating(chat, tiny_model, question):
    from salmonn_agent.errors import PromptTooLongError

    jobs = capture_jobs(chat)
    long_text = "please listen carefully " * 3000  # far over the tiny LLM's 2048 positions
    start = time.monotonic()
    with pytest.raises(PromptTooLongError, match="over the model's context of 2048 positions"):
        chat.invoke([HumanMessage(long_text)])
    with pytest.raises(PromptTooLongError, match="lower max_new_tokens"):
        chat.invoke([question], max_tokens=4000)
    assert not jobs and time.monotonic() - start < 10
    with pytest.raises(PromptTooLongError):  # the model itself checks too (ask, the tools)
        tiny_model.generate(np.zeros(16_000, dtype=np.float32), long_text, sample_rate=16_000)
    assert chat.invoke([question]).content is not None  # and the chat model still answers


def test_audio_cache_is_bounded(tiny_model, noise_clips):
    chat = ChatSALMONN(client=tiny_model, max_tokens=2, audio_cache_size=2)
    for seconds in (1, 2, 3):
        chat.invoke([audio_message(noise_clips["30s"][: seconds * SR], "hi", sample_rate=SR)])
    assert len(chat.audio_cache) == 2


def capture_jobs(chat: ChatSALMONN) -> list:
    """Record the jobs the chat model hands to its engine."""
    engine = chat._runtime(None).engine
    jobs, submit = [], engine.submit
    engine.submit = lambda job: jobs.append(job) or submit(job)
    return jobs


async def test_cancelling_astream_stops_generation(tiny_model, question):
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=1500)
    jobs = capture_jobs(chat)
    stream = chat.astream([question])
    first = await stream.__anext__()
    assert first.content
    await stream.aclose()  # the consumer leaves after one piece
    assert await asyncio.to_thread(model_idle_within, tiny_model, 10)
    (job,) = jobs
    assert job.control.ended_by == "cancelled"
    assert len(job.control.token_ids) < 100  # stopped within a few tokens, not at 1500


async def test_cancelling_ainvoke_stops_generation(tiny_model, question):
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=1500)
    jobs = capture_jobs(chat)
    task = asyncio.create_task(chat.ainvoke([question]))
    while not (jobs and jobs[0].control.token_ids):
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(model_idle_within, tiny_model, 10)
    assert jobs[0].control.ended_by == "cancelled" and len(jobs[0].control.token_ids) < 1000


def test_timeout_stops_generation_with_an_error(tiny_model, question):
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=1500, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(GenerationTimeout):
        chat.invoke([question])
    assert time.monotonic() - start < 10


def test_eight_concurrent_invocations_equal_eight_sequential_ones(tiny_model, noise_clips):
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=8, batch_window_ms=50)
    rng = np.random.default_rng(7)
    requests = [
        [audio_message(noise_clips["30s"][: int(rng.integers(1, 30)) * SR], f"Question {i}?", sample_rate=SR)]
        for i in range(8)
    ]
    sequential = [chat.invoke(r).content for r in requests]
    engine = chat._runtime(None).engine
    before = engine.batches_run
    barrier = threading.Barrier(8)

    def run(messages):
        barrier.wait()
        return chat.invoke(messages).content

    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(run, requests))
    assert concurrent == sequential
    assert engine.batches_run - before < 8  # batched into fewer generate calls


def test_a_burst_of_staggered_requests_is_decoded_in_one_batch(tiny_model, noise_clips):
    # Requests 100 ms apart, a 200 ms window: each newcomer restarts the wait (up to 4 windows),
    # so the last one is not left for a second decoding pass of its own.
    chat = ChatSALMONN(client=tiny_model, temperature=0, max_tokens=4, batch_window_ms=200)
    requests = [[audio_message(noise_clips["5s"], f"Question {i}?", sample_rate=SR)] for i in range(4)]
    chat.invoke(requests[0])  # the clip is encoded and the engine started
    engine = chat._runtime(None).engine
    before = engine.batches_run
    barrier = threading.Barrier(4)

    def run(index):
        barrier.wait()
        time.sleep(0.1 * index)
        return chat.invoke(requests[index]).content

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(run, range(4)))
    assert engine.batches_run - before == 1
    assert answers == [chat.invoke(r).content for r in requests]


def test_model_is_loaded_lazily_once_per_path(tiny_model_dir):
    a = ChatSALMONN(model=str(tiny_model_dir), max_tokens=2)
    b = ChatSALMONN(model=str(tiny_model_dir), max_tokens=2)
    assert a._client(None) is b._client(None)
    assert isinstance(a.invoke("hi"), AIMessage)
