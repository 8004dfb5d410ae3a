"""The training loop on HF accelerate: one CPU, one GPU, or DDP/FSDP/DeepSpeed over many.

Only the Q-Former, layer norms, projection and LoRA train; Whisper, BEATs and the LLM stay
frozen and in eval mode. AdamW + warmup/cosine (:mod:`.schedule`), gradient accumulation and
clipping, bf16/fp16 autocast on GPU. Checkpoints (``output_dir/checkpoints/step_N``) hold the
trainable parameters, optimizer, schedule, RNG states and the data-stream position, so a
resumed run ends in the same parameters as an uninterrupted one. ``output_dir/model`` is the
final model (``SALMONN.from_pretrained``), the next stage's ``model:``. Metrics go to
``output_dir/metrics.jsonl``.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import set_seed
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from salmonn_agent.audio import SAMPLE_RATE, load_audio
from salmonn_agent.errors import ConfigError
from salmonn_agent.model.checkpoint import load_trainable
from salmonn_agent.model.salmonn import SALMONN
from salmonn_agent.sound_tags import SoundTag
from salmonn_agent.training.alignment import SALMONNForAlignment
from salmonn_agent.training.config import TrainConfig
from salmonn_agent.training.data import (
    AnnotationDataset,
    Batch,
    SOUND_TAGS,
    WHISPER_TRANSCRIPT,
    FeatureCache,
    StreamBatchSampler,
    collate,
    eval_keys,
    load_annotations,
)
from salmonn_agent.training.loss import SALMONNForTraining, encoded_clips, frozen_features
from salmonn_agent.training.prompts import PromptBank
from salmonn_agent.training.schedule import build_optimizer, lr_at, warmup_cosine_schedule
from salmonn_agent.training.wer import normalize_transcript

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
FINAL_MODEL = "model"
METRICS_FILE = "metrics.jsonl"
TRAINABLE_FILE = "trainable.safetensors"
STATE_FILE = "training_state.pt"


@dataclass
class TrainResult:
    """What a run did: steps, final loss, last validation, skipped samples, where the model is."""

    steps: int
    final_loss: float | None
    model_dir: Path
    skipped: list[tuple[str, str]] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    seconds: float = 0.0
    samples: int = 0
    main_process: bool = True  # False in the other processes of a distributed run


def make_accelerator(config: TrainConfig):
    """An ``Accelerator`` for this machine (bf16 autocast on GPU with ``run.amp``; fp32 on CPU)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    cpu = config.run.device == "cpu" or not torch.cuda.is_available()
    precision = "no"
    if config.run.amp and not cpu:
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return Accelerator(cpu=cpu, mixed_precision=precision, gradient_accumulation_steps=config.run.accum_grad_iters,
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)])


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _feature_cache(config: TrainConfig, model: SALMONN) -> FeatureCache | None:
    directory = config.path(config.datasets.feature_cache_dir)
    if directory is None:
        return None
    c = model.config
    fingerprint = {"whisper": c.whisper, "beats": c.beats, "chunk_seconds": c.chunk_seconds,
                   "min_audio_seconds": c.min_audio_seconds, "max_audio_seconds": config.datasets.max_audio_seconds,
                   "whisper_width": int(model.speech_encoder.config.d_model),
                   "whisper_layers": int(model.speech_encoder.config.encoder_layers)}
    return FeatureCache(directory, fingerprint)


def _dataset(config: TrainConfig, model: SALMONN, ann_path: str | None, prompt_path: str | None,
             cache: FeatureCache | None, *, random_prompts: bool, what: str) -> AnnotationDataset:
    path = config.path(ann_path)
    if path is None:
        raise ConfigError(f"No {what} annotations: set datasets.{what}_ann_path in the config.")
    entries = load_annotations(path)
    bank = PromptBank.load(config.path(prompt_path), model.config.prompt_template)
    bank.check_tasks({e["task"] for e in entries if "prompt" not in e}, str(path))
    return AnnotationDataset(
        entries, bank, model.features, chunk_samples=model.chunk_samples,
        min_samples=int(model.config.min_audio_seconds * SAMPLE_RATE),
        max_seconds=config.datasets.max_audio_seconds, seed=config.run.seed, cache=cache,
        random_prompts=random_prompts,
    )


def _loader(dataset: AnnotationDataset, batch_sampler: Any, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate, num_workers=workers,
                      generator=torch.Generator(), persistent_workers=False,
                      multiprocessing_context="spawn" if workers else None)


def _write_cache(cache: FeatureCache | None, batch: Batch, speech: list[torch.Tensor],
                 beats: list[list[torch.Tensor]] | None, hints: ClipHints | None) -> None:
    if cache is None:
        return
    for i, sample in enumerate(batch.samples):
        cached = sample.get("cached")
        new_hints = hints is not None and i in hints.fresh
        if (cached is None or new_hints) and sample.get("cache_key"):
            cache.put(sample["cache_key"], speech[i], beats[i] if beats is not None else None, sample["seconds"],
                      hints.cache_entries(i) if hints is not None else None)


@dataclass
class ClipHints:
    """Each sample's Whisper transcript and YAMNet tags (None where the model uses neither)."""

    transcripts: list[str] | None
    tags: list[list[SoundTag]] | None
    fresh: set[int]
    """Samples whose hints were computed now rather than read from the feature cache."""

    def cache_entries(self, i: int) -> dict[str, Any]:
        """What the feature cache stores of sample ``i``'s hints."""
        entries: dict[str, Any] = {}
        if self.transcripts is not None:
            entries[WHISPER_TRANSCRIPT] = self.transcripts[i]
        if self.tags is not None:
            entries[SOUND_TAGS] = [[t.label, t.score] for t in self.tags[i]]
        return entries


def clip_hints(model: SALMONN, batch: Batch, speech: list[torch.Tensor]) -> ClipHints | None:
    """Each sample's transcript and tags, from the feature cache or computed now (the transcript
    from the Whisper states of the batch, the tags from the sample's audio file); None for a
    model with neither option."""
    if model.transcriber is None and model.tagger is None:
        return None
    samples = batch.samples
    cached = [s.get("cached", {}) for s in samples]
    fresh: set[int] = set()
    transcripts = None
    if model.transcriber is not None:
        found: list[str | None] = [c.get(WHISPER_TRANSCRIPT) for c in cached]
        todo = [i for i, text in enumerate(found) if text is None]
        if todo:
            texts = model.clip_transcripts(torch.cat([speech[i] for i in todo]), [speech[i].shape[0] for i in todo],
                                           [samples[i].get("clip") for i in todo])
            for i, text in zip(todo, texts or []):
                found[i] = text
            fresh.update(todo)
        transcripts = [t or "" for t in found]
    tags = None
    if model.tagger is not None:
        tags = []
        for i, (sample, entry) in enumerate(zip(samples, cached)):
            if SOUND_TAGS in entry:
                tags.append([SoundTag(label=label, score=score) for label, score in entry[SOUND_TAGS]])
            else:
                tags.append(list(model.tag_clip(load_audio(sample["path"])) or ()))
                fresh.add(i)
    return ClipHints(transcripts, tags, fresh)


def _step_inputs(batch: Batch, hints: ClipHints | None) -> dict[str, Any]:
    """The prompt-side arguments of the training module's forward."""
    inputs: dict[str, Any] = {"prompts": [s["prompt"] for s in batch.samples],
                              "texts": [s["text"] for s in batch.samples]}
    if hints is not None:
        inputs.update(transcripts=hints.transcripts, tags=hints.tags)
    return inputs


def _latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted((p for p in (output_dir / CHECKPOINTS).glob("step_*") if (p / STATE_FILE).is_file()),
                   key=lambda p: int(p.name.split("_")[1]))
    return found[-1] if found else None


class Trainer:
    """One training run (``train``) or evaluation (``evaluate``) for a :class:`TrainConfig`."""

    def __init__(self, config: TrainConfig, accelerator: Any = None, model: SALMONN | None = None) -> None:
        self.config = config
        self.run = config.run
        self.acc = accelerator or make_accelerator(config)
        if self.acc.gradient_accumulation_steps != self.run.accum_grad_iters:
            raise ConfigError(
                f"The accelerator accumulates {self.acc.gradient_accumulation_steps} micro-batches per step but "
                f"run.accum_grad_iters is {self.run.accum_grad_iters}; create it with make_accelerator(config)."
            )
        set_seed(self.run.seed)
        self.output_dir = config.path(config.output_dir)
        if model is None:
            source = config.path(config.model)
            model_ref = str(source) if source is not None and source.exists() else config.model
            model = SALMONN.from_pretrained(model_ref, device=self.acc.device)
        if getattr(model, "quantized", False) or getattr(model, "half_weights", False) or getattr(
            model, "weight_quantization", None
        ):
            raise ConfigError(
                "This model's LLM is stored in int8, int4 or float16 weights (inference only); train a float32 model."
            )
        self.model = model.to(self.acc.device)
        self.model.freeze_base_models()
        frozen = [self.model.projection] if self.run.freeze_projection else []
        if self.run.freeze_qformer:
            frozen += [m for m in (self.model.window_qformer, self.model.ln_speech, self.model.ln_audio) if m is not None]
        for module in frozen:
            module.requires_grad_(False)
        self.cache = _feature_cache(config, self.model)
        if self.run.objective == "ctc":
            self.module = SALMONNForAlignment(self.model, self.run.max_txt_len)
        else:
            self.module = SALMONNForTraining(self.model, self.run.max_txt_len)
        self.progress = self.run.progress and self.acc.is_local_main_process

    # ------------------------------------------------------------------ training
    def train(self) -> TrainResult:
        run, acc, model = self.run, self.acc, self.model
        start_time = time.perf_counter()
        dataset = _dataset(self.config, model, self.config.datasets.train_ann_path, self.config.datasets.prompt_path,
                           self.cache, random_prompts=True, what="train")
        valid = None
        if self.config.datasets.valid_ann_path:
            valid = _dataset(self.config, model, self.config.datasets.valid_ann_path,
                             self.config.datasets.test_prompt_path or self.config.datasets.prompt_path,
                             self.cache, random_prompts=False, what="valid")
        probe = StreamBatchSampler(len(dataset), run.batch_size_train, run.seed, 0, acc.process_index, acc.num_processes,
                                   shuffle=run.shuffle)
        micro_per_epoch = run.iters_per_epoch or probe.batches_per_epoch
        steps_per_epoch = max(1, micro_per_epoch // run.accum_grad_iters)
        total_steps = steps_per_epoch * run.optims.max_epoch
        stop_at = min(total_steps, run.max_steps) if run.max_steps else total_steps

        model.train()
        optimizer = build_optimizer(self.module, run.optims)
        module, optimizer = acc.prepare(self.module, optimizer)
        trainable = [p for p in self.module.parameters() if p.requires_grad]

        step, micro, skipped = 0, 0, []
        resume = self._resume_path()
        if resume is not None:
            state = torch.load(resume / STATE_FILE, map_location="cpu", weights_only=False)
            load_trainable(model, load_file(str(resume / TRAINABLE_FILE)), str(resume / TRAINABLE_FILE),
                           allow_unexpected=False)
            optimizer.load_state_dict(state["optimizer"])
            step, micro, skipped = state["step"], state["micro"], [tuple(s) for s in state["skipped"]]
            _set_rng_state(state["rng"])
            logger.info("resumed from %s at step %d", resume, step)

        schedule = warmup_cosine_schedule(optimizer, total_steps, run.optims, start=step)
        sampler = StreamBatchSampler(len(dataset), run.batch_size_train, run.seed, micro,
                                     acc.process_index, acc.num_processes, shuffle=run.shuffle)
        batches = iter(_loader(dataset, sampler, run.num_workers))
        metrics_file = self.output_dir / METRICS_FILE
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=stop_at, initial=step, desc="train", unit="step", dynamic_ncols=True)
        window: dict[str, float] = defaultdict(float)
        last_loss, validation, samples_seen = None, None, 0
        with model.lora_scale(run.lora_scale):
            while step < stop_at:
                lr = lr_at(step, total_steps, run.optims)
                for _ in range(run.accum_grad_iters):
                    batch: Batch = next(batches)
                    micro += 1
                    skipped.extend(batch.skipped)
                    # accumulate() skips the gradient all-reduce until the step's last micro-batch;
                    # backward() divides each loss by accum_grad_iters.
                    with acc.accumulate(module):
                        if len(batch) == 0:  # every sample unreadable: keep ranks in step
                            self._global_tokens(torch.zeros((), device=acc.device))
                            loss = sum(p.sum() for p in trainable) * 0.0
                            acc.backward(loss)
                            continue
                        speech, beats = frozen_features(model, batch)
                        hints = clip_hints(model, batch, speech)
                        _write_cache(self.cache, batch, speech, beats, hints)
                        with acc.autocast():
                            out = module(speech, beats, **_step_inputs(batch, hints))
                        acc.backward(self._step_loss(out))
                    window["loss_sum"] += float(out.loss_sum.sum())
                    window["tokens"] += float(out.count.sum())
                    window["correct"] += float(out.correct.sum())
                    samples_seen += len(batch)
                if run.max_grad_norm:
                    acc.clip_grad_norm_(trainable, run.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                schedule.step()
                step += 1
                if bar is not None:
                    bar.update(1)
                if step % run.log_freq == 0 or step == stop_at:
                    window = self._global_window(window)
                    last_loss = window["loss_sum"] / max(window["tokens"], 1)
                    record = {"split": "train", "step": step, "epoch": (step - 1) // steps_per_epoch,
                              "loss": last_loss, "token_acc": window["correct"] / max(window["tokens"], 1),
                              "lr": lr, "skipped": len(skipped), "elapsed_s": time.perf_counter() - start_time}
                    self._log(metrics_file, record)
                    if bar is not None:
                        bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
                    window.clear()
                epoch_end = step % steps_per_epoch == 0
                epoch = step // steps_per_epoch
                if valid is not None and epoch_end and epoch % run.valid_every_epochs == 0:
                    validation = self.validate(valid, decode=run.decode_valid)
                    self._log(metrics_file, {"split": "valid", "step": step, "epoch": epoch - 1, **_flat(validation)})
                due = (step % run.save_every_steps == 0) if run.save_every_steps else epoch_end
                if due or step == stop_at:
                    self._save_checkpoint(step, total_steps, micro, optimizer, skipped)
        if bar is not None:
            bar.close()
        del batches
        model_dir = self.output_dir / FINAL_MODEL
        if step >= total_steps or run.max_steps:
            self._save_model(model_dir)
        acc.wait_for_everyone()
        if skipped and acc.is_main_process:
            logger.warning("%d samples were skipped (unreadable audio): %s", len(skipped),
                           "; ".join(f"{p}: {r}" for p, r in skipped[:5]))
        result = TrainResult(step, last_loss, model_dir, skipped, validation,
                             time.perf_counter() - start_time, samples_seen, acc.is_main_process)
        self._log(metrics_file, {"split": "done", "step": step, "skipped": len(skipped),
                                 "skipped_samples": [list(s) for s in skipped[:100]], "seconds": result.seconds})
        return result

    def _step_loss(self, out: Any) -> torch.Tensor:
        """The loss to back-propagate: the token mean of the micro-batch over all processes.

        DDP averages gradients over processes, which would weigh each process's token mean
        equally; scaling each process's token sum by ``processes / all tokens`` makes the
        averaged gradient that of the token mean over the whole global micro-batch, as one
        process would compute it. One process keeps its own token mean.
        """
        if self.acc.num_processes == 1:
            return out.loss
        local = out.count.sum().to(out.loss.dtype)
        tokens = self._global_tokens(local)
        return out.loss * (local * self.acc.num_processes / tokens.clamp(min=1))

    def _global_tokens(self, count: torch.Tensor) -> torch.Tensor:
        """Target tokens of this micro-batch summed over all processes (every process calls it
        once per micro-batch, empty ones included, so the collectives stay matched)."""
        if self.acc.num_processes == 1:
            return count
        return self.acc.reduce(count.detach().float().reshape(1), reduction="sum")[0]

    def _global_window(self, window: dict[str, float]) -> dict[str, float]:
        """The logging window's sums over all processes (so every process logs the same numbers)."""
        if self.acc.num_processes == 1:
            return window
        keys = ("loss_sum", "tokens", "correct")
        totals = self.acc.reduce(torch.tensor([window.get(k, 0.0) for k in keys], device=self.acc.device,
                                              dtype=torch.float64), reduction="sum")
        return {**window, **{k: float(v) for k, v in zip(keys, totals.tolist())}}

    def _resume_path(self) -> Path | None:
        value = self.run.resume
        if value is None or str(value).lower() in {"none", "false", "no", ""}:
            return None
        if str(value).lower() == "auto":
            return _latest_checkpoint(self.output_dir)
        path = self.config.path(str(value))
        if path is None or not (path / STATE_FILE).is_file():
            raise ConfigError(f"run.resume={value!r} is not a checkpoint folder (with {STATE_FILE}); "
                              "use 'auto', null, or an output_dir/checkpoints/step_N folder.")
        return path

    def _save_checkpoint(self, step: int, total_steps: int, micro: int, optimizer: Any,
                         skipped: list[tuple[str, str]]) -> None:
        self.acc.wait_for_everyone()
        if not self.acc.is_main_process:
            return
        root = self.output_dir / CHECKPOINTS
        final = root / f"step_{step:08d}"
        tmp = root / f".tmp_step_{step:08d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous().cpu() for k, v in self.model.trainable_state_dict().items()},
                  str(tmp / TRAINABLE_FILE))
        torch.save({"optimizer": optimizer.state_dict(), "schedule": {"step_count": step, "total_steps": total_steps},
                    "step": step, "micro": micro, "skipped": skipped, "rng": _rng_state()}, tmp / STATE_FILE)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        old = sorted((p for p in root.glob("step_*")), key=lambda p: int(p.name.split("_")[1]))
        for p in old[: -self.run.keep_checkpoints]:
            shutil.rmtree(p, ignore_errors=True)

    def _save_model(self, directory: Path) -> None:
        if not self.acc.is_main_process:
            return
        model = self.model
        if self.run.lora_scale is not None:  # activation tuning: its scale becomes the inference default
            model.config = model.config.model_copy(update={
                "generation": model.config.generation.model_copy(update={"lora_scale": self.run.lora_scale})})
        model.save_pretrained(directory)

    def _log(self, file: Path, record: dict[str, Any]) -> None:
        if self.acc.is_main_process:
            file.parent.mkdir(parents=True, exist_ok=True)
            with file.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ feature cache
    @torch.no_grad()
    def fill_cache(self) -> dict[str, int]:
        """Compute the frozen encoders' outputs and the clips' hints (transcript, tags) of every
        training sample into the feature cache without training, so a later run reads them (on a
        GPU machine, say) and a data script can read the hints to choose its items."""
        if self.cache is None:
            raise ConfigError("Set datasets.feature_cache_dir: there is no feature cache to fill.")
        dataset = _dataset(self.config, self.model, self.config.datasets.train_ann_path,
                           self.config.datasets.prompt_path, self.cache, random_prompts=False, what="train")
        keys = eval_keys(len(dataset), self.run.batch_size_train, self.acc.process_index, self.acc.num_processes)
        counts = {"samples": 0, "computed": 0, "skipped": 0}
        self.model.eval()
        for batch in _loader(dataset, keys, self.run.num_workers):
            counts["skipped"] += len(batch.skipped)
            if len(batch) == 0:
                continue
            speech, beats = frozen_features(self.model, batch)
            hints = clip_hints(self.model, batch, speech)
            counts["samples"] += len(batch)
            counts["computed"] += sum("cached" not in s or (hints is not None and i in hints.fresh)
                                      for i, s in enumerate(batch.samples))
            _write_cache(self.cache, batch, speech, beats, hints)
        return counts

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def validate(self, dataset: AnnotationDataset, *, decode: bool = True) -> dict[str, Any]:
        """Loss and token accuracy per task; WER (jiwer) for ``asr*`` tasks from greedy decoding
        (for ``run.objective: ctc``, every task, from the CTC output)."""
        from accelerate.utils import gather_object

        run, acc, model = self.run, self.acc, self.model
        was_training = model.training
        model.eval()
        keys = eval_keys(len(dataset), run.batch_size_eval, acc.process_index, acc.num_processes)
        rows: list[dict[str, Any]] = []
        skipped: list[tuple[str, str]] = []
        for batch in _loader(dataset, keys, run.num_workers):
            skipped.extend(batch.skipped)
            if len(batch) == 0:
                continue
            speech, beats = frozen_features(model, batch)
            hints = clip_hints(model, batch, speech)
            _write_cache(self.cache, batch, speech, beats, hints)
            with acc.autocast():
                out = self.module(speech, beats, **_step_inputs(batch, hints))
            hyps: list[str | None] = list(out.hyps) if out.hyps is not None else [None] * len(batch)
            todo = [i for i, s in enumerate(batch.samples)
                    if decode and out.hyps is None and s["task"].lower().startswith("asr")]
            if todo:
                clips = encoded_clips([out.tokens[i].float() for i in todo],
                                      [hints.transcripts[i] for i in todo] if hints and hints.transcripts is not None else None,
                                      [hints.tags[i] for i in todo] if hints and hints.tags is not None else None)
                encoded = [[clip] for clip in clips]
                texts = model.generate_from_prompts([batch.samples[i]["prompt"] for i in todo], encoded,
                                                    num_beams=run.num_beams, max_new_tokens=run.max_new_tokens)
                for i, text in zip(todo, texts):
                    hyps[i] = text
            for i, s in enumerate(batch.samples):
                rows.append({"task": s["task"], "loss_sum": float(out.loss_sum[i]), "tokens": int(out.count[i]),
                             "correct": int(out.correct[i]), "ref": s["text"], "hyp": hyps[i]})
        rows = gather_object(rows) if acc.num_processes > 1 else rows
        skipped = gather_object(skipped) if acc.num_processes > 1 else skipped
        model.train(was_training)
        return summarize(rows, skipped)


def summarize(rows: list[dict[str, Any]], skipped: list[tuple[str, str]]) -> dict[str, Any]:
    """Per-task and overall metrics from per-sample rows."""
    import jiwer

    def stats(items: list[dict[str, Any]]) -> dict[str, Any]:
        tokens = sum(r["tokens"] for r in items)
        out: dict[str, Any] = {"samples": len(items), "loss": sum(r["loss_sum"] for r in items) / max(tokens, 1),
                               "token_acc": sum(r["correct"] for r in items) / max(tokens, 1)}
        decoded = [r for r in items if r["hyp"] is not None and normalize_transcript(r["ref"])]
        if decoded:
            out["wer"] = float(jiwer.wer([normalize_transcript(r["ref"]) for r in decoded],
                                         [normalize_transcript(r["hyp"]) for r in decoded]))
        wordless = [r for r in items if r["hyp"] is not None and not normalize_transcript(r["ref"])]
        if wordless:  # no words to hear (silence): WER is undefined; count the empty answers
            out["empty_acc"] = sum(not normalize_transcript(r["hyp"]) for r in wordless) / len(wordless)
        return out

    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    return {"tasks": {t: stats(items) for t, items in sorted(by_task.items())}, **stats(rows),
            "skipped": len(skipped), "skipped_samples": [list(s) for s in skipped[:100]]}


def _flat(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in metrics.items() if k not in {"tasks", "skipped_samples"}}
    for task, values in metrics.get("tasks", {}).items():
        for k, v in values.items():
            out[f"{task}/{k}"] = v
    return out


def train(config: TrainConfig, **kwargs: Any) -> TrainResult:
    """Run training for ``config`` (resuming from its latest checkpoint with ``run.resume: auto``)."""
    return Trainer(config, **kwargs).train()


def fill_cache(config: TrainConfig, **kwargs: Any) -> dict[str, int]:
    """Fill ``datasets.feature_cache_dir`` with the training data's features and hints (see
    :meth:`Trainer.fill_cache`); returns how many samples were read, computed and skipped."""
    return Trainer(config, **kwargs).fill_cache()


def evaluate(config: TrainConfig, model_dir: str | Path | None = None, split: str = "test",
             **kwargs: Any) -> dict[str, Any]:
    """Per-task metrics on ``datasets.test_ann_path`` (or ``valid``) with the trained model.

    The model is ``model_dir``, else ``output_dir/model`` when it exists, else ``config.model``.
    """
    if model_dir is None:
        final = config.path(config.output_dir) / FINAL_MODEL
        model_dir = final if (final / "salmonn_config.json").is_file() else None
    if model_dir is not None:
        config = config.model_copy(update={"model": str(Path(model_dir).resolve())})
    trainer = Trainer(config, **kwargs)
    ann = getattr(config.datasets, f"{split}_ann_path")
    if ann is None and split == "test":
        split, ann = "valid", config.datasets.valid_ann_path
    dataset = _dataset(config, trainer.model, ann, config.datasets.test_prompt_path or config.datasets.prompt_path,
                       trainer.cache, random_prompts=False, what=split)
    with trainer.model.lora_scale(config.run.lora_scale):
        metrics = trainer.validate(dataset, decode=True)
    return {"split": split, "model": config.model, **metrics}
