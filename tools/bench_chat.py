"""Benchmark ChatSALMONN (CPU by default) with a locally built, randomly initialised model.

Prints one JSON object:

* ``second_turn_ratio``: latency of a second turn about the same clip (the first turn's messages,
  its answer and a new question: the audio tokens and the LLM's key/value cache of the first
  turn come from the caches) / latency of the first turn (which encodes the clip); target <= 0.5;
* ``concurrent_speedup``: throughput of ``--concurrency`` requests invoked at once from threads
  (batched into shared ``generate`` calls) / the same requests one after another; target >= 2;
* ``second_turn_ttft_ratio``: time to the first streamed text of a second turn about the same
  clip / the first turn's (which encodes the clip and prefills its whole prompt); target <= 0.35.
  ``first_turn_prefill`` / ``second_turn_prefill``: prompt positions each turn computed (median;
  the rest came from the conversation's key/value cache, ``usage_metadata``'s
  ``input_token_details["cache_read"]``);
* ``ttft_ms``: time from ``stream()`` to the first text chunk (clip already heard);
* the raw latencies behind them, the sizes, and ``first_answer_tokens`` / ``answer_tokens``
  (mean tokens of the first / second turns' answers: a turn's decoding, which no cache
  shortens, grows with them);
* ``prefix_cache_*``: the conversations' key/value cache (``--prefix-cache-size``, 0 turns it
  off): hits, prompt positions reused from it and prefilled.

Sizes are ``devkit.tiny.SIZES``: ``small`` has Whisper tiny's encoder shape and
SmolLM2-135M's LLM shape; ``tiny`` is the test model. Random weights run at the speed of
trained ones; answers run to ``--tokens`` tokens (the random model rarely stops earlier), so
decoding weighs the same in both turns.

``--model salmonn-mini`` (or a model directory) measures a trained model instead, on
``examples/audio/speech.wav`` (each repeat adds a different -80 dB dither, so every first turn
is a clip the caches have not seen); its answers end where the model ends them, at most
``--tokens``.

``--device cuda`` runs it on a GPU (``auto`` is float32 there).

Usage: python tools/bench_chat.py --json [--size small|tiny | --model salmonn-mini|DIR]
       [--tokens 16] [--repeats 3] [--prefix-cache-size 4] [--dtype auto|float32|float16-weights|int8]
       [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from langchain_core.messages import AIMessageChunk, HumanMessage

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # devkit/ sits at the repository root, outside the package
    sys.path.insert(0, str(ROOT))

from devkit.tiny import SIZES, build_tiny_model  # noqa: E402
from salmonn_agent.audio import SAMPLE_RATE  # noqa: E402
from salmonn_agent.chat_model import ChatSALMONN, audio_message  # noqa: E402
from salmonn_agent.model.half_weights import weight_format  # noqa: E402
from salmonn_agent.model.salmonn import SALMONN  # noqa: E402



SPEECH = Path(__file__).resolve().parent.parent / "examples" / "audio" / "speech.wav"


def _noise_clip(seed: int, seconds: float) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * 0.1).astype(np.float32)


def _speech_clip(seed: int, seconds: float) -> np.ndarray:
    """The example speech with a seed-dependent dither far below hearing (a new cache key)."""
    from salmonn_agent.audio import load_audio

    speech = load_audio(SPEECH)
    dither = np.random.default_rng(seed).standard_normal(len(speech)) * 1e-4
    return (speech + dither).astype(np.float32)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _streamed(chat: ChatSALMONN, messages: list) -> tuple[float, AIMessageChunk]:
    """Stream one answer: seconds to its first text, and the whole answer."""
    start = time.perf_counter()
    first: float | None = None
    answer: AIMessageChunk | None = None
    for chunk in chat.stream(messages):
        if first is None and chunk.content:
            first = time.perf_counter() - start
        answer = chunk if answer is None else answer + chunk
    assert answer is not None
    return (first if first is not None else time.perf_counter() - start), answer


def _prefilled(answer: AIMessageChunk) -> int:
    usage = answer.usage_metadata or {}
    return int(usage.get("input_tokens", 0)) - int((usage.get("input_token_details") or {}).get("cache_read", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--model", help="a trained model instead: salmonn-mini or a model directory")
    parser.add_argument("--tokens", type=int, default=16, help="max tokens per answer")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length of the random models' noise clips")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--prefix-cache-size", type=int, default=ChatSALMONN.model_fields["prefix_cache_size"].default,
                        help="conversations whose key/value cache is kept (0: off)")
    parser.add_argument("--dtype", default="auto", help="as the CLI's --dtype: auto (default), float32, float16-weights, int8 or bfloat16")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.model:
        from salmonn_agent.registry import load_model

        model, name, _clip = load_model(args.model, device=args.device, dtype=args.dtype), args.model, _speech_clip
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model = SALMONN.from_pretrained(build_tiny_model(tmp, **SIZES[args.size]), device=args.device,
                                            dtype=args.dtype)
        name, _clip = f"bench-{args.size}", _noise_clip
    chat = ChatSALMONN(client=model, model=name, temperature=0, max_tokens=args.tokens,
                       batch_window_ms=20, prefix_cache_size=args.prefix_cache_size)
    chat.invoke([audio_message(_clip(999, args.seconds), "warm up", sample_rate=SAMPLE_RATE)])

    # first turn (clip encoded) vs second turn (clip from the cache), a fresh clip each time
    first, second, first_tokens, answer_tokens = [], [], [], []
    for repeat in range(args.repeats):
        question = audio_message(_clip(repeat, args.seconds), "Please describe the audio.", sample_rate=SAMPLE_RATE)
        answer = None

        def turn_one() -> None:
            nonlocal answer
            answer = chat.invoke([question])

        first.append(_timed(turn_one))
        first_tokens.append(answer.usage_metadata["output_tokens"])
        follow_up = [question, answer, HumanMessage("Is there speech in it?")]
        second.append(_timed(lambda: answer_tokens.append(chat.invoke(follow_up).usage_metadata["output_tokens"])))

    # streamed conversations: time to the first text of turn one (a new clip) and of turn two
    first_ttft, second_ttft, first_prefill, second_prefill = [], [], [], []
    for repeat in range(args.repeats):
        question = audio_message(_clip(100 + repeat, args.seconds), "Please describe the audio.",
                                 sample_rate=SAMPLE_RATE)
        seconds, answer = _streamed(chat, [question])
        first_ttft.append(seconds)
        first_prefill.append(_prefilled(answer))
        seconds, follow = _streamed(chat, [question, answer, HumanMessage("Is there speech in it?")])
        second_ttft.append(seconds)
        second_prefill.append(_prefilled(follow))

    # time to the first streamed chunk (the clip is already heard, as in a conversation)
    heard_clip = _clip(0, args.seconds)
    heard = audio_message(heard_clip, "What do you hear?", sample_rate=SAMPLE_RATE)
    ttft = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        stream = chat.stream([heard])
        next(stream)
        ttft.append(time.perf_counter() - start)
        stream.close()

    # concurrent requests (clips already heard, different questions) vs one after another
    requests = [[audio_message(_clip(i % args.repeats, args.seconds), f"Question number {i}?", sample_rate=SAMPLE_RATE)]
                for i in range(args.concurrency)]
    sequential = _timed(lambda: [chat.invoke(r) for r in requests])
    barrier = threading.Barrier(args.concurrency)

    def one(messages):
        barrier.wait()
        return chat.invoke(messages)

    with ThreadPoolExecutor(args.concurrency) as pool:
        concurrent = _timed(lambda: list(pool.map(one, requests)))

    result = {
        "model": name,
        "threads": torch.get_num_threads(),
        "int8": bool(getattr(model, "quantized", False)),
        "half_weights": weight_format(model.llm),  # "float16", "bfloat16" or None
        "clip_seconds": round(len(heard_clip) / SAMPLE_RATE, 2),
        "device": str(model.device),
        "first_answer_tokens": round(statistics.mean(first_tokens), 1),
        "answer_tokens": round(statistics.mean(answer_tokens), 1),
        "first_turn_ms": round(statistics.median(first) * 1000, 1),
        "second_turn_ms": round(statistics.median(second) * 1000, 1),
        "second_turn_ratio": round(statistics.median(second) / statistics.median(first), 3),
        "first_turn_ttft_ms": round(statistics.median(first_ttft) * 1000, 1),
        "second_turn_ttft_ms": round(statistics.median(second_ttft) * 1000, 1),
        "second_turn_ttft_ratio": round(statistics.median(second_ttft) / statistics.median(first_ttft), 3),
        "first_turn_prefill": statistics.median(first_prefill),
        "second_turn_prefill": statistics.median(second_prefill),
        "sequential_ms": round(sequential * 1000, 1),
        "concurrent_ms": round(concurrent * 1000, 1),
        "concurrent_speedup": round(sequential / concurrent, 2),
        "concurrency": args.concurrency,
        "ttft_ms": round(statistics.median(ttft) * 1000, 1),
        "audio_cache_hits": chat.audio_cache.hits,
        "audio_cache_misses": chat.audio_cache.misses,
        "prefix_cache_size": args.prefix_cache_size,
        "prefix_cache_hits": chat.prefix_cache.hits,
        "prefix_cache_reused_tokens": chat.prefix_cache.reused_tokens,
        "prefix_cache_prefilled_tokens": chat.prefix_cache.prefilled_tokens,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    from salmonn_agent.errors import SalmonnError

    try:
        raise SystemExit(main())
    except SalmonnError as err:  # a bad option (device, dtype, model): one line, not a traceback
        print(f"bench_chat: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
