"""Watch for sounds and call a webhook when one is heard ("tell me when the alarm goes off").

    python examples/sound_watch.py https://example.com/hook --watch "an alarm" --watch "a dog barking"
    python examples/sound_watch.py http://127.0.0.1:8080/hook --input kitchen.wav

Every window the front-end cuts from the microphone (or ``--input FILE`` replayed as one) is
checked by SALMONN (the embedded default model, or ``--model DIR``) with one yes/no question
per target. A new event (detections closer than ``--cooldown`` seconds are one event) POSTs
``{"event": "heard: an alarm", "details": ..., "sent_at": ...}`` to the webhook, through an
ActionGate that allows only that tool and logs every call to ``--audit``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from salmonn_agent.agent import ActionGate, ActionPolicy, AuditLog, webhook_tool
from salmonn_agent.agent.audio_refs import WindowStore
from salmonn_agent.agent.watch import Detection, SoundWatch
from salmonn_agent.chat_model import ChatSALMONN
from salmonn_agent.errors import SalmonnError
from salmonn_agent.registry import load_model, resolve_model_name
from salmonn_agent.stream import FileSource, Listener, MicrophoneSource


def report(detection: Detection) -> None:
    """One line per new event: what was heard, where, and what the webhook said."""
    w, action = detection.window, detection.action
    line = f"heard {detection.target} [{w['id']} {w['start']:.2f}-{w['end']:.2f} s]"
    if action is not None:
        line += f" | webhook: {action.output if action.ok else action.error or action.reason}"
    print(line, flush=True)


async def watch_windows(listener: Listener, watch: SoundWatch) -> tuple[int, int]:
    """Check every window until the input ends; returns (windows checked, webhooks sent)."""
    store = WindowStore()  # gives the windows ids (w1, w2...) for the report and the audit
    checked = sent = 0
    async for window in listener.awindows():
        found = await watch.check(window, store.add(window))
        sent += sum(1 for d in found if d.action is not None and d.action.ok)
        checked += 1
    return checked, sent


def main() -> int:
    """Build the watch from the options and run it until the input ends (or Ctrl-C)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("webhook", metavar="URL", help="the http(s) URL to POST each event to")
    parser.add_argument("--watch", action="append", metavar="TARGET",
                        help="what to listen for, e.g. 'an alarm' (repeatable; default: an alarm)")
    parser.add_argument("--input", type=Path, metavar="FILE", help="replay this audio file instead of the microphone")
    parser.add_argument("--model", help="a salmonn-agent model directory (default: the embedded model)")
    parser.add_argument("--cooldown", type=float, default=10.0, help="seconds within which detections are one event")
    parser.add_argument("--audit", type=Path, help="append every webhook call to this JSON Lines file")
    args = parser.parse_args()

    try:
        webhook = webhook_tool(args.webhook)  # a bad URL fails here, before the model loads
        source = FileSource(args.input) if args.input else MicrophoneSource()
        if args.input:
            source.start()  # decodes the file: a bad --input fails now, before the model loads
        gate = ActionGate(ActionPolicy(allow=[webhook.name]), AuditLog(args.audit))
        chat = ChatSALMONN(client=load_model(args.model), model=resolve_model_name(args.model), temperature=0)
        watch = SoundWatch(chat.bind(max_tokens=4), args.watch or ["an alarm"], action=(webhook, gate),
                           cooldown_s=args.cooldown, on_detect=report)
        with Listener(source) as listener:
            if args.input is None:
                print("Listening (Ctrl-C to stop)...", file=sys.stderr, flush=True)
            checked, sent = asyncio.run(watch_windows(listener, watch))
    except SalmonnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"checked {checked} windows, {sent} webhook calls sent.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
