"""CTC alignment of audio tokens to the LLM's own input embeddings (``run.objective: ctc``).

Not part of upstream SALMONN. A small Q-Former trained only through a frozen LLM gets a weak
signal: within a CPU budget its tokens barely differ between speech clips, so the model tells
speech from sound but not one sentence from another (salmonn-mini's recipe in
``docs/model-card.md`` starts with this objective for that reason). This objective trains
the Q-Former and projection directly, without the LLM's layers in the loop (a step costs a few
percent of an LLM step): every audio token is scored against every row of the LLM's frozen
input-embedding matrix by scaled cosine similarity, and CTC aligns the token sequence with the
LLM token ids of a target text (the transcript, plus words for the sounds heard). The audio
tokens then point at the embeddings of the words heard, so the LLM reads them much like text.
A norm penalty holds their length at the embeddings' mean norm, the scale the LLM expects.

CTC blank is the token a lone space encodes to when words do not use it (SmolLM2's ``Ġ``; its
embedding stands for "nothing here"), else the end symbol (SentencePiece's ``▁`` starts words).
``torch.nn.functional.ctc_loss`` does the alignment and rapidfuzz the token edit distance; no
library offers a CTC head tied to a frozen embedding matrix, hence this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from rapidfuzz.distance import Levenshtein
from torch import nn

from salmonn_agent.training.loss import StepOutput, audio_tokens

BLANK_TEXT = " "
LOGIT_SCALE = 30.0  # cosine similarities in [-1, 1] → logits; SmolLM2's nearest embeddings are ~0.65 apart
NORM_WEIGHT = 0.1
TRAIN_CANDIDATES = 8192


def ctc_greedy(ids: torch.Tensor, blank: int) -> list[int]:
    """Collapse a frame-wise argmax sequence: merge repeats, drop blanks."""
    out: list[int] = []
    previous = None
    for token in ids.tolist():
        if token != previous and token != blank:
            out.append(token)
        previous = token
    return out


def token_errors(reference: list[int], hypothesis: list[int]) -> int:
    """Levenshtein distance between two token-id sequences (rapidfuzz)."""
    return Levenshtein.distance(reference, hypothesis)


class SALMONNForAlignment(nn.Module):
    """Wraps SALMONN with a ``forward`` returning the CTC alignment loss (same call as the LM one).

    ``texts`` are the CTC targets; ``prompts`` are ignored (the LLM does not run). The output's
    ``hyps`` hold each sample's greedy CTC transcript, so validation reports a WER for free.
    """

    def __init__(self, model: nn.Module, max_txt_len: int = 300) -> None:
        super().__init__()
        self.model = model
        self.max_txt_len = max_txt_len
        space = set(model.tokenizer.encode(BLANK_TEXT))
        in_words = set(model.tokenizer.encode("say a few words"))
        self.blank = space.pop() if len(space) == 1 and not space & in_words else int(model._eos_id)
        embed = model.llm.get_input_embeddings().weight
        self.register_buffer("target_norm", embed.detach().float().norm(dim=-1).mean(), persistent=False)

    def targets(self, text: str) -> list[int]:
        """The CTC target ids of ``text`` (blank id removed, cut at ``max_txt_len``)."""
        return [t for t in self.model.tokenizer.encode(text) if t != self.blank][: self.max_txt_len]

    def forward(self, speech: list[torch.Tensor], beats: list[list[torch.Tensor]] | None,
                prompts: list[str], texts: list[str]) -> StepOutput:
        model = self.model
        tokens = audio_tokens(model, speech, beats)
        lengths = torch.tensor([t.shape[0] for t in tokens], dtype=torch.long)
        padded = nn.utils.rnn.pad_sequence(tokens, batch_first=True).float()  # [B, T, H]
        valid = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
        valid = valid.to(padded.device)

        weight = model.llm.get_input_embeddings().weight
        target_rows = [self.targets(t) for t in texts]
        target_lengths = torch.tensor([len(r) for r in target_rows], dtype=torch.long)
        flat_targets = torch.tensor([t for r in target_rows for t in r], dtype=torch.long, device=weight.device)
        # With gradients, score only the TRAIN_CANDIDATES most frequent tokens (BPE ids are in
        # merge order), the batch's targets and blank: a sixth of the full vocabulary's cost.
        # Validation (no gradients) scores the whole vocabulary.
        if torch.is_grad_enabled():
            candidates = torch.unique(torch.cat([
                torch.arange(min(TRAIN_CANDIDATES, weight.shape[0]), device=weight.device), flat_targets,
                torch.tensor([self.blank], device=weight.device)]))
        else:
            candidates = torch.arange(weight.shape[0], device=weight.device)
        table = F.normalize(weight.detach()[candidates].float(), dim=-1)
        logits = LOGIT_SCALE * F.normalize(padded, dim=-1) @ table.T  # [B, T, candidates]
        log_probs = logits.log_softmax(-1)
        position = torch.searchsorted(candidates, torch.cat([flat_targets, flat_targets.new_tensor([self.blank])]))
        ctc = F.ctc_loss(log_probs.transpose(0, 1), position[:-1], lengths, target_lengths, blank=int(position[-1]),
                         reduction="none", zero_infinity=True)  # [B], summed over each target
        per_token = ctc / target_lengths.to(ctc.device).clamp(min=1)
        norms = padded.norm(dim=-1) / self.target_norm
        norm_penalty = ((norms - 1.0) ** 2)[valid].mean()
        loss = per_token.mean() + NORM_WEIGHT * norm_penalty

        hyps, correct = [], []
        best = candidates[logits.detach().argmax(-1)]
        for row, target in enumerate(target_rows):
            ids = ctc_greedy(best[row, : int(lengths[row])], self.blank)
            hyps.append(model.tokenizer.decode(ids).strip())
            correct.append(max(0, len(target) - token_errors(target, ids)))
        device = padded.device
        return StepOutput(loss, ctc.detach(), torch.tensor(correct, device=device),
                          target_lengths.to(device), tokens, hyps=hyps)
