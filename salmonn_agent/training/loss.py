"""The training forward pass: frozen encoders → trainable Q-Former/projection → LLM loss.

Encoding is split in two: :func:`frozen_features` (Whisper's last hidden state and BEATs'
features, no gradients, cacheable) and the model's own :meth:`SALMONN.tokens_from_features`
(layer norms, Q-Former and projection, with gradients). The LLM input is upstream's: ``[BOS] + prompt before <SpeechHere> + audio tokens +
prompt after + target text + end_sym``, right-padded; the loss covers only target + end_sym.
The LM head runs only on the labelled positions (the vocabulary projection over every prompt
and audio position would be a fifth of the step's work on SmolLM2 and changes nothing in the loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from salmonn_agent.model.prompt import split_prompt
from salmonn_agent.training.data import Batch

IGNORE = -100


@torch.no_grad()
def frozen_features(model: nn.Module, batch: Batch) -> tuple[list[torch.Tensor], list[list[torch.Tensor]] | None]:
    """Per sample: Whisper states ``[chunks, frames, width]`` and (with BEATs) per-chunk features.

    Cached samples bring theirs; the others go through the frozen encoders together.
    """
    device, dtype = model.device, model.dtype
    speech_fresh = beats_fresh = None
    if batch.mel is not None:
        speech_fresh = model.speech_encoder(batch.mel.to(device, dtype)).last_hidden_state
        if model.beats is not None:
            feats, padding = model.beats.extract_features(
                batch.raw_wav.to(device, dtype), padding_mask=batch.padding_mask.to(device), mask_mode="exact"
            )
            valid = [feats.shape[1]] * feats.shape[0] if padding is None else (~padding).sum(1).tolist()
            beats_fresh = [feats[i, : int(v)] for i, v in enumerate(valid)]
    speech: list[torch.Tensor] = []
    beats: list[list[torch.Tensor]] | None = [] if model.beats is not None else None
    row = 0
    for sample in batch.samples:
        n = sample["n_chunks"]
        if "cached" in sample:
            speech.append(sample["cached"]["speech"].to(device, dtype))
            if beats is not None:
                beats.append([b.to(device, dtype) for b in sample["cached"]["beats"]])
        else:
            speech.append(speech_fresh[row : row + n])
            if beats is not None:
                beats.append(beats_fresh[row : row + n])
            row += n
    return speech, beats


def target_ids(model: nn.Module, text: str, max_txt_len: int) -> list[int]:
    """Token ids of the answer plus the end symbol, cut at ``max_txt_len`` (upstream's truncation)."""
    return (model.tokenizer.encode(text) + [model._eos_id])[:max_txt_len]


@dataclass
class StepOutput:
    """Loss (token mean) plus per-sample sums for metrics, and each sample's audio tokens."""

    loss: torch.Tensor
    loss_sum: torch.Tensor  # [B] summed token losses
    correct: torch.Tensor  # [B] argmax hits on target tokens
    count: torch.Tensor  # [B] target tokens
    tokens: list[torch.Tensor]
    hyps: list[str] | None = None  # per-sample transcripts when the objective decodes for free (CTC)


class SALMONNForTraining(nn.Module):
    """Wraps SALMONN with a ``forward`` that returns the loss (what DDP/FSDP wrap and call)."""

    def __init__(self, model: nn.Module, max_txt_len: int = 300) -> None:
        super().__init__()
        self.model = model
        self.max_txt_len = max_txt_len

    def forward(self, speech: list[torch.Tensor], beats: list[list[torch.Tensor]] | None,
                prompts: list[str], texts: list[str], hints: list[list[int]] | None = None) -> StepOutput:
        """``hints``: each clip's hint tokens (transcript, tags: :meth:`SALMONN.hint_ids`), for a
        model with ``speech_transcript`` or ``sound_tags``."""
        model = self.model
        tokens = audio_tokens(model, speech, beats)
        targets = [target_ids(model, t, self.max_txt_len) for t in texts]
        embeds, mask, labels = build_inputs(model, prompts, tokens, targets, hints)
        lm = causal_lm(model.llm)
        hidden = lm.get_decoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        return lm_loss(hidden, labels, lm.get_output_embeddings(), tokens)


def audio_tokens(model: nn.Module, speech: list[torch.Tensor], beats: list[list[torch.Tensor]] | None) -> list[torch.Tensor]:
    """Each sample's audio tokens ``[tokens, hidden]`` (all chunks of the batch in one Q-Former pass)."""
    counts = [s.shape[0] for s in speech]
    flat_beats = [b for per in beats for b in per] if beats is not None else None
    tokens_all = model.tokens_from_features(torch.cat(speech), flat_beats)
    return [t.reshape(-1, t.shape[-1]) for t in torch.split(tokens_all, counts)]


def causal_lm(llm: nn.Module) -> nn.Module:
    """The transformers causal LM inside a peft wrapper (LoRA layers stay injected), or ``llm``."""
    return llm.get_base_model() if hasattr(llm, "get_base_model") else llm


def build_inputs(model: nn.Module, prompts: list[str], tokens: list[torch.Tensor],
                 targets: list[list[int]], hints: list[list[int]] | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``inputs_embeds``, ``attention_mask`` and ``labels`` (-100 off the target).

    ``hints`` are the prompt tokens that follow each clip's audio tokens (its transcript, see
    :meth:`SALMONN.hint_ids`), as in generation.
    """
    embed = model.llm.get_input_embeddings()
    device = tokens[0].device
    bos = [model.tokenizer.tokenizer.bos_token_id] if model.config.add_bos else []
    rows, label_rows = [], []
    for index, (prompt, audio, target) in enumerate(zip(prompts, tokens, targets, strict=True)):
        pieces = split_prompt(prompt)
        if len(pieces) != 2:
            raise ValueError(f"training prompts need exactly one <SpeechHere>: {prompt!r}")
        before = bos + model.tokenizer.encode(pieces[0])
        hint = hints[index] if hints is not None else []
        after = hint + model.tokenizer.encode(pieces[1]) + target
        ids_before = torch.tensor(before, dtype=torch.long, device=device)
        ids_after = torch.tensor(after, dtype=torch.long, device=device)
        rows.append(torch.cat([embed(ids_before), audio.to(embed.weight.dtype), embed(ids_after)]))
        label = torch.full((rows[-1].shape[0],), IGNORE, dtype=torch.long, device=device)
        label[-len(target):] = torch.tensor(target, dtype=torch.long, device=device)
        label_rows.append(label)
    longest = max(r.shape[0] for r in rows)
    embeds = rows[0].new_zeros(len(rows), longest, rows[0].shape[1])
    mask = torch.zeros(len(rows), longest, dtype=torch.long, device=device)
    labels = torch.full((len(rows), longest), IGNORE, dtype=torch.long, device=device)
    for i, (row, label) in enumerate(zip(rows, label_rows)):
        embeds[i, : row.shape[0]] = row
        mask[i, : row.shape[0]] = 1
        labels[i, : row.shape[0]] = label
    return embeds, mask, labels


def lm_loss(hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module, tokens: list[torch.Tensor]) -> StepOutput:
    """Next-token cross entropy on the labelled positions, and token accuracy.

    ``hidden`` is the decoder's last hidden state; ``head`` (the LM head) runs only where a
    label follows.
    """
    shift_labels = labels[:, 1:]
    valid = shift_labels != IGNORE
    rows, cols = valid.nonzero(as_tuple=True)
    logits = head(hidden[:, :-1][rows, cols]).float()
    targets = shift_labels[rows, cols]
    losses = F.cross_entropy(logits, targets, reduction="none")
    batch = labels.shape[0]
    loss_sum = losses.new_zeros(batch).index_add(0, rows, losses)
    hits = (logits.argmax(-1) == targets).long()
    correct = torch.zeros(batch, dtype=torch.long, device=labels.device).index_add(0, rows, hits)
    count = valid.sum(1)
    loss = losses.sum() / count.sum().clamp(min=1)
    return StepOutput(loss, loss_sum.detach(), correct.detach(), count.detach(), tokens)
