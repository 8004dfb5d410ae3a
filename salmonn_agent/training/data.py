"""Training data: the official annotation JSON, audio loading in workers, collation, feature cache.

One annotation: ``{"path", "text", "task", "Q"?, "expand_wav"?, "prompt"?}``. ``prompt`` (not
upstream) is a whole rendered prompt with one ``<SpeechHere>``, used as is instead of a task
template: for conversations a template cannot express, such as a ChatSALMONN prompt with bound
tools (salmonn-mini's voice-assistant data). ``expand_wav`` clips are
appended after 0.1 s of silence, as upstream does. Audio goes through
:func:`salmonn_agent.audio.load_audio` (16 kHz mono, resampled), is cut at
``datasets.max_audio_seconds`` (30 s upstream), split into encoder chunks and each chunk padded
to ``min_audio_seconds`` (1 s), exactly like :meth:`SALMONN.encode_samples`.

A sample whose audio is missing or corrupt comes back as a "skipped" record instead of
raising: the batch carries it to the trainer, which counts and reports it. Workers compute the
Whisper log-mel; with a feature cache, samples seen before skip decoding and the frozen
encoders entirely (the cache holds Whisper's last hidden state and BEATs' features).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from salmonn_agent.audio import SAMPLE_RATE, load_audio
from salmonn_agent.config import read_data_file
from salmonn_agent.errors import ConfigError, SalmonnError
from salmonn_agent.model.beats import pad_waves
from salmonn_agent.training.prompts import PromptBank, sample_rng

logger = logging.getLogger(__name__)

EXPAND_SILENCE = 1600  # upstream: 0.1 s of zeros between a clip and each expand_wav clip


def load_annotations(path: str | Path) -> list[dict[str, Any]]:
    """Read ``{"annotation": [...]}``; every entry needs ``path`` and ``text`` (``task`` defaults to asr)."""
    path = Path(path)
    raw = read_data_file(path, "json", "fix the datasets.*_ann_path entry")
    items = raw.get("annotation") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{str(path)!r} needs a non-empty list under 'annotation' (the official format).")
    out = []
    for number, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not isinstance(item.get("text"), str):
            raise ConfigError(f"{str(path)!r}: annotation #{number} needs string 'path' and 'text' fields.")
        entry = {"path": item["path"], "text": item["text"], "task": str(item.get("task", "asr")),
                 "Q": str(item.get("Q", "") or "")}
        if item.get("prompt") is not None:
            if not isinstance(item["prompt"], str) or item["prompt"].count("<SpeechHere>") != 1:
                raise ConfigError(f"{str(path)!r}: annotation #{number}: 'prompt' must be a string with "
                                  "exactly one <SpeechHere>.")
            entry["prompt"] = item["prompt"]
        expand = item.get("expand_wav") or []
        entry["expand_wav"] = [expand] if isinstance(expand, str) else list(expand)
        base = path.parent
        entry["path"] = _resolve(entry["path"], base)
        entry["expand_wav"] = [_resolve(p, base) for p in entry["expand_wav"]]
        out.append(entry)
    return out


def _resolve(value: str, base: Path) -> str:
    p = Path(value).expanduser()
    if not p.is_absolute() and not p.exists() and (base / p).exists():
        return str(base / p)
    return str(p)


def split_chunks(clip: np.ndarray, chunk_samples: int, min_samples: int) -> list[np.ndarray]:
    """Encoder chunks of one clip, each padded to ``min_samples`` (as ``SALMONN.encode_samples``)."""
    chunks = []
    for start in range(0, max(len(clip), 1), chunk_samples):
        chunk = clip[start : start + chunk_samples]
        if len(chunk) < min_samples:
            chunk = np.concatenate([chunk, np.zeros(min_samples - len(chunk), dtype=np.float32)])
        chunks.append(np.ascontiguousarray(chunk, dtype=np.float32))
    return chunks


WHISPER_TRANSCRIPT = "whisper_transcript"
"""The cache entry holding Whisper's transcript of a clip (models with ``speech_transcript``)."""
SOUND_TAGS = "sound_tags"
"""The cache entry holding a clip's YAMNet tags as ``[label, score]`` pairs (models with ``sound_tags``)."""


class FeatureCache:
    """Frozen-encoder outputs on disk, one file per sample, keyed by audio file identity.

    The key covers the paths, sizes and modification times of the clip and its expand_wav
    clips; the folder name covers the encoders and chunking, so a different model never
    reads another model's features.
    """

    def __init__(self, directory: str | Path, fingerprint: dict[str, Any]) -> None:
        digest = hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
        self.directory = Path(directory) / digest
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(entry: dict[str, Any]) -> str | None:
        """The cache key of a normalized annotation: its audio files' paths, sizes and times."""
        parts = []
        for p in [entry["path"], *entry["expand_wav"]]:
            try:
                st = os.stat(p)
            except OSError:
                return None
            parts.append(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}")
        return hashlib.sha1("\n".join(parts).encode()).hexdigest()

    def get(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        file = self.directory / f"{key}.pt"
        if not file.is_file():
            return None
        try:
            return torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a broken cache file is recomputed, never fatal
            logger.warning("ignoring unreadable cache file %s: %s", file, err)
            return None

    def put(self, key: str, speech: torch.Tensor, beats: list[torch.Tensor] | None, seconds: float,
            hints: dict[str, Any] | None = None) -> None:
        """Store one sample's encoder outputs (and its hints: transcript, tags, when computed)."""
        file = self.directory / f"{key}.pt"
        tmp = file.with_suffix(f".tmp{os.getpid()}")
        # clone(): the tensors are slices of a batch, and torch.save writes a view's whole storage.
        payload: dict[str, Any] = {"speech": speech.detach().float().cpu().clone(), "seconds": float(seconds)}
        if beats is not None:
            payload["beats"] = [b.detach().float().cpu().clone() for b in beats]
        payload.update(hints or {})
        torch.save(payload, tmp)
        os.replace(tmp, file)


class AnnotationDataset(Dataset):
    """Map-style dataset over annotations; keys are ``(data_epoch, index)`` pairs.

    Returns a dict per sample (``prompt`` drawn for that epoch, ``chunks`` and ``mel`` of the
    audio, or ``cached`` features), or ``{"skipped": reason}`` for unreadable audio.
    """

    def __init__(
        self,
        entries: list[dict[str, Any]],
        prompts: PromptBank,
        features: Any,
        *,
        chunk_samples: int,
        min_samples: int,
        max_seconds: float,
        seed: int = 0,
        cache: FeatureCache | None = None,
        random_prompts: bool = True,
    ) -> None:
        self.entries = entries
        self.prompts = prompts
        self.features = features
        self.chunk_samples = chunk_samples
        self.min_samples = min_samples
        self.max_samples = int(max_seconds * SAMPLE_RATE)
        self.seed = seed
        self.cache = cache
        self.random_prompts = random_prompts

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        entry = self.entries[index]
        if "prompt" in entry:
            prompt = entry["prompt"]
        elif self.random_prompts:
            prompt = self.prompts.choose(entry["task"], entry["Q"], sample_rng(self.seed, epoch, index))
        else:
            prompt = self.prompts.first(entry["task"], entry["Q"])
        item = {"index": index, "path": entry["path"], "task": entry["task"], "text": entry["text"],
                "prompt": prompt, "cache_key": None}
        if self.cache is not None:
            item["cache_key"] = self.cache.key(entry)
            cached = self.cache.get(item["cache_key"])
            if cached is not None:
                item["cached"] = cached
                item["seconds"] = float(cached.get("seconds", 0.0))
                return item
        try:
            clip = self._load(entry)
        except SalmonnError as err:
            return {"index": index, "path": entry["path"], "skipped": str(err)}
        except Exception as err:  # noqa: BLE001 - any decoder failure is a skipped sample
            return {"index": index, "path": entry["path"], "skipped": f"{type(err).__name__}: {err}"}
        chunks = split_chunks(clip, self.chunk_samples, self.min_samples)
        item["chunks"] = chunks
        item["seconds"] = len(clip) / SAMPLE_RATE
        item["mel"] = self.features(chunks)
        return item

    def _load(self, entry: dict[str, Any]) -> np.ndarray:
        clip = load_audio(entry["path"])
        for extra in entry["expand_wav"]:
            clip = np.concatenate([clip, np.zeros(EXPAND_SILENCE, dtype=np.float32), load_audio(extra)])
        return clip[: self.max_samples]


@dataclass
class Batch:
    """A collated batch: the samples that loaded, and those skipped ``(path, reason)``.

    ``mel`` ``[chunks, mel, frames]``, ``raw_wav`` ``[chunks, samples]`` and ``padding_mask``
    (True = padding) cover the chunks of the samples without cached features, in order.
    """

    samples: list[dict[str, Any]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    mel: torch.Tensor | None = None
    raw_wav: torch.Tensor | None = None
    padding_mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.samples)


def collate(items: list[dict[str, Any]]) -> Batch:
    """Collate dataset items (runs in the loader's worker processes)."""
    samples = [i for i in items if "skipped" not in i]
    skipped = [(i["path"], i["skipped"]) for i in items if "skipped" in i]
    fresh = [s for s in samples if "cached" not in s]
    batch = Batch(samples=samples, skipped=skipped)
    if fresh:
        chunks = [c for s in fresh for c in s["chunks"]]
        batch.mel = torch.cat([s.pop("mel") for s in fresh])
        batch.raw_wav, batch.padding_mask = pad_waves(chunks)
        for s in fresh:
            s["clip"] = np.concatenate(s["chunks"])  # the clip as loaded (Whisper's transcript may read it whole)
            s["n_chunks"] = len(s.pop("chunks"))
    for s in samples:
        if "cached" in s:
            s["n_chunks"] = int(s["cached"]["speech"].shape[0])
    return batch


class StreamBatchSampler:
    """Micro-batches of ``(data_epoch, index)`` keys, forever, starting at micro-batch ``start``.

    Each data epoch is a permutation seeded by ``seed + epoch``; a global batch of
    ``batch_size × world`` indices is cut into one slice per rank (wrapping around the data when
    it is short, like ``DistributedSampler``). Restarting at ``start`` replays the same stream.
    """

    def __init__(self, size: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start, self.rank, self.world, self.shuffle = start, rank, world, shuffle
        self.batches_per_epoch = max(1, math.ceil(size / (batch_size * world)))

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        micro = self.start
        while True:
            epoch, position = divmod(micro, self.batches_per_epoch)
            order = self.order(epoch)
            global_size = self.batch_size * self.world
            base = position * global_size + self.rank * self.batch_size
            yield [(epoch, order[(base + k) % self.size]) for k in range(self.batch_size)]
            micro += 1


def eval_keys(size: int, batch_size: int, rank: int = 0, world: int = 1) -> list[list[tuple[int, int]]]:
    """Sequential evaluation batches for one rank (every sample exactly once over all ranks)."""
    mine = list(range(rank, size, world))
    return [[(0, i) for i in mine[k : k + batch_size]] for k in range(0, len(mine), batch_size)]
