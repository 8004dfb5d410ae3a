"""SALMONN's prompt: the template, the audio placeholder, and how the text pieces are tokenized.

SALMONN was trained with transformers 4.28's slow ``LlamaTokenizer`` (legacy mode), which
encodes each text piece with SentencePiece directly, a dummy prefix space included. transformers
5 only ships a tokenizers-backed ``LlamaTokenizer`` whose pre-tokenizer can split the same text
differently, so for SentencePiece models the pieces are encoded here with the ``sentencepiece``
library itself, as 4.28 did, and generated ids are decoded with it too. Other LLMs (BPE
tokenizers such as SmolLM2's) use their own tokenizer. User text never becomes special tokens in SentencePiece mode: a literal ``</s>`` in an
instruction stays text.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from salmonn_agent.config import AUDIO_PLACEHOLDER, AUDIO_WRAPPER
from salmonn_agent.errors import ConfigError

logger = logging.getLogger(__name__)

SENTENCEPIECE_FILE = "tokenizer.model"


def render_prompt(template: str, instruction: str) -> str:
    """The official single-turn prompt: ``template`` around ``<Speech><SpeechHere></Speech> instruction``."""
    return template.format(f"{AUDIO_WRAPPER} {instruction.strip()}")


def split_prompt(prompt: str) -> list[str]:
    """Split a prompt at its audio placeholders: n placeholders give n + 1 text pieces."""
    return prompt.split(AUDIO_PLACEHOLDER)


class PromptTokenizer:
    """Encodes prompt text pieces to token ids and decodes generated ids to text."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, sentencepiece_model: object | None = None):
        self.tokenizer = tokenizer
        self.sentencepiece_model = sentencepiece_model
        if tokenizer.pad_token_id is None:
            # Padding positions are masked out; any id will do, eos is always present.
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def load(
        cls, name_or_path: str, mode: Literal["auto", "sentencepiece", "hf"] = "auto"
    ) -> "PromptTokenizer":
        """Load the LLM's tokenizer; in ``auto`` mode use SentencePiece when ``tokenizer.model`` exists."""
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        sp_path = _find_sentencepiece_file(name_or_path) if mode != "hf" else None
        if mode == "sentencepiece" and sp_path is None:
            raise ConfigError(
                f"tokenizer_mode='sentencepiece' but {name_or_path!r} has no {SENTENCEPIECE_FILE}; "
                "use tokenizer_mode='auto' or 'hf'."
            )
        sp_model = None
        if sp_path is not None:
            import sentencepiece

            sp_model = sentencepiece.SentencePieceProcessor(model_file=str(sp_path))
        return cls(tokenizer, sp_model)

    @property
    def mode(self) -> str:
        """``sentencepiece`` (legacy Llama encoding) or ``hf`` (the tokenizer's own)."""
        return "sentencepiece" if self.sentencepiece_model is not None else "hf"

    def encode(self, text: str) -> list[int]:
        """Token ids of one prompt piece, without special tokens (BOS is added by the caller)."""
        if not text:
            return []
        if self.sentencepiece_model is not None:
            return list(self.sentencepiece_model.encode(text))
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_id(self, token: str) -> int:
        """The id of a single token (e.g. the end symbol), or a clear error if it is not one token."""
        ids = self.tokenizer.convert_tokens_to_ids([token])
        if not ids or ids[0] is None or (
            ids[0] == self.tokenizer.unk_token_id and token != self.tokenizer.unk_token
        ):
            raise ConfigError(f"{token!r} is not a single token of this LLM's vocabulary; fix end_sym.")
        return int(ids[0])

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids with special tokens dropped, decoded by the library that encodes
        prompts: transformers renders byte-fallback pieces differently from SentencePiece (a
        space byte at the start is dropped), so SentencePiece models decode with SentencePiece."""
        if self.sentencepiece_model is None:
            return self.tokenizer.decode(ids, skip_special_tokens=True)
        special = set(self.tokenizer.all_special_ids)
        size = self.sentencepiece_model.get_piece_size()
        return self.sentencepiece_model.decode([i for i in ids if i not in special and 0 <= i < size])


def _find_sentencepiece_file(name_or_path: str) -> Path | None:
    local = Path(name_or_path) / SENTENCEPIECE_FILE
    if local.is_file():
        return local
    if os.path.isdir(name_or_path):
        return None
    try:  # a hub id: users have the internet; offline this quietly finds nothing
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(name_or_path, SENTENCEPIECE_FILE))
    except Exception as err:  # noqa: BLE001 - any hub failure means "no SentencePiece file"
        logger.debug("no %s for %s: %s", SENTENCEPIECE_FILE, name_or_path, err)
        return None
