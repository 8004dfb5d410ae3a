"""Audio tokens by content hash: a bounded LRU cache, so a clip is encoded once per conversation."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from salmonn_agent.chat.blocks import AudioClip

if TYPE_CHECKING:
    from salmonn_agent.model.salmonn import SALMONN, EncodedAudio


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
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

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
