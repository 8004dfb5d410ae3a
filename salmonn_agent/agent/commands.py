"""The ``salmonn-agent assistant`` command: the voice assistant on the microphone or a file.

The main CLI (``salmonn_agent/cli.py``) calls :func:`add_assistant_command` with its model
options and model loader. Each turn prints one line (window, answer, actions, metrics), or one
JSON object with ``--json``; user errors are :class:`~salmonn_agent.errors.SalmonnError` s,
which the main CLI prints as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from salmonn_agent.errors import ConfigError

if TYPE_CHECKING:  # the heavy modules load when the command runs, not with every CLI start
    from langchain_core.tools import BaseTool

    from salmonn_agent.agent.actions import ActionEvent, TimerBoard, TimerInfo
    from salmonn_agent.agent.policy import ActionRequest
    from salmonn_agent.agent.runtime import AgentConfig, TurnResult, VoiceAgent
    from salmonn_agent.agent.speech_out import Speaker
    from salmonn_agent.agent.watch import Detection
    from salmonn_agent.stream.sources import Source

WATCH_MAX_TOKENS = 4
"""The sound watch only needs a yes or a no."""


TURN_END_JUDGES = ("words", "model")
"""``--turn-end``: the word rule alone, or salmonn-mini's base chat LLM after it."""


def turn_end_judge(model: Any, config: AgentConfig, judge: str = "words") -> Callable[[str], bool] | None:
    """What judges whether a request sounds finished for the assistant's adaptive end of turn:
    with ``judge="model"``, salmonn-mini's base chat LLM (the brain, ``model``, a loaded SALMONN,
    must be built on it); else None, the word rule alone (see :mod:`salmonn_agent.agent.turn_end`)."""
    if judge not in TURN_END_JUDGES:
        raise ConfigError(f"Unknown turn-end judge {judge!r}: pick one of {', '.join(TURN_END_JUDGES)}.")
    if judge == "words" or config.end_of_turn != "adaptive" or not config.preemptive:
        return None
    import torch

    from salmonn_agent.agent.turn_end import TurnEndModel
    from salmonn_agent.model.precision import native_bfloat16
    from salmonn_agent.registry import mini_chat_llm

    path = mini_chat_llm(model)
    if path is None:
        raise ConfigError(
            "--turn-end model reads salmonn-mini's base chat LLM, and this brain is not built on it: "
            "use --turn-end words."
        )
    dtype = torch.bfloat16 if native_bfloat16() and str(getattr(model, "device", "cpu")) == "cpu" else torch.float32
    return TurnEndModel(path, dtype=dtype).unfinished


def add_assistant_command(
    subparsers: argparse._SubParsersAction,
    *,
    add_model_options: Callable[[argparse.ArgumentParser], None],
    load_model: Callable[[argparse.Namespace], Any],
) -> None:
    """Register ``assistant`` on the main CLI's subparsers.

    ``add_model_options`` adds the shared ``--model``/``--config``/``--device``/``--dtype``
    flags; ``load_model(args)`` loads the SALMONN model they name.
    """
    p = subparsers.add_parser(
        "assistant",
        help="run the voice assistant: it hears requests, answers and acts (through a safety policy)",
        description=(
            "Listen to the microphone (or replay a file), answer each spoken request with SALMONN, "
            "and run the actions it asks for when the policy allows them: --allow names the tools "
            "heard audio may trigger (none by default); the brain is offered those, and salmonn-mini "
            "also the five tools it learned, whose calls the policy refuses unless allowed; "
            "risky ones are confirmed on a terminal. "
            "One line per turn. Stop with Ctrl-C."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", type=Path, metavar="FILE", help="replay an audio file as if it were the microphone")
    src.add_argument("--mic", metavar="DEVICE", help="microphone: index or part of the name (see `devices`)")
    p.add_argument(
        "--realtime", action="store_true",
        help="with --input: pace the file like a live microphone (barge-in applies); otherwise every "
        "request is answered in turn, as fast as possible",
    )
    p.add_argument(
        "--allow", nargs="+", action="extend", default=[], metavar="TOOL",
        help="tools heard audio may trigger: add_note read_notes delete_notes set_timer list_timers "
        "cancel_timer change_timer send_webhook emit_event (default: none)",
    )
    p.add_argument("--notes", type=Path, metavar="PATH", help="the notes file (default: in the user data folder)")
    p.add_argument("--webhook", metavar="URL", help="offer send_webhook, which POSTs JSON to this http(s) URL")
    p.add_argument("--audit", type=Path, metavar="PATH", help="append every action request to this JSON Lines file")
    p.add_argument("--audit-redact", action="store_true",
                   help="keep the actions' outputs (notes read back...) out of the audit log")
    p.add_argument(
        "--barge-in", choices=("cancel", "queue"), default="cancel",
        help="new speech during an answer: cancel the answer (default) or queue the new request",
    )
    p.add_argument(
        "--watch", action="append", default=[], metavar="TARGET",
        help="sound watch: report when this is heard, e.g. 'an alarm' (repeatable)",
    )
    p.add_argument("--watch-action", metavar="TOOL", help="run this tool once per watched event (e.g. send_webhook)")
    p.add_argument("--watch-cooldown", type=float, default=10.0, metavar="SECONDS",
                   help="detections closer than this are one event (default 10)")
    p.add_argument("--max-turns", type=int, metavar="N", help="stop after N turns")
    p.add_argument("--max-tokens", type=int, default=64, metavar="N", help="longest answer in tokens (default 64)")
    p.add_argument("--memory-turns", type=int, metavar="N",
                   help="earlier turns the assistant remembers (default: 0 with salmonn-mini, 6 otherwise)")
    p.add_argument("--no-early-answers", dest="preemptive", action="store_false",
                   help="do not start answering at a pause in the speech (answers then start only "
                        "after the end-of-speech hangover)")
    p.add_argument("--end-of-turn", choices=["adaptive", "fixed"], default="adaptive",
                   help="adaptive (default): a request that sounds complete ends after 0.6 s of "
                        "silence, one that trails off ('set a timer for...') after 1.2 s; fixed: "
                        "every request after the front-end's hangover (0.6 s). Adaptive needs early answers")
    p.add_argument("--turn-end", choices=TURN_END_JUDGES, default="words",
                   help="what tells a request that trails off, for the adaptive end of turn: words "
                        "(default: its last word, 'for', 'and', 'the'...) or model (also salmonn-mini's "
                        "base LLM's end-of-turn probability; best with clean speech, see README)")
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per turn and per detection")
    speak = p.add_argument_group("speaking back")
    speak.add_argument(
        "--speak", action="store_true",
        help="say the answers aloud (offline TTS, sentence by sentence as they are written); the "
        "assistant's own voice is kept out of what it hears, and speaking over it interrupts it",
    )
    speak.add_argument("--speaker", metavar="DEVICE", help="with --speak: output device, index or part of the name")
    speak.add_argument("--speak-wav", type=Path, metavar="PATH",
                       help="write the spoken answers to this WAV file instead of a sound device (implies --speak)")
    speak.add_argument("--tts", choices=("auto", "hibari", "espeak-ng"), default="auto",
                       help="text-to-speech engine (default auto: hibari-tts, else espeak-ng)")
    add_model_options(p)
    p.set_defaults(handler=run_assistant, load_model=load_model)


def run_assistant(args: argparse.Namespace) -> int:
    """``salmonn-agent assistant``: build the assistant from the options and run it."""
    from salmonn_agent.agent.actions import TimerBoard
    from salmonn_agent.agent.audio_refs import WindowStore
    from salmonn_agent.agent.policy import ActionGate, ActionPolicy, AuditLog
    from salmonn_agent.agent.runtime import AgentConfig, VoiceAgent, memory_turns_for, offered_actions
    from salmonn_agent.agent.watch import SoundWatch, default_action_args
    from salmonn_agent.registry import profile_of, resolve_model_name
    from salmonn_agent.stream.listener import Listener
    from salmonn_agent.stream.sources import MicrophoneSource

    _check_numbers(args)
    source = _source(args)  # a bad --input fails here, before the model loads
    speaker = _speaker(args)  # so do no TTS engine and no output device
    emit = _printer(args.json)
    board = TimerBoard(on_fire=lambda timer: emit(_timer_line(timer), {"timer": timer.model_dump()}))
    try:
        actions = _actions(args, board, emit)
        names = [tool.name for tool in actions]
        _check_names(args, names)
        audit = AuditLog(args.audit, redact_results=args.audit_redact)
        confirm = _ask_on_terminal if sys.stdin.isatty() else None
        gate = ActionGate(ActionPolicy(allow=args.allow), audit, confirm=confirm)

        watch_action = None
        if args.watch_action:
            # Naming the watch action on the command line allows it, for the watch only.
            tool = next(t for t in actions if t.name == args.watch_action)
            default_action_args(tool)  # a tool the watch cannot fill fails before the model loads
            watch_action = (tool, ActionGate(ActionPolicy(allow=[tool.name]), audit, confirm=confirm))

        from salmonn_agent.chat_model import ChatSALMONN

        model = args.load_model(args)
        name = args.config or resolve_model_name(args.model)
        chat = ChatSALMONN(client=model, model=name, temperature=0, max_tokens=args.max_tokens)
        watch = None
        if args.watch:
            watch = SoundWatch(
                chat.bind(max_tokens=WATCH_MAX_TOKENS), args.watch, action=watch_action, cooldown_s=args.watch_cooldown,
                on_detect=lambda d: emit(_detection_line(d), d.model_dump(mode="json")),
            )
        config = AgentConfig(
            barge_in=args.barge_in,
            # A file replayed faster than real time gains nothing from early answers.
            preemptive=args.preemptive and (args.input is None or args.realtime),
            end_of_turn=args.end_of_turn,
            max_memory_turns=(memory_turns_for(profile_of(chat)) if args.memory_turns is None
                              else args.memory_turns),
        )
        agent = VoiceAgent(
            chat, actions=offered_actions(actions, args.allow, profile_of(chat)), gate=gate, store=WindowStore(),
            config=config, on_turn=lambda r: emit(format_turn(r), r.model_dump(mode="json")), watch=watch,
            speaker=speaker, turn_end=turn_end_judge(model, config, args.turn_end),
        )
        live = args.input is None or args.realtime
        if not live:  # a replay faster than real time: rate limits count the file's seconds
            gate.clock = agent.stream_seconds
        if speaker is not None and args.input is None:
            from salmonn_agent.agent.echo import EchoGate

            # Only the microphone hears the speaker; cancel mode stops the playback as soon as
            # the gate hears a person over it.
            source = EchoGate(source, speaker.reference, clock=speaker.clock,
                              on_barge_in=speaker.interrupt if args.barge_in == "cancel" else None)
        listener = Listener(source, agent.segmenter_config(), on_onset=agent.on_onset if live else None)
        try:
            listener.start()
            if speaker is not None:
                speaker.start()
            microphone = getattr(source, "source", source)
            if isinstance(microphone, MicrophoneSource):
                info = microphone.device_info
                print(f"Listening on {info.name if info else 'the default input'} (Ctrl-C to stop)...",
                      file=sys.stderr, flush=True)
            runner = agent.run if live else agent.process
            results = asyncio.run(runner(listener, max_turns=args.max_turns))
        except KeyboardInterrupt:
            _summary(agent.results, agent, args.audit, names)  # what happened before Ctrl-C
            return 130
        finally:
            listener.close()
        _summary(results, agent, args.audit, names)
    finally:
        board.close()
        if speaker is not None:
            speaker.close()
    return 0


def format_turn(result: TurnResult) -> str:
    """One line per turn: window, answer, actions and latencies."""
    w, m = result.window, result.metrics
    flags = [f for f, on in (("interrupted", result.interrupted), ("cancelled", result.cancelled),
                             ("re-run", result.retried)) if on]
    head = f"turn {result.turn} [{w.get('id')} {w.get('start', 0):.2f}-{w.get('end', 0):.2f} s]"
    if flags:
        head += f" ({', '.join(flags)})"
    said = f"error: {result.error}" if result.error else json.dumps(result.answer, ensure_ascii=False)
    acts = "; ".join(
        f"{a.tool} {'ran' if a.ok else 'failed' if a.allowed else 'denied'}"
        + (f": {_one_line(a.output)}" if a.ok and a.output else "" if a.ok else f" ({a.error or a.reason})")
        for a in result.actions
    ) or "none"
    ttft = f"{m.ttft_ms:.0f} ms" if m.ttft_ms is not None else "-"
    audio = f", first audio {m.first_audio_ms:.0f} ms" if m.first_audio_ms is not None else ""
    return (f"{head} {said} | actions: {acts} | eou {m.eou_delay_ms:.0f} ms, ttft {ttft}{audio}, "
            f"turn {m.turn_ms:.0f} ms")


# ---------------------------------------------------------------- helpers


def _one_line(text: str, limit: int = 200) -> str:
    """An action's output on one line of the turn's text record (the JSON record has all of it)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def check_assistant_numbers(args: argparse.Namespace) -> None:
    """Check the numbers every voice assistant takes (``assistant`` and ``serve --ui``):
    ``--max-tokens``, ``--memory-turns`` and ``--watch-cooldown``."""
    if args.max_tokens < 1:
        raise ConfigError(f"--max-tokens must be at least 1, got {args.max_tokens}.")
    if args.memory_turns is not None and args.memory_turns < 0:
        raise ConfigError(f"--memory-turns must be 0 or more, got {args.memory_turns}.")
    if args.watch_cooldown < 0:
        raise ConfigError(f"--watch-cooldown must be 0 or more seconds, got {args.watch_cooldown}.")


def _check_numbers(args: argparse.Namespace) -> None:
    if args.max_turns is not None and args.max_turns < 1:
        raise ConfigError(f"--max-turns must be at least 1, got {args.max_turns}.")
    check_assistant_numbers(args)
    if args.watch_action and not args.watch:
        raise ConfigError("--watch-action needs at least one --watch TARGET (what to listen for).")
    if args.realtime and args.input is None:
        raise ConfigError("--realtime paces a replayed file: use it with --input FILE.")


def _speaker(args: argparse.Namespace) -> Speaker | None:
    """The speaker ``--speak`` asks for (None without it); fails now when it cannot speak."""
    if args.speak_wav is not None:
        args.speak = True
    if not args.speak:
        if args.speaker is not None or args.tts != "auto":
            raise ConfigError("--speaker and --tts choose how answers are said: add --speak.")
        return None
    if args.speaker is not None and args.speak_wav is not None:
        raise ConfigError("--speaker plays on a device and --speak-wav writes a file: give one of them.")
    from salmonn_agent.agent.speech_out import Speaker, WavOutput, load_tts

    engine = load_tts(args.tts)
    if args.speak_wav is not None:
        output = WavOutput(args.speak_wav, engine.sample_rate)
    else:
        from salmonn_agent.agent.speech_out import DeviceOutput

        output = DeviceOutput(args.speaker, preferred_rate=engine.sample_rate)
    speaker = Speaker(engine, output=output)
    speaker.warm_up()  # the engine's first sentence is slow: pay it before the first answer
    return speaker


def _source(args: argparse.Namespace) -> Source:
    from salmonn_agent.stream.sources import FileSource, MicrophoneSource

    if args.input is None:
        microphone = MicrophoneSource(args.mic)
        microphone.check()  # no microphone (or a wrong --mic) is reported now, before the model loads
        return microphone
    source = FileSource(args.input, realtime=args.realtime)
    source.start()  # decodes the file: a missing or unreadable one is reported now
    return source


def _actions(args: argparse.Namespace, board: TimerBoard, emit: Callable[[str, dict[str, Any]], None]) -> list[BaseTool]:
    from salmonn_agent.agent.actions import ActionsConfig, build_actions, check_webhook_url

    given: dict[str, Any] = {}
    if args.notes is not None:
        given["notes_path"] = args.notes
    if args.webhook is not None:
        given["webhook_url"] = check_webhook_url(args.webhook)
    config = ActionsConfig(**given)

    def on_event(event: ActionEvent) -> None:
        emit(f"event {event.event}: {event.details}".rstrip(": "), {"event": event.model_dump(mode="json")})

    return build_actions(config, on_event=on_event, board=board)


def _check_names(args: argparse.Namespace, names: list[str]) -> None:
    for flag, wanted in (("--allow", args.allow), ("--watch-action", [args.watch_action] if args.watch_action else [])):
        unknown = [name for name in wanted if name not in names]
        if unknown:
            hint = " (send_webhook needs --webhook URL)" if "send_webhook" in unknown else ""
            raise ConfigError(
                f"{flag} names unknown tools {unknown}{hint}; the assistant's tools are: {', '.join(names)}."
            )


def _ask_on_terminal(request: ActionRequest) -> bool:
    """Confirm a risky action on the terminal (y/N); anything but yes refuses it."""
    args = json.dumps(request.args, ensure_ascii=False)
    where = (request.window or {}).get("id", "?")
    try:
        reply = input(f"Heard in {where}: run {request.tool}({args})? [y/N] ")
    except EOFError:
        return False
    return reply.strip().lower() in ("y", "yes")


def _printer(as_json: bool) -> Callable[[str, dict[str, Any]], None]:
    def emit(line: str, record: dict[str, Any]) -> None:
        print(json.dumps(record, ensure_ascii=False) if as_json else line, flush=True)

    return emit


def _timer_line(timer: TimerInfo) -> str:
    return f"timer {timer.id} '{timer.label}' rang ({timer.seconds:g} s)"


def _detection_line(d: Detection) -> str:
    w = d.window
    line = f"heard {d.target} [{w.get('id')} {w.get('start', 0):.2f}-{w.get('end', 0):.2f} s]"
    if d.action is not None:
        a = d.action
        line += f" | {a.tool} {'ran' if a.ok else 'failed' if a.allowed else 'denied'}"
        if not a.ok:
            line += f" ({a.error or a.reason})"
    return line


def _summary(results: list[TurnResult], agent: VoiceAgent, audit: Path | None, tools: list[str]) -> None:
    outcomes = [a for r in results for a in r.actions]
    wanted = sorted({a.tool for a in outcomes if a.code in ("unknown_tool", "not_allowed") and a.tool in tools})
    if wanted:  # the brain asked for tools the assistant has but --allow did not name
        print(f"The assistant asked for {', '.join(wanted)}, which --allow did not name: add "
              f"--allow {' '.join(wanted)} to let what it hears run them.", file=sys.stderr)
    allowed = sum(a.allowed for a in outcomes)
    events = sum(d.new_event for d in agent.detections)
    text = (f"{len(results)} turns; {len(outcomes)} actions ({allowed} allowed, {len(outcomes) - allowed} "
            f"denied); {events} watched events")
    if audit is not None and audit.is_file():
        text += f"; audit log: {audit}"
    elif audit is not None:
        text += f"; no audit log written ({audit}: no action was requested)"
    print(text + ".", file=sys.stderr)
