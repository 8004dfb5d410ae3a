"""Optional second stage: confirm speech candidates with the Silero neural VAD.

Uses the TorchScript model shipped inside the ``silero-vad`` PyPI package (no download, no
torchaudio: only torch, which salmonn-agent needs anyway). Audio is fed while the event is
still going on, in 32 ms chunks, so the confirmation adds at most one chunk of compute at the
end of an utterance.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from salmonn_agent.audio import SAMPLE_RATE
from salmonn_agent.stream.errors import FrontendError

_CHUNK = 512  # Silero's window at 16 kHz
_MODEL: Any = None


def _load_model() -> Any:
    global _MODEL
    if _MODEL is None:
        try:
            import torch
        except ImportError:
            raise FrontendError(
                "confirm_with='silero' needs torch: install salmonn-agent's dependencies "
                "(pip install torch), or use confirm_with='spectral'."
            ) from None
        threads = torch.get_num_threads()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                from silero_vad import (
                    load_silero_vad,  # sets torch's thread count on import
                )
        except ImportError:
            raise FrontendError(
                "confirm_with='silero' needs the silero-vad package: `pip install silero-vad` "
                "(it ships its model; keep your torch pinned on the same command line), or use "
                "confirm_with='spectral'."
            ) from None
        finally:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():  # silero-vad's own deprecation warnings (torch.jit...)
            warnings.simplefilter("ignore", DeprecationWarning)
            _MODEL = load_silero_vad()
        torch.set_num_threads(threads)
    return _MODEL


class SileroConfirmer:
    """Runs Silero over one event at a time and says whether it heard speech."""

    def __init__(self, threshold: float = 0.5, min_speech_ms: int = 64) -> None:
        self.threshold = threshold
        self.min_chunks = max(1, round(min_speech_ms * SAMPLE_RATE / 1000 / _CHUNK))
        self._model = _load_model()
        self._pending = np.zeros(0, dtype=np.float32)
        self._speech_chunks = 0
        self._max_prob = 0.0

    def reset(self) -> None:
        """Forget the previous event (model state included)."""
        self._model.reset_states()
        self._pending = np.zeros(0, dtype=np.float32)
        self._speech_chunks = 0
        self._max_prob = 0.0

    def feed(self, samples: np.ndarray) -> None:
        """Score every complete 32 ms chunk of ``samples`` (the rest waits for more audio)."""
        import torch

        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n = data.size // _CHUNK
        model, threshold = self._model, self.threshold
        with torch.inference_mode():
            for i in range(n):
                chunk = torch.from_numpy(np.ascontiguousarray(data[i * _CHUNK : (i + 1) * _CHUNK]))
                prob = float(model(chunk, SAMPLE_RATE))
                if prob >= threshold:
                    self._speech_chunks += 1
                if prob > self._max_prob:
                    self._max_prob = prob
        self._pending = np.array(data[n * _CHUNK :], dtype=np.float32)

    def verdict(self) -> tuple[bool, float]:
        """``(is_speech, max_probability)`` for the audio fed since :meth:`reset`."""
        if self._pending.size >= _CHUNK // 4:
            self.feed(np.zeros(_CHUNK - self._pending.size, dtype=np.float32))
        return self._speech_chunks >= self.min_chunks, self._max_prob
