"""A voice assistant that hears requests, answers them and acts, through a safety policy.

    python examples/voice_assistant.py                                  # the microphone
    python examples/voice_assistant.py --input request.wav              # a file replayed as a microphone
    python examples/voice_assistant.py --input request.wav --allow add_note set_timer --audit audit.jsonl

SALMONN (the embedded default model, or ``--model DIR``) hears each speech window itself and
may ask for the built-in actions: notes, timers, events. Every request goes through an ActionGate:
only the tools named by ``--allow`` run (default: the harmless ones), risky ones
(delete_notes) are confirmed on the terminal, and ``--audit`` logs every request with the
window that triggered it. One line per turn; stop with Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from salmonn_agent.agent import (
    ActionGate,
    ActionPolicy,
    ActionRequest,
    ActionsConfig,
    AuditLog,
    TimerBoard,
    build_actions,
)
from salmonn_agent.agent.audio_refs import WindowStore
from salmonn_agent.agent.commands import format_turn
from salmonn_agent.agent.runtime import AgentConfig, VoiceAgent, memory_turns_for, offered_actions
from salmonn_agent.chat_model import ChatSALMONN
from salmonn_agent.errors import SalmonnError
from salmonn_agent.registry import load_model, profile_of, resolve_model_name
from salmonn_agent.stream import FileSource, Listener, MicrophoneSource

HARMLESS = ["add_note", "read_notes", "set_timer", "list_timers", "cancel_timer"]


def confirm_on_terminal(request: ActionRequest) -> bool:
    """Ask before a risky action runs (anything but "y" refuses it)."""
    try:
        reply = input(f"Run {request.tool}({json.dumps(request.args)})? [y/N] ")
    except EOFError:  # no terminal: refuse
        return False
    return reply.strip().lower() in ("y", "yes")


def main() -> int:
    """Build the assistant from the options and run it until the input ends (or Ctrl-C)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a salmonn-agent model directory (default: the embedded model)")
    parser.add_argument("--input", type=Path, metavar="FILE", help="replay this audio file instead of the microphone")
    parser.add_argument("--realtime", action="store_true", help="with --input: pace the file like a live microphone")
    parser.add_argument("--mic", metavar="DEVICE", help="microphone index or part of its name")
    parser.add_argument("--allow", nargs="+", default=HARMLESS, metavar="TOOL",
                        help=f"tools heard speech may trigger (default: {' '.join(HARMLESS)})")
    parser.add_argument("--notes", type=Path, help="the notes file (default: in the user data folder)")
    parser.add_argument("--audit", type=Path, help="append every action request to this JSON Lines file")
    parser.add_argument("--max-tokens", type=int, default=64, help="longest answer in tokens")
    args = parser.parse_args()

    board = TimerBoard(on_fire=lambda timer: print(f"timer {timer.id} '{timer.label}' rang", flush=True))
    try:
        source = FileSource(args.input, realtime=args.realtime) if args.input else MicrophoneSource(args.mic)
        if args.input:
            source.start()  # decodes the file: a bad --input fails now, before the model loads
        config = ActionsConfig(notes_path=args.notes) if args.notes else ActionsConfig()
        gate = ActionGate(ActionPolicy(allow=args.allow), AuditLog(args.audit), confirm=confirm_on_terminal)
        chat = ChatSALMONN(client=load_model(args.model), model=resolve_model_name(args.model),
                           temperature=0, max_tokens=args.max_tokens)
        # As `salmonn-agent assistant` does, the brain is offered the allowed tools and those its
        # model learned its requests with (salmonn-mini's prompt is then the one it was trained
        # with); the gate refuses every call that is not allowed.
        actions = offered_actions(build_actions(config, board=board), args.allow, profile_of(chat))
        agent = VoiceAgent(chat, actions=actions, gate=gate, store=WindowStore(),
                           config=AgentConfig(max_memory_turns=memory_turns_for(profile_of(chat))),
                           on_turn=lambda turn: print(format_turn(turn), flush=True))

        # Live audio gets barge-in (speaking over an answer stops it); a file replayed as fast
        # as possible has every request answered in turn.
        live = args.input is None or args.realtime
        with Listener(source, on_onset=agent.on_onset if live else None) as listener:
            if args.input is None:
                print("Listening (Ctrl-C to stop)...", file=sys.stderr, flush=True)
            results = asyncio.run(agent.run(listener) if live else agent.process(listener))
    except SalmonnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        board.close()
    ran = sum(action.ok for turn in results for action in turn.actions)
    print(f"{len(results)} turns, {ran} actions ran.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
