"""salmonn-mini's architecture: SALMONN's design at a size a 2-core CPU runs.

- Whisper tiny.en's encoder (384 wide), Whisper-only (no BEATs), with a 10 s context:
  500 encoder frames → 29 windows of 17 frames (0.34 s each) → 58 audio tokens per 10 s.
  Longer audio is chunked in 10 s pieces, so long clips keep working; 10 s instead of 30 s
  cuts encoder work and prompt length by two thirds for the short windows a voice assistant hears.
- A window-level Q-Former sized to the encoder: 384 wide, 2 layers, 6 heads, 2 queries per window.
  One query per 0.34 s gives about 3 tokens a second, no more than the LLM tokens of the speech
  itself; two leave room for the CTC alignment stage (see ``salmonn_agent/training/alignment.py``)
  to place one word per token with blanks between.
- SmolLM2-135M-Instruct with LoRA (r=8, alpha=32 on q_proj/v_proj, SALMONN's setting), prompted
  with its own ChatML chat template; answers end at ``<|im_end|>``.
- With ``hints=True`` (the shipped weights: their file's metadata says so), after each clip's
  audio tokens, as text: Whisper tiny.en's own transcript of it (its decoder over the same
  encoder states) and YAMNet's top AudioSet tags (``salmonn_agent/sound_tags.py``), the stand-in
  for SALMONN's BEATs encoder.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from salmonn_agent.config import (
    GenerationConfig,
    LoraSettings,
    QFormerConfig,
    SALMONNConfig,
)

CONTEXT_SECONDS = 10.0
PROMPT_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
)
"""SmolLM2-135M-Instruct's chat template for one user turn, as :func:`chat_prompt_template`
renders it (a test checks they agree). Kept as text because rendering it loads the tokenizer
and compiles its Jinja template: 0.7 s of every start-up."""


FOLLOW_UP_TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
"""A later user turn of the same chat template (the system prompt comes once, in the first)."""
ANSWER_END = "<|im_end|>\n"
"""What closes a past answer in the chat template."""


def chat_prompt_template(llm_dir: str | Path) -> str:
    """The LLM's own chat template for one user turn, with ``{}`` where the turn goes."""
    tokenizer = AutoTokenizer.from_pretrained(str(llm_dir))
    marker = "\x00USER\x00"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
    )
    return rendered.replace("{", "{{").replace("}", "}}").replace(marker, "{}")


def mini_config(whisper_dir: str | Path, llm_dir: str | Path, *, hints: bool = False) -> SALMONNConfig:
    """salmonn-mini's config over prepared base parts (see :func:`prepare_mini_parts`).

    ``hints``: Whisper tiny.en's own transcript and YAMNet's AudioSet tags follow the audio tokens
    (``speech_transcript`` and ``sound_tags``, see :mod:`salmonn_agent.model.hints`). The shipped
    weights read them since the recipe's hint stage (``tools/train_mini.py --hint-stage``).
    """
    return SALMONNConfig(
        speech_transcript=hints,
        sound_tags=hints,
        whisper=str(whisper_dir),
        llm=str(llm_dir),
        beats=None,
        qformer=QFormerConfig(
            hidden_size=384, num_hidden_layers=2, num_attention_heads=6, intermediate_size=1536,
            num_query_tokens=2,
        ),
        lora=LoraSettings(rank=8, alpha=32, dropout=0.1),
        prompt_template=PROMPT_TEMPLATE,
        follow_up_template=FOLLOW_UP_TEMPLATE,
        answer_end=ANSWER_END,
        end_sym="<|im_end|>",
        add_bos=False,
        tokenizer_mode="hf",
        chunk_seconds=CONTEXT_SECONDS,
        generation=GenerationConfig(num_beams=1, max_new_tokens=64, repetition_penalty=1.1),
    )
