"""Chat about a clip with SALMONN, printing the answer token by token as it is generated.

    python examples/streaming_chat.py                                        # examples/audio/speech.wav
    python examples/streaming_chat.py --input dog.wav "What do you hear?" "Is it indoors?"

Each question follows the previous answers about the same clip (a conversation: the clip is
encoded once, later turns reuse the cached audio and prompt). Uses the embedded default model,
or ``--model DIR``. The time to the first token of each answer goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from salmonn_agent.chat_model import ChatSALMONN, audio_message
from salmonn_agent.errors import SalmonnError
from salmonn_agent.registry import load_model, resolve_model_name

SPEECH = Path(__file__).resolve().parent / "audio" / "speech.wav"


def main() -> int:
    """Ask each question in turn, streaming the answers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="*", default=["Please describe the audio."], metavar="QUESTION")
    parser.add_argument("--input", type=Path, default=SPEECH, metavar="FILE", help="the clip to talk about")
    parser.add_argument("--model", help="a salmonn-agent model directory (default: the embedded model)")
    parser.add_argument("--max-tokens", type=int, default=128, help="longest answer in tokens")
    args = parser.parse_args()

    try:
        first = audio_message(args.input, args.questions[0])  # a missing file fails before the model loads
        chat = ChatSALMONN(client=load_model(args.model), model=resolve_model_name(args.model),
                           temperature=0, max_tokens=args.max_tokens)
        history: list[BaseMessage] = []
        for number, question in enumerate(args.questions):
            history.append(first if number == 0 else HumanMessage(question))
            print(f"> {question}", flush=True)
            start, ttft, answer = time.perf_counter(), None, ""
            for chunk in chat.stream(history):
                if chunk.text and ttft is None:
                    ttft = time.perf_counter() - start
                answer += chunk.text
                print(chunk.text, end="", flush=True)
            print(flush=True)
            history.append(AIMessage(answer))
            took = f"first token after {ttft * 1000:.0f} ms" if ttft is not None else "no text"
            print(f"({took}, {(time.perf_counter() - start) * 1000:.0f} ms in all)", file=sys.stderr, flush=True)
    except SalmonnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
