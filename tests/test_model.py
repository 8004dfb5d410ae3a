"""The SALMONN model: token counts, prompt format, batching, streaming, LoRA scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salmonn_agent.config import AUDIO_PLACEHOLDER
from salmonn_agent.errors import AudioError, ConfigError, SalmonnError

SR = 16_000
GREEDY = {"num_beams": 1, "max_new_tokens": 8}


def test_audio_token_counts(tiny_model, noise_clips):
    thirty, seventy, half = tiny_model.encode_audio(
        [noise_clips["30s"], noise_clips["70s"], noise_clips["half"]], sample_rate=SR
    )
    assert thirty.num_tokens == 88  # 1500 frames in windows of 17 → 88
    assert seventy.num_tokens == 3 * 88  # three 30 s chunks
    assert half.num_tokens == 88  # short clips are padded like upstream
    assert tiny_model.num_audio_tokens(70 * SR) == 264
    assert thirty.embeds.shape[1] == tiny_model.llm.config.hidden_size


def test_long_audio_chunks_are_encoded_independently(tiny_model, noise_clips):
    """The first 30 s of a long clip give the same tokens as that 30 s alone."""
    (whole,) = tiny_model.encode_audio([noise_clips["70s"]], sample_rate=SR)
    (first,) = tiny_model.encode_audio([noise_clips["70s"][: 30 * SR]], sample_rate=SR)
    torch.testing.assert_close(whole.embeds[:88], first.embeds, atol=1e-5, rtol=1e-5)


def test_audio_over_the_limit_is_refused(tiny_model):
    limit = tiny_model.config.max_audio_seconds
    with pytest.raises(AudioError, match="over the limit"):
        tiny_model.encode_audio([np.zeros(int((limit + 1) * SR), dtype=np.float32)], sample_rate=SR)


def test_prompt_matches_the_official_template(tiny_model):
    prompt = tiny_model.render_prompt("  Recognize the speech and give me the transcription. ")
    assert prompt == (
        "USER: <Speech><SpeechHere></Speech> Recognize the speech and give me the transcription."
        "\nASSISTANT:"
    )


def test_prompt_tokens_are_bos_then_two_sentencepiece_pieces(tiny_model, noise_clips):
    """Upstream: BOS, then 'USER: <Speech>' and the rest tokenized separately, audio between."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(
        model_file=str(tiny_model.config.llm) + "/tokenizer.model"
    )
    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    prompt = tiny_model.render_prompt("Please describe the audio.")
    before, after = prompt.split(AUDIO_PLACEHOLDER)
    assert before == "USER: <Speech>"
    inputs = tiny_model.embed_prompts([prompt], [[audio]])
    expected_ids = [1] + sp.encode(before)
    embed = tiny_model.llm.get_input_embeddings()
    expected = torch.cat([
        embed(torch.tensor(expected_ids)), audio.embeds, embed(torch.tensor(sp.encode(after)))
    ])
    torch.testing.assert_close(inputs.embeds[0], expected)
    assert inputs.text_tokens == [len(expected_ids) + len(sp.encode(after))]
    assert inputs.audio_tokens == [88]


def test_byte_fallback_tokens_decode_as_sentencepiece_does(tiny_model):
    sp = tiny_model.tokenizer.sentencepiece_model
    space, letter = sp.piece_to_id("<0x20>"), sp.piece_to_id("<0x41>")
    for ids in ([space, letter], sp.encode("héllo 😀\n日本"), [tiny_model._eos_id, space, letter]):
        assert tiny_model.tokenizer.decode(ids) == sp.decode([i for i in ids if i != tiny_model._eos_id])
    assert tiny_model.tokenizer.decode([space, letter]) == " A"


def test_placeholder_count_must_match_clips(tiny_model, noise_clips):
    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    with pytest.raises(SalmonnError, match="placeholders"):
        tiny_model.embed_prompts(["no audio here"], [[audio]])


def test_batched_greedy_equals_per_item(tiny_model, noise_clips):
    clips = [noise_clips["30s"], noise_clips["5s"], noise_clips["70s"]]
    prompts = ["Please describe the audio.", "hello", "Recognize the speech."]
    batched = tiny_model.generate(clips, prompts, sample_rate=SR, **GREEDY)
    single = [tiny_model.generate(c, p, sample_rate=SR, **GREEDY)[0] for c, p in zip(clips, prompts)]
    assert batched == single
    assert any(answer for answer in batched)


def test_beam_search_and_sampling_run(tiny_model, noise_clips):
    beams = tiny_model.generate(noise_clips["5s"], "hello", sample_rate=SR, max_new_tokens=6)
    torch.manual_seed(0)
    sampled = tiny_model.generate(
        noise_clips["5s"], "hello", sample_rate=SR, num_beams=1, do_sample=True,
        temperature=0.7, max_new_tokens=6,
    )
    assert isinstance(beams[0], str) and isinstance(sampled[0], str)


def test_stream_joins_to_the_greedy_answer(tiny_model, noise_clips):
    answer = tiny_model.generate(noise_clips["30s"], "hello", sample_rate=SR, **GREEDY)[0]
    pieces = list(tiny_model.stream(noise_clips["30s"], "hello", sample_rate=SR, max_new_tokens=8))
    assert "".join(pieces).strip() == answer
    with pytest.raises(ConfigError, match="num_beams=1"):
        list(tiny_model.stream(noise_clips["30s"], "hello", sample_rate=SR, num_beams=4))


def test_closing_a_stream_stops_generation(tiny_model, noise_clips):
    stream = tiny_model.stream(noise_clips["5s"], "hello", sample_rate=SR, max_new_tokens=200)
    next(stream)
    stream.close()  # joins the worker thread once it stops at the next token
    assert tiny_model._generate_lock.acquire(timeout=5)
    tiny_model._generate_lock.release()


def test_lora_scale_zero_equals_the_llm_without_lora(tiny_model, noise_clips):
    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    zero = tiny_model.generate(audio, "hello", lora_scale=0.0, **GREEDY)
    with tiny_model.llm.disable_adapter():
        plain = tiny_model.generate(audio, "hello", **GREEDY)
    default = tiny_model.generate(audio, "hello", **GREEDY)
    assert zero == plain
    assert default != plain  # the tiny model's LoRA is non-zero, so it matters


def test_lora_scale_applies_to_one_call_only(tiny_model, noise_clips):
    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    before = tiny_model.generate(audio, "hello", **GREEDY)
    tiny_model.generate(audio, "hello", lora_scale=2.0, **GREEDY)
    assert tiny_model.generate(audio, "hello", **GREEDY) == before
    scalings = {s for layer in tiny_model._lora_layers for s in layer.scaling.values()}
    assert scalings == {tiny_model.config.lora.scaling}


def test_frozen_parts_and_trainable_parts(tiny_model):
    trainable = set(tiny_model.trainable_state_dict())
    assert any(n.startswith("window_qformer.qformer.") for n in trainable)
    assert "window_qformer.query_tokens" in trainable and "projection.weight" in trainable
    assert any(".lora_A.default." in n for n in trainable)
    assert not any(n.startswith("speech_encoder.") for n in trainable)
    assert not any(n.startswith("llm.") and "lora_" not in n for n in trainable)


def test_beats_variant_concatenates_both_encoders(tmp_path_factory, noise_clips):
    from devkit.tiny import build_tiny_model
    from salmonn_agent.model.salmonn import SALMONN

    model = SALMONN.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("beats"), with_beats=True))
    width = model.speech_encoder.config.d_model + model.beats.output_dim
    assert model.window_qformer.qformer.config.encoder_hidden_size == width
    clips = [noise_clips["30s"], noise_clips["5s"]]
    encoded = model.encode_audio(clips, sample_rate=SR)
    assert [e.num_tokens for e in encoded] == [88, 88]
    (alone,) = model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    torch.testing.assert_close(encoded[1].embeds, alone.embeds, atol=1e-5, rtol=1e-5)
    batched = model.generate(clips, ["hello", "hi"], sample_rate=SR, **GREEDY)
    assert batched == [model.generate(c, p, sample_rate=SR, **GREEDY)[0] for c, p in zip(clips, ["hello", "hi"])]


def test_generation_details(tiny_model, noise_clips):
    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    prompt = tiny_model.render_prompt("hello")
    (result,) = tiny_model.generate_detailed([prompt], [[audio]], num_beams=1, max_new_tokens=5)
    assert result.prompt_audio_tokens == 88 and result.prompt_text_tokens > 5
    assert len(result.token_ids) <= 5 and result.finish_reason in {"stop", "length"}
    assert result.text == tiny_model.tokenizer.decode(result.token_ids).strip()
    stream = tiny_model.stream_from_prompt(prompt, [audio], max_new_tokens=5)
    text = "".join(stream)
    assert stream.token_ids == result.token_ids and stream.finish_reason == result.finish_reason
    assert text.strip() == result.text


def test_bfloat16_model_generates(tiny_model_dir, noise_clips):
    from salmonn_agent.model.salmonn import SALMONN

    model = SALMONN.from_pretrained(tiny_model_dir, dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    (audio,) = model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    assert audio.embeds.dtype == torch.bfloat16
    assert isinstance(model.generate(audio, "hello", num_beams=2, max_new_tokens=4)[0], str)


def _logits_similarity(reference, model, noise_clips) -> float:
    """Cosine similarity of two models' logits on one audio prompt; ``model`` must still answer."""
    (audio,) = reference.encode_audio([noise_clips["5s"]], sample_rate=SR)
    exact, approx = _prompt_logits(reference, audio), _prompt_logits(model, audio)
    assert isinstance(model.generate(audio, "hello", max_new_tokens=4)[0], str)
    return float(torch.nn.functional.cosine_similarity(exact, approx, dim=0))


def test_int8_model_quantizes_the_llm_only_and_keeps_its_outputs(tiny_model, tiny_model_dir, noise_clips):
    from salmonn_agent.model.salmonn import SALMONN, place_model

    model = SALMONN.from_pretrained(tiny_model_dir, dtype="int8")
    assert model.quantized and model.dtype == torch.float32
    layer = model.llm.get_base_model().model.layers[0]
    assert "quantized" in type(layer.mlp.down_proj).__module__
    assert "quantized" in type(layer.self_attn.q_proj.base_layer).__module__  # under LoRA
    assert layer.self_attn.q_proj.lora_A["default"].weight.dtype == torch.float32  # LoRA stays float
    assert _logits_similarity(tiny_model, model, noise_clips) > 0.99
    with pytest.raises(ConfigError, match="CPU"):
        place_model(model, "cuda", "int8")



def test_half_weight_linear_matches_float32_for_decoding_and_prefill_rows():
    from salmonn_agent.model.half_weights import HALF_ROWS, HalfWeightLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    half = HalfWeightLinear(linear)
    assert half.weight.dtype == torch.float16 and half.bias.dtype == torch.float32
    for rows in (1, HALF_ROWS, HALF_ROWS + 1, 40):  # the float16 kernel, then the widened weight
        x = torch.randn(1, rows, 64)
        out = half(x)
        assert out.dtype == torch.float32 and out.shape == (1, rows, 48)
        torch.testing.assert_close(out, linear(x), atol=5e-3, rtol=5e-3)


def test_half_weight_linear_keeps_a_large_weight_in_float16_for_a_few_more_rows(monkeypatch):
    """Widening a weight larger than any CPU cache (an LM head) costs more than its float16 product
    of a guided decoding's checked rows."""
    from salmonn_agent.model import half_weights
    from salmonn_agent.model.half_weights import HALF_ROWS, LARGE_HALF_ROWS, LARGE_WEIGHT, HalfWeightLinear

    monkeypatch.setattr(half_weights, "LARGE_WEIGHT", 48 * 64)  # a small weight stands in for a head
    head = HalfWeightLinear(torch.nn.Linear(64, 48))
    layer = HalfWeightLinear(torch.nn.Linear(32, 48))
    kernels: list[torch.dtype] = []
    linear = half_weights.F.linear

    def recording(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        kernels.append(weight.dtype)
        return linear(x, weight)

    monkeypatch.setattr(half_weights.F, "linear", recording)
    head(torch.randn(HALF_ROWS + 3, 64))
    layer(torch.randn(HALF_ROWS + 3, 32))
    head(torch.randn(LARGE_HALF_ROWS + 1, 64))
    assert kernels == [torch.float16, torch.float32, torch.float32]
    assert LARGE_WEIGHT >= 16 * 2**20 and HALF_ROWS < LARGE_HALF_ROWS


def test_half_weight_linear_multiplies_plain_rows_of_a_sliced_input(monkeypatch):
    """A prefill's LM head gets the prompt's last position, a slice whose batch stride is the
    prompt's size; the product must see plain rows (that stride made it 10-20x slower)."""
    from salmonn_agent.model import half_weights
    from salmonn_agent.model.half_weights import HalfWeightLinear

    torch.manual_seed(0)
    half = HalfWeightLinear(torch.nn.Linear(64, 48))
    seen: list[tuple[int, ...]] = []
    linear = half_weights.F.linear

    def recording(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        seen.append(x.stride())
        return linear(x, weight)

    monkeypatch.setattr(half_weights.F, "linear", recording)
    hidden = torch.randn(1, 18, 64)
    for x in (hidden[:, -1:, :], hidden[:, 5:, :], hidden[0]):  # the LM head's slice, a prefill's rows, 2-d
        out = half(x)
        assert out.shape == (*x.shape[:-1], 48)
        assert seen[-1] == (64, 1)
        torch.testing.assert_close(out, half(x.clone(memory_format=torch.contiguous_format)), atol=0, rtol=0)


def test_float16_weights_model_halves_the_llm_linears_only_and_keeps_its_outputs(
    tiny_model, tiny_model_dir, noise_clips
):
    from salmonn_agent.model.half_weights import HalfWeightLinear
    from salmonn_agent.model.salmonn import SALMONN, place_model

    model = SALMONN.from_pretrained(tiny_model_dir, dtype="float16-weights")
    assert model.half_weights and model.dtype == torch.float32
    base = model.llm.get_base_model()
    layer = base.model.layers[0]
    assert isinstance(layer.mlp.down_proj, HalfWeightLinear)
    assert isinstance(layer.self_attn.q_proj.base_layer, HalfWeightLinear)  # under LoRA
    assert layer.self_attn.q_proj.lora_A["default"].weight.dtype == torch.float32  # LoRA stays float32
    assert base.get_input_embeddings().weight.dtype == torch.float32  # audio tokens join float32 text
    assert _logits_similarity(tiny_model, model, noise_clips) > 0.999
    with pytest.raises(ConfigError, match="CPU"):
        place_model(model, "cuda", "float16-weights")


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_16_bit_weights_on_cpu_bfloat16_where_the_cpu_computes_it(tiny_model_dir, monkeypatch, native):
    from salmonn_agent.model import precision
    from salmonn_agent.model.half_weights import weight_format
    from salmonn_agent.model.salmonn import SALMONN

    monkeypatch.setattr(precision, "native_bfloat16", lambda: native)
    model = SALMONN.from_pretrained(tiny_model_dir, device="cpu", dtype="auto")
    assert model.half_weights and not model.quantized
    assert weight_format(model.llm) == ("bfloat16" if native else "float16")
    assert not SALMONN.from_pretrained(tiny_model_dir, device="cpu").half_weights  # the library default stays float32


def test_bfloat16_weights_model_keeps_its_outputs_and_folds_lora_at_each_calls_scale(
    tiny_model, tiny_model_dir, noise_clips
):
    from salmonn_agent.model.half_weights import HalfWeightLinear
    from salmonn_agent.model.salmonn import SALMONN, place_model

    model = SALMONN.from_pretrained(tiny_model_dir, dtype="bfloat16-weights")
    base = model.llm.get_base_model()
    assert isinstance(base.model.layers[0].mlp.down_proj, HalfWeightLinear)
    assert base.model.layers[0].mlp.down_proj.weight.dtype == torch.bfloat16
    assert base.get_input_embeddings().weight.dtype == torch.float32
    assert _logits_similarity(tiny_model, model, noise_clips) > 0.995
    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    for scale in (2.0, None):  # LoRA is merged into the bfloat16 weights at the call's scale
        similarity = torch.nn.functional.cosine_similarity(
            _prompt_logits(tiny_model, audio, scale), _prompt_logits(model, audio, scale), dim=0)
        assert similarity > 0.995, scale
    with pytest.raises(ConfigError, match="CPU"):
        place_model(model, "cuda", "bfloat16-weights")


def _prompt_logits(model, audio, lora_scale=None) -> torch.Tensor:
    from salmonn_agent.config import GenerationConfig

    inputs = model.embed_prompts([model.render_prompt("hello")], [[audio]])
    with model._generation_scope(GenerationConfig(lora_scale=lora_scale)):
        return model.llm(inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask).logits.flatten()


def test_float16_weights_fold_lora_into_the_weights_at_each_calls_scale(tiny_model, tiny_model_dir, noise_clips):
    from salmonn_agent.model.salmonn import SALMONN

    model = SALMONN.from_pretrained(tiny_model_dir, dtype="float16-weights")
    q_proj = model.llm.get_base_model().model.layers[0].self_attn.q_proj
    merged = q_proj.base_layer.weight.clone()
    assert q_proj.merged and not torch.equal(merged, q_proj.base_layer.unmerged)  # LoRA is in the weight
    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    for scale in (None, 2.0, 0.0, None):  # the merged weight follows the call's scale
        similarity = torch.nn.functional.cosine_similarity(
            _prompt_logits(tiny_model, audio, scale), _prompt_logits(model, audio, scale), dim=0)
        assert similarity > 0.999, scale
    assert torch.equal(q_proj.base_layer.weight, merged)  # back to the default scale, without drift
    default = model.generate(audio, "hello", **GREEDY)
    assert model.generate(audio, "hello", lora_scale=0.0, **GREEDY) != default  # the tiny LoRA matters
    assert model.generate(audio, "hello", **GREEDY) == default


def test_single_requests_reuse_the_prompt_head_and_answer_the_same(tiny_model_dir, noise_clips):
    from salmonn_agent.model.salmonn import SALMONN

    model = SALMONN.from_pretrained(tiny_model_dir)
    five, half = model.encode_audio([noise_clips["5s"], noise_clips["half"]], sample_rate=SR)
    first = model.generate(five, "Please describe the audio.", **GREEDY)
    assert model.head_hits == 0
    second = model.generate(half, "What do you hear?", **GREEDY)
    assert model.head_hits == 1  # the template's text before the clip came from the first request
    fresh = SALMONN.from_pretrained(tiny_model_dir)
    assert second == fresh.generate(half, "What do you hear?", **GREEDY)
    assert first == fresh.generate(five, "Please describe the audio.", **GREEDY)
    model.generate([five, half], "hello", **GREEDY)  # batches and beam search prefill everything
    model.generate(five, "hello", num_beams=2, max_new_tokens=4)
    assert model.head_hits == 1



def test_min_length_counts_new_tokens_so_an_answer_is_not_empty(tiny_model, noise_clips):
    """Upstream's decode config has min_length=1; with only embeddings as the prompt, current
    transformers would subtract the prompt's length and let the end token come first."""
    from transformers import LogitsProcessor, LogitsProcessorList

    class PreferEnd(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            scores[:, tiny_model._eos_id] += 1e4
            return scores

    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    prompt = tiny_model.render_prompt("hello")

    def answer(min_length: int):
        return tiny_model.generate_detailed([prompt], [[audio]], logits_processor=LogitsProcessorList([PreferEnd()]),
                                            max_new_tokens=4, min_length=min_length)[0]

    assert len(answer(1).token_ids) == 1 and len(answer(3).token_ids) == 3
    assert answer(0).token_ids == []


# --------------------------------------------------------------------- prefix KV cache
def _next_turn(prompt: str, answer: str, question: str) -> str:
    return f"{prompt} {answer}\nUSER: {question}\nASSISTANT:"


def test_prefix_cache_gives_the_same_greedy_answers_and_prefills_only_the_new_turn(tiny_model, noise_clips):
    from salmonn_agent.model.generation import PrefixCache

    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    cache = PrefixCache()
    prompt = tiny_model.render_prompt("Please describe the audio.")
    (first,) = tiny_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, **GREEDY)
    first_positions = first.prompt_text_tokens + first.prompt_audio_tokens
    assert cache.reused_tokens == 0 and cache.prefilled_tokens == first_positions
    # prompt + answer, but the answer's last token, which was never fed back
    assert cache.num_tokens == first_positions + len(first.token_ids) - (first.finish_reason == "length")
    assert first.token_ids == tiny_model.generate_detailed([prompt], [[audio]], **GREEDY)[0].token_ids

    prompt = _next_turn(prompt, first.text, "Is there speech in it?")
    (second,) = tiny_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, **GREEDY)
    (plain,) = tiny_model.generate_detailed([prompt], [[audio]], **GREEDY)
    assert second.token_ids == plain.token_ids and second.text == plain.text
    positions = second.prompt_text_tokens + second.prompt_audio_tokens
    assert cache.reused_tokens >= first_positions  # the whole first prompt, audio included
    assert cache.prefilled_tokens == positions - cache.reused_tokens < positions - 88

    prompt = _next_turn(prompt, second.text, "Really?")  # a third turn, streamed
    stream = tiny_model.stream_from_prompt(prompt, [audio], prefix_cache=cache, max_new_tokens=8)
    text = "".join(stream)
    (plain,) = tiny_model.generate_detailed([prompt], [[audio]], **GREEDY)
    assert stream.token_ids == plain.token_ids and text.strip() == plain.text
    assert cache.reused_tokens >= positions


def test_prefix_cache_reuses_a_partly_matching_prefix(tiny_model, noise_clips):
    from salmonn_agent.model.generation import PrefixCache

    (audio,) = tiny_model.encode_audio([noise_clips["30s"]], sample_rate=SR)
    cache = PrefixCache()
    tiny_model.generate_detailed([tiny_model.render_prompt("hello")], [[audio]], prefix_cache=cache, **GREEDY)
    other = tiny_model.render_prompt("Recognize the speech.")  # same clip, another question
    (answer,) = tiny_model.generate_detailed([other], [[audio]], prefix_cache=cache, **GREEDY)
    assert answer.token_ids == tiny_model.generate_detailed([other], [[audio]], **GREEDY)[0].token_ids
    positions = answer.prompt_text_tokens + answer.prompt_audio_tokens
    assert 88 < cache.reused_tokens < positions - 1  # BOS, "USER: <Speech>" and the audio tokens
    # the same prompt again: everything but the last position comes from the cache
    (again,) = tiny_model.generate_detailed([other], [[audio]], prefix_cache=cache, **GREEDY)
    assert again.token_ids == answer.token_ids
    assert cache.reused_tokens == positions - 1 and cache.prefilled_tokens == 1


def test_prefix_cache_is_rebuilt_for_another_lora_scale_or_dtype(tiny_model, tiny_model_dir, noise_clips):
    from salmonn_agent.model.generation import PrefixCache
    from salmonn_agent.model.salmonn import SALMONN

    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    prompt = tiny_model.render_prompt("hello")
    cache = PrefixCache()
    tiny_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, **GREEDY)
    (scaled,) = tiny_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, lora_scale=2.0, **GREEDY)
    assert cache.reused_tokens == 0  # built under the default scale: not reused
    assert scaled.token_ids == tiny_model.generate_detailed([prompt], [[audio]], lora_scale=2.0, **GREEDY)[0].token_ids
    tiny_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, lora_scale=2.0, **GREEDY)
    assert cache.reused_tokens > 0  # same scale again: reused
    with tiny_model.llm.disable_adapter():
        tiny_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, lora_scale=2.0, **GREEDY)
    assert cache.reused_tokens == 0
    half = SALMONN.from_pretrained(tiny_model_dir, dtype="bfloat16")
    (audio16,) = half.encode_audio([noise_clips["5s"]], sample_rate=SR)
    half.generate_detailed([prompt], [[audio16]], prefix_cache=cache, **GREEDY)
    assert cache.reused_tokens == 0 and cache.embeds.dtype == torch.bfloat16


def test_prefix_cache_needs_one_prompt_and_skips_beam_search(tiny_model, noise_clips):
    from salmonn_agent.model.generation import PrefixCache

    (audio,) = tiny_model.encode_audio([noise_clips["5s"]], sample_rate=SR)
    prompt = tiny_model.render_prompt("hello")
    cache = PrefixCache()
    with pytest.raises(SalmonnError, match="one prompt at a time"):
        tiny_model.generate_detailed([prompt, prompt], [[audio], [audio]], prefix_cache=cache, **GREEDY)
    tiny_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, **GREEDY)
    kept = cache.embeds
    (beams,) = tiny_model.generate_detailed([prompt], [[audio]], prefix_cache=cache, num_beams=2, max_new_tokens=4)
    assert beams.token_ids == tiny_model.generate_detailed([prompt], [[audio]], num_beams=2, max_new_tokens=4)[0].token_ids
    assert cache.embeds is kept and cache.reused_tokens == 0  # untouched by beam search


def test_loading_prints_no_progress_bars_or_library_warnings(tiny_model_dir, capfd):
    import warnings

    from transformers.utils import logging as hf_logging

    from salmonn_agent.model.salmonn import SALMONN

    hf_logging.enable_progress_bar()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SALMONN.from_pretrained(tiny_model_dir, device="cpu")
    err = capfd.readouterr().err
    assert "Loading weights" not in err
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]
    assert hf_logging.is_progress_bar_enabled()  # the user's own setting is restored


def test_loading_leaves_a_cpu_model_on_one_thread_and_restores_the_count():
    """salmonn_agent/model/threads.py: a CPU model loads on one torch thread (so the thread
    that generates later is the only OpenMP pool); the caller's thread count comes back."""
    import torch

    from salmonn_agent.model.threads import one_thread, use_threads

    before = torch.get_num_threads()
    seen: list[int] = []
    with one_thread("cpu"):
        seen.append(torch.get_num_threads())
    with one_thread("cuda"):  # a GPU model loads with every thread
        seen.append(torch.get_num_threads())
    assert seen == [1, before] and torch.get_num_threads() == before
    use_threads(before)
    assert torch.get_num_threads() == before


def test_the_chat_engine_thread_uses_its_creators_thread_count(tiny_model):
    import threading

    import torch

    from salmonn_agent.chat.cache import AudioTokenCache
    from salmonn_agent.chat.engine import GenerationEngine

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine = GenerationEngine(tiny_model, AudioTokenCache(4))
    finally:
        torch.set_num_threads(before)
    seen: list[int] = []
    original = engine._next_batch

    def spy():  # runs on the engine's thread
        seen.append(torch.get_num_threads())
        return None

    engine._next_batch = spy
    engine._worker = threading.Thread(target=engine._run)
    engine._worker.start()
    engine._worker.join(10)
    engine._next_batch = original
    assert seen == [1]
