"""salmonn-mini's pretrained base parts: Whisper tiny.en and SmolLM2-135M-Instruct from PyPI.

:func:`prepare_mini_parts` converts them once into the user cache and returns their
transformers directories. The two converters it uses are public too:
:func:`convert_ctranslate2_whisper` (a CTranslate2 Whisper directory to transformers) and
:func:`convert_gguf_llama` (a llama GGUF to a transformers ``LlamaForCausalLM`` directory).
"""

from salmonn_agent.mini.ctranslate2_whisper import (
    CTranslate2FormatError,
    convert_ctranslate2_whisper,
)
from salmonn_agent.mini.gguf_llm import GGUFConversionError, convert_gguf_llama
from salmonn_agent.mini.parts import (
    MiniParts,
    MiniPartsError,
    mini_parts_dir,
    prepare_mini_parts,
)

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
