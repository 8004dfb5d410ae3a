"""Compiled decoding: transformers' static key/value cache with its automatic ``torch.compile``.

``generate`` compiles the LLM's one-token forward once a static cache is in use; on CUDA the
``reduce-overhead`` mode replays it as a CUDA graph, which removes the kernel-launch overhead
that bounds decoding of small models on a GPU. :class:`CompiledDecoding` decides per call
whether this path applies (``--compile auto|on|off``) and gives ``generate`` its options.

A conversation's :class:`~salmonn_agent.model.generation.PrefixCache` holds a dynamic cache, so
a compiled call bypasses it: it prefills the whole prompt and leaves the prefix cache empty.
That is the better trade where the compiled path is chosen by default: on a GPU, decoding is
bound by kernel launches and the prefix cache saved only 2-5 % of a turn, while compiled
decoding is several times faster. ``--compile off`` keeps the prefix cache's reuse.

Shapes: the decode step's shapes depend only on the batch size and the static cache's length,
so that length is rounded up to a multiple of :data:`BUCKET` (prompt + ``max_new_tokens``):
prompts of new lengths in the same bucket reuse the compiled graph. transformers keeps the
largest cache length a model has used and never shrinks it, so a process compiles once per
batch size and bucket reached, and the compiled call lives on the LLM for the whole process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import CompileConfig

from salmonn_agent.errors import ConfigError

COMPILE_MODES = ("auto", "on", "off")
"""``auto``: compiled decoding where it pays off (CUDA, one prompt, no beams); ``on``: wherever it
can run (also on a CPU, slowly: for tests); ``off``: the default dynamic cache, never compiled."""

BUCKET = 256
"""Static cache lengths are multiples of this, so new prompt lengths rarely recompile."""


def check_compile_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`COMPILE_MODES`, else a one-line :class:`ConfigError`."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"Unknown compile mode {mode!r}: use auto, on or off.")
    return mode


def bucketed_length(positions: int, bucket: int = BUCKET) -> int:
    """``positions`` rounded up to a multiple of ``bucket`` (at least one bucket)."""
    return max(bucket, -(-positions // bucket) * bucket)


@dataclass
class CompiledDecoding:
    """A model's choice of decoding path, and the options ``generate`` needs for the compiled one.

    ``backend``: ``torch.compile``'s backend (``inductor``; tests use ``eager``, which compiles
    in seconds).
    ``last_reason``: why the last call decoded as it did (``"compiled"`` or why not), for logs
    and tests.
    """

    mode: str = "auto"
    backend: str = "inductor"
    last_reason: str = ""

    def __post_init__(self) -> None:
        check_compile_mode(self.mode)

    def reason_against(self, device: torch.device, batch: int, num_beams: int) -> str | None:
        """Why a call does not take the compiled path, or ``None`` when it does."""
        if self.mode == "off":
            return "compile is off"
        if num_beams > 1:
            return "beam search decodes with the default cache"
        if self.mode == "auto":
            if device.type != "cuda":
                return f"compile auto decodes eagerly on {device.type} (compiling pays off on CUDA)"
            if batch > 1:
                return "compile auto decodes batches eagerly (compiled graphs are per batch size)"
        return None

    def generate_options(self, device: torch.device, positions: int, max_new_tokens: int) -> dict[str, object]:
        """``generate``'s options for a static cache of a bucketed length and a compiled forward."""
        # CUDA graphs ("reduce-overhead") on CUDA; a CPU has none. dynamic=False: each bucket
        # gets its own static graph instead of one with symbolic lengths. Equal configs leave
        # the LLM's compiled call in place, so building one per call costs nothing.
        config = CompileConfig(
            backend=self.backend, mode="reduce-overhead" if device.type == "cuda" else "default", dynamic=False
        )
        # generate compiles only on accelerators unless told otherwise (its test switch).
        config._compile_all_devices = device.type not in ("cuda", "xpu")
        return {
            "cache_implementation": "static",
            "max_cache_len": bucketed_length(positions + max_new_tokens),
            "compile_config": config,
        }
