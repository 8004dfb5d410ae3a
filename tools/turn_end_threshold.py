"""Choose the voice assistant's end-of-turn threshold on the training request bank.

``salmonn_agent/agent/turn_end.py``'s :class:`TurnEndModel` calls a request unfinished when its
end-of-turn probability (salmonn-mini's base chat LLM, SmolLM2-135M-Instruct) is below a
threshold. This script scores requests of the *training* split of the assistant's request bank
(``devkit/assistant_bank.py``; the benchmark speaks the held-out split) whole and cut after
their first, second, ... word, written as Whisper writes them (a full stop at the end), and
reports for each candidate threshold how many cut requests it holds back (``held_partial``, the
turns it keeps open) and how many whole ones it ends at once (``ended_whole``); the word rule
(:func:`sounds_unfinished`) applies first, as in the assistant.

Prints one JSON object: ``requests``, ``partials``, per threshold ``held_partial`` and
``ended_whole`` (fractions), ``best`` (the threshold with the largest sum), ``p_end_ms``
(median time of one probability on this CPU) and ``dtype``.

Usage: python tools/turn_end_threshold.py --json [--requests 200] [--seed 0] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit.assistant_bank import sample_requests  # noqa: E402
from salmonn_agent.agent.turn_end import TurnEndModel, sounds_unfinished  # noqa: E402
from salmonn_agent.mini.parts import prepare_mini_parts  # noqa: E402
from salmonn_agent.model.precision import native_bfloat16  # noqa: E402

THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


def as_heard(words: list[str]) -> str:
    """Words as Whisper writes a clip that stops there: capitalised, ending in a full stop."""
    text = " ".join(words).rstrip(".?!,:;")
    return text[:1].upper() + text[1:] + "."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--requests", type=int, default=200, help="distinct training requests (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if native_bfloat16() else torch.float32
    judge = TurnEndModel(prepare_mini_parts().llm_dir, dtype=dtype)

    texts: list[str] = []
    for request in sample_requests("train", 20 * args.requests, args.seed):
        if request.text not in texts:
            texts.append(request.text)
        if len(texts) == args.requests:
            break
    whole: list[tuple[bool, float]] = []
    partial: list[tuple[bool, float]] = []
    times: list[float] = []

    def score(text: str) -> tuple[bool, float]:
        start = time.perf_counter()
        p = judge.end_probability(text)
        times.append((time.perf_counter() - start) * 1000)
        return sounds_unfinished(text), p

    for text in texts:
        words = text.split()
        whole.append(score(as_heard(words)))
        partial += [score(as_heard(words[:k])) for k in range(1, len(words))]

    def held(items: list[tuple[bool, float]], threshold: float) -> float:
        return sum(rule or p < threshold for rule, p in items) / len(items)

    table = {
        str(t): {"held_partial": round(held(partial, t), 3), "ended_whole": round(1 - held(whole, t), 3)}
        for t in THRESHOLDS
    }
    best = max(THRESHOLDS, key=lambda t: table[str(t)]["held_partial"] + table[str(t)]["ended_whole"])
    print(json.dumps({
        "requests": len(texts), "partials": len(partial), "thresholds": table, "best": best,
        "rule_only": {"held_partial": round(held(partial, -1.0), 3), "ended_whole": round(1 - held(whole, -1.0), 3)},
        "p_end_ms": round(statistics.median(times), 1), "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
