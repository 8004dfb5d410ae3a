"""Generation helpers: the conversation prefix cache and token streaming.

:class:`PrefixCache` keeps an LLM key/value cache between the turns of one conversation;
:class:`TextStream` hands out text pieces while a background thread generates.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator

import torch
from transformers import DynamicCache, StoppingCriteria, TextIteratorStreamer


class PrefixCache:
    """The LLM's key/value cache of one conversation, kept between its turns (batch size 1).

    Pass the same object as ``prefix_cache=`` to :meth:`SALMONN.generate_detailed` (or
    :meth:`SALMONN.stream_from_prompt`) for every turn of a conversation; it is updated in place:

    * before generating, the new prompt's embedding rows are compared with :attr:`embeds` (the
      rows whose keys/values the cache holds: the previous prompt and the answer generated to
      it). The longest common prefix (exact equality of whole rows) is kept, at most all rows
      but the prompt's last, the cache is cropped to it, and ``generate`` prefills only the
      rest. A later turn (earlier turns, the same audio tokens, the previous answer rendered
      back, then the new question) typically reuses everything up to where the re-tokenized
      answer first differs from the generated tokens;
    * after generating, it holds the keys/values of this prompt and of the answer's tokens
      (all but the last one, which was never fed back).

    The cache is ignored and rebuilt when the device, dtype, LoRA state (the call's
    ``lora_scale``, disabled or switched adapters) or LoRA weights (changed in place, e.g. by
    training) differ from those it was built with. Beam search (``num_beams > 1``) runs without
    it and leaves it unchanged. If generation fails, it is emptied. The model's generation lock
    serialises its use, but one conversation at a time per object is the intended use.

    ``reused_tokens`` / ``prefilled_tokens``: prompt positions of the last call taken from the
    cache / computed. Memory: ``nbytes`` (layers x 2 x positions x key/value width, plus the
    positions' embeddings).
    """

    def __init__(self) -> None:
        self.embeds: torch.Tensor | None = None
        self.cache: DynamicCache | None = None
        self.key: tuple[object, ...] | None = None
        self.reused_tokens = 0
        self.prefilled_tokens = 0

    @property
    def num_tokens(self) -> int:
        """Positions whose keys/values are cached."""
        return 0 if self.embeds is None else int(self.embeds.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory the cached keys/values and embeddings take, in bytes."""
        total = 0 if self.embeds is None else self.embeds.numel() * self.embeds.element_size()
        for layer in self.cache.layers if self.cache is not None else []:
            for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if isinstance(tensor, torch.Tensor):
                    total += tensor.numel() * tensor.element_size()
        return total

    def copy(self) -> PrefixCache:
        """An independent copy (its own tensors), for another conversation that begins the same way."""
        twin = PrefixCache()
        twin.embeds = None if self.embeds is None else self.embeds.clone()
        twin.cache = None if self.cache is None else copy.deepcopy(self.cache)
        twin.key = self.key
        return twin

    def reset(self) -> None:
        """Forget the cached positions (the next call prefills its whole prompt)."""
        self.embeds = None
        self.cache = None
        self.key = None

    def __repr__(self) -> str:
        return f"PrefixCache(num_tokens={self.num_tokens}, reused_tokens={self.reused_tokens})"


def common_prefix_rows(a: torch.Tensor, b: torch.Tensor, limit: int) -> int:
    """How many leading rows of ``a`` and ``b`` (``[n, H]``) are exactly equal, at most ``limit``."""
    n = min(a.shape[0], b.shape[0], limit)
    if n <= 0:
        return 0
    same = (a[:n] == b[:n].to(a.device, a.dtype)).all(dim=-1)
    return n if bool(same.all()) else int(same.logical_not().int().argmax())


def tensor_version(tensor: torch.Tensor) -> int:
    """The in-place modification counter of ``tensor`` (-1 where it has none, e.g. inference tensors)."""
    try:
        return int(tensor._version)
    except RuntimeError:
        return -1


class CancelOnEvent(StoppingCriteria):
    """Stops generation once ``event`` is set (a closed stream or a cancelled request)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def cut_at_eos(ids: list[int], eos_id: int, pad_id: int | None, max_new_tokens: int) -> tuple[list[int], str]:
    """Cut generated ids at the end symbol; say why generation ended."""
    if eos_id in ids:
        return ids[: ids.index(eos_id)], "stop"
    if pad_id is not None and pad_id != eos_id:
        ids = [i for i in ids if i != pad_id]
    return ids, "length" if len(ids) >= max_new_tokens else "stop"


class RecordingStreamer(TextIteratorStreamer):
    """A text streamer that also keeps the generated token ids."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.token_ids: list[int] = []

    def put(self, value: torch.Tensor) -> None:
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            self.token_ids.extend(int(i) for i in value.reshape(-1).tolist())
        super().put(value)


class TextStream(Iterator[str]):
    """Text pieces of one answer as they are generated; ``close()`` stops generation.

    After the last piece: ``token_ids``, ``finish_reason`` ("stop", "length" or "cancelled"),
    ``prompt_text_tokens`` and ``prompt_audio_tokens``.
    """

    def __init__(
        self, run: object, streamer: RecordingStreamer, cancel: threading.Event,
        errors: list[BaseException], eos_id: int, max_new_tokens: int,
        prompt_text_tokens: int, prompt_audio_tokens: int,
    ) -> None:
        self._streamer = streamer
        self._cancel = cancel
        self._errors = errors
        self._eos_id = eos_id
        self._max_new_tokens = max_new_tokens
        self.prompt_text_tokens = prompt_text_tokens
        self.prompt_audio_tokens = prompt_audio_tokens
        self.finish_reason: str | None = None
        self._worker = threading.Thread(target=run, name="salmonn-generate", daemon=True)
        self._started = False
        self._done = False

    @property
    def token_ids(self) -> list[int]:
        """Generated token ids so far, without the end symbol."""
        ids = self._streamer.token_ids
        return ids[: ids.index(self._eos_id)] if self._eos_id in ids else list(ids)

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        if not self._started:
            self._started = True
            self._worker.start()
        for piece in self._streamer:
            if piece:
                return piece
        self._finish()
        if self._errors:
            raise self._errors[0]
        raise StopIteration

    def close(self) -> None:
        """Stop generating (at the next token) and wait for the worker to finish."""
        if not self._done:
            self._cancel.set()
            self._finish()

    def _finish(self) -> None:
        if self._started:
            self._worker.join()
        self._done = True
        if self.finish_reason is None:
            if self._cancel.is_set():
                self.finish_reason = "cancelled"
            elif self._eos_id in self._streamer.token_ids:
                self.finish_reason = "stop"
            else:
                self.finish_reason = "length" if len(self.token_ids) >= self._max_new_tokens else "stop"

    def __del__(self) -> None:
        self._cancel.set()
