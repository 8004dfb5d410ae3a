"""Compiled decoding (static key/value cache + torch.compile): same tokens, no recompiles, options."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from salmonn_agent.cli import main
from salmonn_agent.errors import ConfigError
from salmonn_agent.model.compiled import BUCKET, CompiledDecoding, bucketed_length
from salmonn_agent.model.generation import PrefixCache

SR = 16_000
GREEDY = {"num_beams": 1, "max_new_tokens": 8}
SPEECH = Path(__file__).resolve().parent.parent / "examples" / "audio" / "speech.wav"


@pytest.fixture
def compiled_model(tiny_model) -> Iterator[object]:
    """The tiny model with a fresh torch.compile state; back to ``auto`` afterwards."""
    torch._dynamo.reset()
    yield tiny_model
    tiny_model.set_compile("auto")
    torch._dynamo.reset()


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _answers(model, prompts: list[str], audio) -> list[list[int]]:
    return [model.generate_detailed([p], [[audio]], **GREEDY)[0].token_ids for p in prompts]


def _same_tokens_without_recompiling(model, noise_clips, backend: str) -> None:
    (audio,) = model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    prompts = [model.render_prompt("Describe."), model.render_prompt("Please describe the audio in more words.")]
    lengths = [model.embed_prompts([p], [[audio]]).embeds.shape[1] for p in prompts]
    assert lengths[0] != lengths[1]
    assert bucketed_length(lengths[0] + 8) == bucketed_length(lengths[1] + 8)
    model.set_compile("off")
    eager = _answers(model, prompts, audio)
    assert model.compiled.last_reason == "compile is off"
    model.set_compile("on", backend=backend)
    first = _answers(model, prompts[:1], audio)
    assert model.compiled.last_reason == "compiled"
    graphs = _graphs()
    assert graphs >= 1
    second = _answers(model, prompts[1:], audio)
    assert _graphs() == graphs  # a new prompt length in the same bucket reuses the compiled step
    assert first + second == eager


def test_compiled_greedy_tokens_equal_default_and_do_not_recompile(compiled_model, noise_clips):
    _same_tokens_without_recompiling(compiled_model, noise_clips, backend="eager")


@pytest.mark.slow
def test_inductor_compiled_greedy_tokens_equal_default(compiled_model, noise_clips):
    """What runs on a GPU: inductor's code (here for the CPU, without CUDA graphs)."""
    _same_tokens_without_recompiling(compiled_model, noise_clips, backend="inductor")


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_give_the_same_greedy_tokens(tiny_model_dir, noise_clips):
    """On a GPU: auto compiles (CUDA graphs) and gives the default path's greedy tokens."""
    from salmonn_agent.model.salmonn import SALMONN

    torch._dynamo.reset()
    model = SALMONN.from_pretrained(tiny_model_dir, device="cuda")
    _same_tokens_without_recompiling(model, noise_clips, backend="inductor")
    model.set_compile("auto")
    (audio,) = model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    model.generate_detailed([model.render_prompt("Describe.")], [[audio]], **GREEDY)
    assert model.compiled.last_reason == "compiled"


def test_compiled_streaming_gives_the_same_text(compiled_model, noise_clips):
    (audio,) = compiled_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    prompt = compiled_model.render_prompt("Describe.")
    expected = compiled_model.generate_detailed([prompt], [[audio]], **GREEDY)[0]
    compiled_model.set_compile("on", backend="eager")
    stream = compiled_model.stream_from_prompt(prompt, [audio], max_new_tokens=8)
    assert "".join(stream).strip() == expected.text
    assert compiled_model.compiled.last_reason == "compiled"


def test_compiled_call_bypasses_the_prefix_cache_and_beams_do_not_compile(compiled_model, noise_clips):
    (audio,) = compiled_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    prompt = compiled_model.render_prompt("Describe.")
    cache = PrefixCache()
    expected = compiled_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, **GREEDY)[0]
    assert cache.num_tokens > 0
    compiled_model.set_compile("on", backend="eager")
    again = compiled_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, **GREEDY)[0]
    assert compiled_model.compiled.last_reason == "compiled"
    assert again.token_ids == expected.token_ids and again.cached_tokens == 0
    assert cache.num_tokens == 0 and cache.prefilled_tokens == again.prompt_audio_tokens + again.prompt_text_tokens
    compiled_model.generate_detailed([prompt], [[audio]], num_beams=2, max_new_tokens=4)
    assert "beam" in compiled_model.compiled.last_reason


def test_auto_compiles_only_single_prompts_on_cuda():
    auto = CompiledDecoding("auto")
    assert auto.reason_against(torch.device("cuda"), 1, 1) is None
    assert "cpu" in auto.reason_against(torch.device("cpu"), 1, 1)
    assert "batch" in auto.reason_against(torch.device("cuda"), 4, 1)
    assert CompiledDecoding("on").reason_against(torch.device("cpu"), 4, 1) is None
    options = CompiledDecoding("on").generate_options(torch.device("cpu"), 300, 200)
    assert options["cache_implementation"] == "static"
    assert options["max_cache_len"] == 2 * BUCKET


def test_bad_compile_mode_is_one_line(tiny_model_dir, capsys):
    with pytest.raises(ConfigError, match="compile mode"):
        CompiledDecoding("yes")
    assert main(["ask", str(SPEECH), "hi", "--model", str(tiny_model_dir), "--compile", "yes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compile mode 'yes'" in err


def test_chat_turns_compiled_answer_the_same(compiled_model, noise_clips):
    """ChatSALMONN (its control processor, prefix store and streaming) on the compiled path."""
    from langchain_core.messages import AIMessage, HumanMessage

    from salmonn_agent.chat.messages import audio_message
    from salmonn_agent.chat_model import ChatSALMONN

    question = audio_message(noise_clips["5s"], "Please describe the audio.", sample_rate=SR)
    conversation = [question]
    chat = ChatSALMONN(client=compiled_model, temperature=0, max_tokens=8)
    expected = [chat.invoke(conversation).content]
    conversation += [AIMessage(expected[0]), HumanMessage("Is there speech in it?")]
    expected.append("".join(chunk.content for chunk in chat.stream(conversation)))
    compiled_model.set_compile("on", backend="eager")
    chat = ChatSALMONN(client=compiled_model, temperature=0, max_tokens=8)
    first = chat.invoke(conversation[:1])
    second = list(chat.stream(conversation))
    assert [first.content, "".join(chunk.content for chunk in second)] == expected
    assert compiled_model.compiled.last_reason == "compiled"
    assert second[-1].usage_metadata["input_token_details"]["cache_read"] == 0


def test_streams_generate_on_one_long_lived_thread(tiny_model, noise_clips):
    """CUDA graphs belong to the thread that recorded them: every stream reuses one thread."""
    import threading

    from transformers import LogitsProcessor, LogitsProcessorList

    seen: list[threading.Thread] = []  # the objects, not idents: a new thread may reuse an ident

    class Where(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            seen.append(threading.current_thread())
            return scores

    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    prompt = tiny_model.render_prompt("Describe.")
    for _ in range(2):
        stream = tiny_model.stream_from_prompt(prompt, [audio], max_new_tokens=3,
                                               logits_processor=LogitsProcessorList([Where()]))
        list(stream)
        assert stream.finish_reason is not None
    assert len(seen) >= 2 and all(t is seen[0] for t in seen) and seen[0] is not threading.current_thread()
