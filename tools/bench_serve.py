"""Benchmark ``salmonn-agent serve`` as its clients see it.

Starts the server in a subprocess (salmonn-mini by default), waits until it is ready, and prints
one JSON object:

* ``ttft_ms`` / ``latency_ms``: p50 and p95 of single streamed requests, one after another (time
  to the first answer piece, and to the end);
* ``throughput_rps``: answers per second with 1, 4 and 16 clients sending at once (each client
  sends ``--requests-per-client`` requests, one after another); ``speedup_16_vs_1`` is their
  ratio (target >= 2 on 2 cores: the engine batches concurrent requests);
* ``ask_server_s``: wall time of the whole ``salmonn-agent ask --server URL CLIP "..."`` command,
  new process included (target <= 2 s for a 5 s clip), and ``client_start_ms``: that time minus
  the same request sent from this process;
* ``server_peak_rss_mb``: the server process's peak resident memory.

Every request has the same clip with a different -80 dB dither, so the audio cache never answers
for the encoders. Answers are greedy, at most ``--tokens`` tokens.

Usage: python tools/bench_serve.py --json [--model DIR] [--clip examples/audio/speech.wav]
       [--tokens 16] [--requests-per-client 2] [--port 8765] [--max-batch-size N]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit.serving import ServerNotReady, wait_until_healthy  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


class Bench:
    """Requests to one running server."""

    def __init__(self, url: str, clip: Path, tokens: int) -> None:
        self.url, self.tokens = url, tokens
        self.samples, self.rate = sf.read(clip, dtype="float32", always_2d=False)
        self.rng = np.random.default_rng(0)
        self.lock = threading.Lock()

    def body(self, stream: bool) -> dict:
        with self.lock:
            dither = self.rng.standard_normal(self.samples.shape).astype(np.float32) * 1e-4
        buffer = io.BytesIO()
        sf.write(buffer, self.samples + dither, self.rate, format="WAV")
        return {"model": "salmonn", "stream": stream, "max_tokens": self.tokens, "temperature": 0, "messages": [
            {"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": base64.b64encode(buffer.getvalue()).decode(),
                                                        "format": "wav"}},
                {"type": "text", "text": "Recognize the speech and give me the transcription."}]}]}

    def streamed(self) -> tuple[float, float]:
        """(time to the first answer piece, whole time) of one streamed request, in seconds."""
        body = self.body(stream=True)
        start = time.perf_counter()
        first = None
        with httpx.stream("POST", f"{self.url}/chat/completions", json=body, timeout=600) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if first is None and line.startswith("data:") and '"content": "' in line and '"role"' not in line:
                    first = time.perf_counter() - start
        total = time.perf_counter() - start
        return (first if first is not None else total), total

    def whole(self) -> float:
        body = self.body(stream=False)
        start = time.perf_counter()
        httpx.post(f"{self.url}/chat/completions", json=body, timeout=600).raise_for_status()
        return time.perf_counter() - start

    def throughput(self, clients: int, per_client: int) -> float:
        def client() -> None:
            for _ in range(per_client):
                self.whole()

        threads = [threading.Thread(target=client) for _ in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return clients * per_client / (time.perf_counter() - start)


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--model", help="model directory (default: salmonn-mini)")
    parser.add_argument("--clip", type=Path, default=ROOT / "examples" / "audio" / "speech.wav")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--singles", type=int, default=5, help="single requests for the latency figures")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--max-batch-size", type=int, help="the server's --max-batch-size (default: its own)")
    args = parser.parse_args()

    command = [sys.executable, "-m", "salmonn_agent.cli", "serve", "--port", str(args.port), "--max-in-flight", "64"]
    if args.model:
        command += ["--model", args.model]
    if args.max_batch_size:
        command += ["--max-batch-size", str(args.max_batch_size)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{args.port}"
    try:
        try:
            ready_s = wait_until_healthy(base, 600, server)
        except ServerNotReady as err:
            raise SystemExit(str(err)) from None
        bench = Bench(f"{base}/v1", args.clip, args.tokens)
        bench.streamed()  # warm-up
        singles = [bench.streamed() for _ in range(args.singles)]
        ttft = [s[0] * 1000 for s in singles]
        latency = [s[1] * 1000 for s in singles]
        throughput = {n: bench.throughput(n, args.requests_per_client) for n in (1, 4, 16)}
        in_process = statistics.median(bench.whole() for _ in range(3))
        env = dict(os.environ, SALMONN_AGENT_SERVER=base)
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "salmonn_agent.cli", "ask", str(args.clip),
                            "Recognize the speech and give me the transcription.", "--max-new-tokens",
                            str(args.tokens)], env=env, check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
        result = {
            "model": args.model or "salmonn-mini",
            "clip_s": round(len(bench.samples) / bench.rate, 2),
            "tokens": args.tokens,
            "max_batch_size": args.max_batch_size,
            "server_ready_s": round(ready_s, 2),
            "ttft_ms": {"p50": round(_percentile(ttft, 50), 1), "p95": round(_percentile(ttft, 95), 1)},
            "latency_ms": {"p50": round(_percentile(latency, 50), 1), "p95": round(_percentile(latency, 95), 1)},
            "throughput_rps": {str(n): round(v, 3) for n, v in throughput.items()},
            "speedup_16_vs_1": round(throughput[16] / throughput[1], 2),
            "ask_server_s": round(statistics.median(walls), 3),
            "client_start_ms": round((statistics.median(walls) - in_process) * 1000, 1),
            "server_peak_rss_mb": _peak_rss_mb(server.pid),
        }
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
