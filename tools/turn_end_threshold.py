"""Choose the voice assistant's end-of-turn threshold on the training request bank.

``salmonn_agent/agent/turn_end.py``'s :class:`TurnEndModel` calls a request unfinished when its
end-of-turn probability (salmonn-mini's base chat LLM, SmolLM2-135M-Instruct) is below a
threshold. This script judges requests of the *training* split of the assistant's request
bank (``devkit/assistant_bank.py``; the benchmark speaks the held-out split), whole and cut in
the middle (where the benchmark's hesitating speakers pause), as the assistant judges them:
said by a training voice (espeak-ng) and transcribed by salmonn-mini's Whisper tiny.en
(``heard``); and as plain text with a full stop (``text``, what a perfect transcript gives). For
each candidate threshold it reports how many cut requests it holds back (``held_partial``, the
turns it keeps open) and how many whole ones it ends at once (``ended_whole``); the word rule
(:func:`sounds_unfinished`) applies first, as in the assistant.

Prints one JSON object: ``requests``; for ``heard`` and ``text``, per threshold
``held_partial`` and ``ended_whole`` (fractions), and ``rule_only``; ``best``, the threshold
that holds back the most cut requests while ending at least ``--min-ended`` of the whole ones
heard; ``p_end_ms`` (median time of one probability on this CPU) and ``dtype``.

Usage: python tools/turn_end_threshold.py --json [--requests 100] [--min-ended 0.9] [--seed 0]
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

import numpy as np  # noqa: E402

from devkit import sounds as S  # noqa: E402
from devkit.assistant_bank import sample_requests  # noqa: E402
from salmonn_agent.agent.turn_end import TurnEndModel, sounds_unfinished  # noqa: E402
from salmonn_agent.mini.parts import prepare_mini_parts  # noqa: E402
from salmonn_agent.model.precision import native_bfloat16  # noqa: E402
from salmonn_agent.registry import load_model  # noqa: E402

THRESHOLDS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


def as_heard(words: list[str]) -> str:
    """Words as Whisper writes a clip that stops there: capitalised, ending in a full stop."""
    text = " ".join(words).rstrip(".?!,:;")
    return text[:1].upper() + text[1:] + "."


def table(whole: list[tuple[bool, float]], partial: list[tuple[bool, float]]) -> dict:
    """``held_partial`` / ``ended_whole`` per threshold, and with the word rule alone."""
    def held(items: list[tuple[bool, float]], threshold: float) -> float:
        return sum(rule or p < threshold for rule, p in items) / len(items)

    rows = {str(t): {"held_partial": round(held(partial, t), 3), "ended_whole": round(1 - held(whole, t), 3)}
            for t in THRESHOLDS}
    rows["rule_only"] = {"held_partial": round(held(partial, -1.0), 3), "ended_whole": round(1 - held(whole, -1.0), 3)}
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--requests", type=int, default=100, help="distinct training requests (default 100)")
    parser.add_argument("--min-ended", type=float, default=0.9,
                        help="least fraction of whole requests heard that must end at once (default 0.9)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if native_bfloat16() else torch.float32
    judge = TurnEndModel(prepare_mini_parts().llm_dir, dtype=dtype)
    model = load_model(None)  # salmonn-mini: its Whisper writes the transcripts the assistant judges

    texts: list[str] = []
    for request in sample_requests("train", 20 * args.requests, args.seed):
        if request.text not in texts and len(request.text.split()) > 1:
            texts.append(request.text)
        if len(texts) == args.requests:
            break
    times: list[float] = []

    def judged(text: str) -> tuple[bool, float]:
        start = time.perf_counter()
        p = judge.end_probability(text)
        times.append((time.perf_counter() - start) * 1000)
        return sounds_unfinished(text), p

    def heard(words: list[str], voice: S.Voice) -> str:
        clip = S.speak(" ".join(words), voice)
        return model.encode_samples([clip])[0].transcript or ""

    cases = {"heard": ([], []), "text": ([], [])}
    for index, text in enumerate(texts):
        words = text.split()
        half = words[: len(words) // 2]
        voice = S.draw_voice(np.random.default_rng([args.seed, index, 4242]), held_out=False)
        cases["heard"][0].append(judged(heard(words, voice)))
        cases["heard"][1].append(judged(heard(half, voice)))
        cases["text"][0].append(judged(as_heard(words)))
        cases["text"][1].append(judged(as_heard(half)))
    tables = {name: table(*pair) for name, pair in cases.items()}
    fit = [t for t in THRESHOLDS if tables["heard"][str(t)]["ended_whole"] >= args.min_ended]
    best = max(fit, key=lambda t: tables["heard"][str(t)]["held_partial"]) if fit else None
    print(json.dumps({
        "requests": len(texts), **tables, "best": best, "min_ended": args.min_ended,
        "p_end_ms": round(statistics.median(times), 1), "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
