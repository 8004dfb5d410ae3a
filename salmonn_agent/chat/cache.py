"""Caches of one model's chat runtime, both bounded LRUs.

* :class:`AudioTokenCache`: audio tokens by content hash, so a clip is encoded once per conversation;
* :class:`PrefixCacheStore`: the LLM key/value caches (:class:`~salmonn_agent.model.salmonn.PrefixCache`)
  of the most recent conversations, so a follow-up turn only prefills what is new.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from salmonn_agent.chat.blocks import AudioClip

if TYPE_CHECKING:
    from salmonn_agent.model.generation import PrefixCache
    from salmonn_agent.model.inputs import EncodedAudio
    from salmonn_agent.model.salmonn import SALMONN


class AudioTokenCache:
    """Keeps the audio tokens of the ``max_entries`` most recently used clips (0 turns it off).

    Keys are hashes of the clips' encoded bytes (:class:`~salmonn_agent.chat.blocks.AudioClip`).
    ``hits``, ``misses`` and ``encoded`` (clips run through the encoders) are counters.
    """

    def __init__(self, max_entries: int = 32) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, EncodedAudio] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.encoded = 0

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> EncodedAudio | None:
        """The cached tokens of ``key`` (marked as recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: EncodedAudio) -> None:
        """Store tokens, evicting the least recently used entries beyond ``max_entries``."""
        if self.max_entries <= 0:
            return
        with self._lock:
            _store_bounded(self._entries, key, value, self.max_entries)

    def clear(self) -> None:
        """Forget every entry (the counters stay)."""
        with self._lock:
            self._entries.clear()

    def resolve(self, model: SALMONN, clips: Sequence[AudioClip]) -> list[EncodedAudio]:
        """Tokens for ``clips``: cached ones as they are, the rest encoded together in one pass."""
        found: dict[str, EncodedAudio] = {}
        missing: dict[str, AudioClip] = {}
        for clip in clips:
            if clip.key in found or clip.key in missing:
                continue
            cached = self.get(clip.key)
            if cached is not None:
                found[clip.key] = cached
                self.hits += 1
            else:
                missing[clip.key] = clip
                self.misses += 1
        if missing:
            samples = [clip.load() for clip in missing.values()]
            with model._generate_lock, torch.no_grad():  # encoders and generation share the machine
                encoded = model.encode_samples(samples)
            self.encoded += len(encoded)
            for key, tokens in zip(missing, encoded):
                found[key] = tokens
                self.put(key, tokens)
        return [found[clip.key] for clip in clips]


@dataclass
class _PrefixEntry:
    prompt: str
    clips: tuple[str, ...]
    answer: str
    cache: PrefixCache


class PrefixCacheStore:
    """The LLM key/value caches of the ``max_entries`` most recent conversations (0 turns it off).

    An entry is a rendered prompt, its clips' keys, the answer generated to it and the
    :class:`~salmonn_agent.model.salmonn.PrefixCache` left by that generation. A new request
    checks out (:meth:`checkout`) the entry whose prompt and clips begin its own, preferring the
    one sharing the longest text with it (prompt + answer): the previous turn of the same
    conversation, whose prompt + answer the new prompt renders back. The entry leaves the store
    while its request runs (no two requests share a cache) and comes back under the new prompt
    and answer (:meth:`put`). When no entry's prompt begins the new one, the request gets a copy
    of the entry sharing the longest beginning with it (the same system prompt and tools, say a
    voice assistant whose bounded memory dropped its oldest turn) and the entry stays. The model
    then reuses the longest exactly equal prefix of embeddings, so a wrong guess only costs
    reuse, never correctness.

    Memory: each entry holds layers x 2 x positions x key/value width values (plus the
    positions' embeddings); ``PrefixCache.nbytes`` tells. Counters: ``hits`` (a request found an
    entry that begins it), ``shared`` (it got a copy of one sharing a beginning), ``misses``,
    ``reused_tokens`` and ``prefilled_tokens`` (prompt positions taken from caches / computed,
    over all requests that went through the store).
    """

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _PrefixEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.shared = 0
        self.misses = 0
        self.reused_tokens = 0
        self.prefilled_tokens = 0

    @property
    def enabled(self) -> bool:
        """Whether the store keeps anything (``max_entries > 0``)."""
        return self.max_entries > 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Memory the stored caches take, in bytes."""
        with self._lock:
            return sum(entry.cache.nbytes for entry in self._entries.values())

    def continues(self, prompt: str, clip_keys: Sequence[str]) -> bool:
        """Whether ``prompt`` is a later turn of a kept conversation: that conversation's prompt
        and clips begin it, and it goes on (with the answer and a new question, say);
        :meth:`checkout` would hand it that conversation's cache."""
        keys = tuple(clip_keys)
        with self._lock:
            return any(
                len(prompt) > len(entry.prompt) and prompt.startswith(entry.prompt)
                and keys[: len(entry.clips)] == entry.clips
                for entry in self._entries.values()
            )

    def checkout(self, prompt: str, clip_keys: Sequence[str]) -> PrefixCache | None:
        """The cache to generate ``prompt`` with: a stored conversation's (taken out of the
        store) or a new empty one; None when the store is off."""
        from salmonn_agent.model.generation import PrefixCache

        if not self.enabled:
            return None
        keys = tuple(clip_keys)
        with self._lock:
            best, best_rank = None, (False, 0)
            for name, entry in self._entries.items():
                continues = prompt.startswith(entry.prompt) and keys[: len(entry.clips)] == entry.clips
                rank = (continues, _shared_length(f"{entry.prompt} {entry.answer}", prompt))
                if rank > best_rank:
                    best, best_rank = name, rank
            if best is None:
                self.misses += 1
                return PrefixCache()
            if best_rank[0]:
                self.hits += 1
                return self._entries.pop(best).cache
            self.shared += 1
            return self._entries[best].cache.copy()

    def put(self, prompt: str, clip_keys: Sequence[str], answer: str, cache: PrefixCache) -> None:
        """Store ``cache`` (after generating ``answer`` to ``prompt``), evicting the least
        recently used entries beyond ``max_entries``."""
        keys = tuple(clip_keys)
        name = hashlib.sha256("\x00".join((prompt, answer, *keys)).encode()).hexdigest()
        with self._lock:
            self.reused_tokens += cache.reused_tokens
            self.prefilled_tokens += cache.prefilled_tokens
            if not self.enabled or cache.num_tokens == 0:
                return
            _store_bounded(self._entries, name, _PrefixEntry(prompt, keys, answer, cache), self.max_entries)

    def clear(self) -> None:
        """Forget every entry (the counters stay)."""
        with self._lock:
            self._entries.clear()


def _store_bounded(entries: OrderedDict, key: str, value: object, max_entries: int) -> None:
    """Put ``value`` as the most recently used entry; evict the oldest beyond ``max_entries``."""
    entries[key] = value
    entries.move_to_end(key)
    while len(entries) > max_entries:
        entries.popitem(last=False)


def _shared_length(a: str, b: str) -> int:
    """Length of the common prefix of two strings."""
    return len(os.path.commonprefix([a, b]))
