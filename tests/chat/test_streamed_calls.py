"""Tool calls stream as they are decoded; a call ends at its closing brace; the tokens a grammar
forces are fed without a model call of their own (guided greedy decoding)."""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from transformers import LogitsProcessorList, StoppingCriteriaList

from salmonn_agent.chat.controls import ControlProcessor, GuidedControl, RequestControl
from salmonn_agent.chat.grammar import GrammarFactory
from salmonn_agent.chat.tools import ToolChoice, call_parts, call_schema
from salmonn_agent.chat_model import ChatSALMONN
from salmonn_agent.model.generation import PrefixCache


@tool
def set_timer(seconds: int, label: str = "") -> str:
    """Start a timer."""
    return "started"


@tool
def stop_music() -> str:
    """Stop the music."""
    return "stopped"


TOOLS = [set_timer, stop_music]


@pytest.fixture
def chat(tiny_model) -> ChatSALMONN:
    return ChatSALMONN(client=tiny_model, model="tiny-salmonn", temperature=0, max_tokens=80)


@pytest.fixture(scope="module")
def grammar(tiny_model) -> tuple[GrammarFactory, Any]:
    vocab = int(tiny_model.llm.get_input_embeddings().weight.shape[0])
    factory = GrammarFactory(tiny_model.tokenizer.tokenizer, vocab)
    schema = call_schema([convert_to_openai_tool(t) for t in TOOLS], ToolChoice("any"))
    return factory, factory.compile(schema)


@contextmanager
def llm_calls(model: Any, *, sleep_s: float = 0.0, brace_first: bool = False) -> Iterator[list[float]]:
    """Count (and time) the LLM's forward calls; ``sleep_s`` slows each one down;
    ``brace_first`` makes a prompt's first answer token ``{`` (a model that starts a JSON call)."""
    calls: list[float] = []
    brace = model.tokenizer.tokenizer.convert_tokens_to_ids("{")

    def hook(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        calls.append(time.perf_counter())
        if sleep_s:
            time.sleep(sleep_s)
        if brace_first and kwargs.get("inputs_embeds") is not None:  # a prefill: the answer's first token
            output.logits[:, -1, brace] += 1000.0
        return output

    handle = model.llm.get_base_model().register_forward_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def random_prompt(rng: random.Random) -> str:
    words = " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8))) for _ in range(5))
    return f"USER: {words}\nASSISTANT:"


def decode(model: Any, prompt: str, grammar: tuple[GrammarFactory, Any], *, guided: bool,
           prefix: PrefixCache | None = None, lookup: list[int] | None = None,
           **options: Any) -> tuple[Any, RequestControl, int]:
    """One constrained greedy answer, step by step (``generate``) or guided (``lookup``: what the
    guide may propose the answer copies); with its LLM calls."""
    factory, compiled = grammar
    control = RequestControl(grammar=factory.session(compiled, 80))
    processor = ControlProcessor([control], eos_id=model._eos_id, decode=model.tokenizer.decode)
    guide = (GuidedControl(control, eos_id=model._eos_id, decode=model.tokenizer.decode, lookup=lookup or [])
             if guided else None)
    with llm_calls(model) as calls:
        (result,) = model.generate_detailed(
            [prompt], [[]], logits_processor=LogitsProcessorList([processor]),
            stopping_criteria=StoppingCriteriaList([processor.stopper()]), prefix_cache=prefix, guide=guide,
            num_beams=1, max_new_tokens=80, **options,
        )
    return result, control, len(calls)


# ---------------------------------------------------------------- guided decoding


@pytest.mark.parametrize("penalty", [1.0, 1.1])
def test_forced_tokens_are_fed_without_their_own_call_and_the_tokens_stay_the_same(tiny_model, grammar, penalty):
    rng = random.Random(penalty)
    for _ in range(4):
        prompt = random_prompt(rng)
        step, step_control, step_calls = decode(tiny_model, prompt, grammar, guided=False, repetition_penalty=penalty)
        fast, control, calls = decode(tiny_model, prompt, grammar, guided=True, repetition_penalty=penalty)
        assert fast.token_ids == step.token_ids and fast.text == step.text
        assert step_control.forced_tokens == 0 and control.forced_tokens > 0
        # step by step: one call per token (the first from the prompt's call, none for an end
        # symbol); guided: one per chosen token, plus at most one that only checks forced ones
        chosen = len(fast.token_ids) - control.forced_tokens
        assert chosen <= calls <= chosen + 1 and calls < step_calls == len(step.token_ids)
        assert control.token_ids == fast.token_ids  # every token was reported to the control


def test_words_the_answer_copies_from_the_request_are_checked_in_one_call_and_change_nothing(tiny_model, grammar):
    for seed in range(3):
        prompt = random_prompt(random.Random(seed))
        step, _, _ = decode(tiny_model, prompt, grammar, guided=False)
        plain, plain_control, plain_calls = decode(tiny_model, prompt, grammar, guided=True)
        # the request says exactly what the answer will be (a transcript the call copies)
        copied, control, calls = decode(tiny_model, prompt, grammar, guided=True, lookup=list(step.token_ids))
        assert copied.token_ids == plain.token_ids == step.token_ids
        assert control.forced_tokens <= plain_control.forced_tokens  # a speculated token is not counted as forced
        assert calls < plain_calls, (calls, plain_calls)
        # a request that says something close but different: proposals are refused part way (the
        # cache is cropped back to the last right token), the answer stays the same
        ids = list(step.token_ids)
        near = [(t - 1 if t > 3 else t + 1) if i % 3 == 2 else t for i, t in enumerate(ids)]
        wrong, _, wrong_calls = decode(tiny_model, prompt, grammar, guided=True, lookup=near)
        assert wrong.token_ids == step.token_ids


def test_speculation_proposes_what_follows_the_answers_last_tokens_in_the_request():
    control = RequestControl()
    control.take([5, 6, 7], eos_id=0, decode=lambda ids: "")
    guide = GuidedControl(control, eos_id=0, decode=lambda ids: "", lookup=[6, 7, 1, 9, 5, 6, 7, 2, 3, 4, 0, 8])
    assert guide.speculate(2) == [2, 3]  # the longest match (5, 6, 7), then what follows it
    assert guide.speculate(10) == [2, 3, 4]  # never past an end symbol
    assert GuidedControl(control, eos_id=0, decode=lambda ids: "", lookup=[1, 2]).speculate(4) == []
    assert guide.speculate(0) == []


def test_forced_text_streams_before_the_call_that_feeds_it_and_is_never_taken_back(tiny_model, grammar):
    # A streamed tool call's name and JSON keys reach the listener before the model checks them.
    factory, compiled = grammar
    for seed in range(4):
        prompt = random_prompt(random.Random(seed))
        heard: list[tuple[list[int], int]] = []
        control = RequestControl(grammar=factory.session(compiled, 80))
        control.on_tokens = lambda ids: heard.append((ids, len(control.token_ids)))
        guide = GuidedControl(control, eos_id=tiny_model._eos_id, decode=tiny_model.tokenizer.decode)
        processor = ControlProcessor([control], eos_id=tiny_model._eos_id, decode=tiny_model.tokenizer.decode)
        (result,) = tiny_model.generate_detailed(
            [prompt], [[]], logits_processor=LogitsProcessorList([processor]),
            stopping_criteria=StoppingCriteriaList([processor.stopper()]), guide=guide, num_beams=1, max_new_tokens=80,
        )
        assert any(len(ids) > taken for ids, taken in heard)  # ahead of the tokens taken
        final = tiny_model.tokenizer.decode(result.token_ids)
        for ids, _ in heard:  # whatever was heard is the start of the final answer's text
            assert final.startswith(tiny_model.tokenizer.decode(ids))


def test_a_draft_stays_within_the_token_budget(grammar):
    factory, compiled = grammar
    control = RequestControl(grammar=factory.session(compiled, 80))
    heard: list[list[int]] = []
    control.on_tokens = heard.append
    guide = GuidedControl(control, eos_id=0, decode=lambda ids: "")
    forced = guide.draft(100)
    assert forced and heard[-1] == forced
    assert guide.draft(1) == forced[:1] and heard[-1] == forced[:1]


def test_the_guided_loop_keeps_the_prefix_cache_working(tiny_model, grammar):
    prompt = random_prompt(random.Random(7))
    alone, _, _ = decode(tiny_model, prompt, grammar, guided=True)
    prefix = PrefixCache()
    first, _, _ = decode(tiny_model, prompt, grammar, guided=True, prefix=prefix)
    assert prefix.num_tokens > 0 and first.token_ids == alone.token_ids
    # a follow-up turn: the earlier prompt and answer, then more; its head comes from the cache
    follow_up = f"{prompt} {first.text}\nUSER: and now?\nASSISTANT:"
    second, _, _ = decode(tiny_model, follow_up, grammar, guided=True, prefix=prefix)
    assert prefix.reused_tokens > 0 and second.cached_tokens == prefix.reused_tokens
    assert second.token_ids == decode(tiny_model, follow_up, grammar, guided=False)[0].token_ids


def test_a_call_ends_at_its_closing_brace_without_decoding_the_end_symbol(tiny_model, grammar):
    result, control, calls = decode(tiny_model, random_prompt(random.Random(3)), grammar, guided=False)
    assert result.text.endswith("}") and control.completed and tiny_model._eos_id not in result.token_ids
    assert calls == len(result.token_ids)  # the prompt's call made the first token; none for an end symbol
    # without the stopper (another caller of the processor) the end symbol follows the brace: the same answer
    factory, compiled = grammar
    control = RequestControl(grammar=factory.session(compiled, 80))
    processor = ControlProcessor([control], eos_id=tiny_model._eos_id, decode=tiny_model.tokenizer.decode)
    (again,) = tiny_model.generate_detailed([random_prompt(random.Random(3))], [[]],
                                            logits_processor=LogitsProcessorList([processor]), num_beams=1,
                                            max_new_tokens=80)
    assert again.token_ids == result.token_ids and again.finish_reason == "stop"


def test_auto_choice_opens_the_call_grammar_only_on_a_brace(grammar, tiny_model):
    factory, compiled = grammar
    encode = factory.tokenizer.tokenize_str
    opened: list[int] = []

    def opener() -> Any:
        opened.append(1)
        return factory.session(compiled, 80)

    text = RequestControl(open_grammar=opener)
    text.take(encode("Hello"), tiny_model._eos_id, tiny_model.tokenizer.decode)
    text.take(encode(" {"), tiny_model._eos_id, tiny_model.tokenizer.decode)
    assert text.grammar is None and text.open_grammar is None and not opened  # decided on the first text
    call = RequestControl(open_grammar=opener)
    call.take(encode('{"na'), tiny_model._eos_id, tiny_model.tokenizer.decode)
    assert call.grammar is not None and opened == [1]
    assert call.grammar.forced()  # the rest of the key is forced by the grammar now


# ---------------------------------------------------------------- streaming calls


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


def assert_same_answer(streamed: AIMessageChunk, invoked: AIMessage) -> None:
    [call] = streamed.tool_calls
    [expected] = invoked.tool_calls
    assert {**call, "id": None} == {**expected, "id": None}
    assert call["id"].startswith("call_") and streamed.content == invoked.content == ""
    # the same usage, but for the prompt positions the second request took from the prefix cache
    details = {"input_token_details": {}}
    assert {**streamed.usage_metadata, **details} == {**invoked.usage_metadata, **details}
    assert streamed.response_metadata == invoked.response_metadata


def test_a_forced_call_streams_as_tool_call_chunks_that_merge_into_the_invoked_message(chat, tiny_model):
    bound = chat.bind_tools(TOOLS, tool_choice="set_timer")
    invoked = bound.invoke("a timer please")
    ends: list[float] = []
    original = tiny_model.generate_detailed

    def timed(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        finally:
            ends.append(time.perf_counter())

    chunks, received = [], []
    tiny_model.generate_detailed = timed
    try:
        with llm_calls(tiny_model, sleep_s=0.03):  # slow enough that the order of events is clear
            for chunk in bound.stream("a timer please"):
                chunks.append(chunk)
                received.append(time.perf_counter())
    finally:
        del tiny_model.generate_detailed
    assert_same_answer(merged(chunks), invoked)
    with_calls = [i for i, c in enumerate(chunks) if c.tool_call_chunks]
    first = chunks[with_calls[0]].tool_call_chunks[0]
    assert first["name"] == "set_timer" and first["id"].startswith("call_") and first["index"] == 0
    assert received[with_calls[0]] < ends[0]  # the call's name arrived while it was still being decoded
    later = [c.tool_call_chunks[0] for c in chunks[with_calls[0] + 1:] if c.tool_call_chunks]
    assert later and all(c["name"] is None and c["id"] is None and c["args"] for c in later)
    assert invoked.response_metadata["forced_tokens"] > 0


async def test_auto_choice_constrains_and_streams_an_answer_that_starts_a_call(chat, tiny_model):
    bound = chat.bind_tools(TOOLS)
    with llm_calls(tiny_model, brace_first=True):
        invoked = await bound.ainvoke("a timer please")
        chunks = [chunk async for chunk in bound.astream("a timer please")]
        streamed = merged(chunks)
    assert_same_answer(streamed, invoked)  # the call grammar opened on the brace: always a valid call
    assert sum(bool(c.tool_call_chunks) for c in chunks) > 2 and invoked.response_metadata["forced_tokens"] > 0
    # an answer that does not start with a brace stays plain text, unconstrained and streamed as text
    plain = bound.invoke("a timer please", max_tokens=6)
    assert plain.tool_calls == [] and "forced_tokens" not in plain.response_metadata
    assert "".join(c.content for c in bound.stream("a timer please", max_tokens=6)) == plain.content


def test_call_parts_follow_a_call_as_it_is_written():
    text = '{"name": "set_timer", "arguments": {"seconds": 60, "label": "te\\"a}"}}'
    seen = [call_parts(text[:end]) for end in range(len(text) + 1)]
    assert seen[0] == (None, None) and seen[-1] == ("set_timer", '{"seconds": 60, "label": "te\\"a}"}')
    names = [name for name, _ in seen]
    assert names.index("set_timer") == text.index('",') + 1  # only once its string is closed
    args = [a for _, a in seen if a is not None]
    assert all(later.startswith(earlier) for earlier, later in zip(args, args[1:]))  # they only grow
    assert call_parts('  {"arguments": {"a": [1, {"b": 2}]}, "name": "x"}') == ("x", '{"a": [1, {"b": 2}]}')
    assert call_parts("Sure, a timer.") == (None, None)


def test_a_cancelled_stream_stops_generation(chat, tiny_model):
    bound = chat.bind_tools(TOOLS, tool_choice="set_timer")
    with llm_calls(tiny_model, sleep_s=0.02) as calls:
        stream = bound.stream("a timer please")
        for chunk in stream:
            if chunk.tool_call_chunks:
                break
        stream.close()
        count = len(calls)
        time.sleep(0.2)
    assert len(calls) <= count + 1  # at most the call under way when the consumer left
