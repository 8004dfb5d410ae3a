"""``salmonn-agent serve``: the OpenAI-compatible server on one loaded model."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salmonn_agent.agent.commands import TURN_END_JUDGES
from salmonn_agent.server.settings import API_KEY_ENV, ServerSettings, check_exposure

if TYPE_CHECKING:
    from salmonn_agent.server.live import LiveOptions


def add_serve_command(
    commands: argparse._SubParsersAction,
    add_model_options: Callable[[argparse.ArgumentParser], None],
    load_model: Callable[[argparse.Namespace], Any],
) -> None:
    """Register ``serve`` (model options shared with the other commands)."""
    serve = commands.add_parser("serve", help="serve the model over OpenAI's chat-completions API (HTTP)")
    add_model_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--api-key", help=f"require this Bearer key (default ${API_KEY_ENV})")
    serve.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback --host without an API key")
    serve.add_argument("--max-body-mb", type=float, default=25.0, help="largest request body in MB (default 25)")
    serve.add_argument("--max-in-flight", type=int, default=32,
                       help="requests running or queued at once; more get 503 (default 32)")
    serve.add_argument("--max-batch-size", type=int, default=16,
                       help="most requests decoded together (default 16: a server has many clients)")
    limits = serve.add_argument_group("live sessions (--ui)")
    limits.add_argument("--max-sessions", type=int, default=4, help="live sessions (browser tabs) at once (default 4)")
    limits.add_argument("--max-frame-bytes", type=int, default=32_000,
                        help="largest audio frame of a live session in bytes (default 32000: 1 s)")
    limits.add_argument("--max-frames-per-s", type=int, default=50,
                        help="most audio frames a live session sends in a second (default 50)")
    limits.add_argument("--max-session-audio-s", type=float, default=3600.0,
                        help="most audio one live session may stream, in seconds (default 3600)")
    ui = serve.add_argument_group("voice assistant in the browser")
    ui.add_argument("--ui", action="store_true",
                    help="serve the browser page at / and live sessions at /v1/live: the voice assistant "
                    "on the browser's microphone")
    ui.add_argument("--allow", nargs="+", action="extend", default=[], metavar="TOOL",
                    help="tools heard audio may trigger: add_note read_notes delete_notes set_timer list_timers "
                    "cancel_timer change_timer send_webhook emit_event (default: none)")
    ui.add_argument("--notes", type=Path, metavar="PATH", help="the notes file (default: in the user data folder)")
    ui.add_argument("--webhook", metavar="URL", help="offer send_webhook, which POSTs JSON to this http(s) URL")
    ui.add_argument("--audit", type=Path, metavar="PATH", help="append every action request to this JSON Lines file")
    ui.add_argument("--audit-redact", action="store_true",
                    help="keep the actions' outputs (notes read back...) out of the audit log")
    ui.add_argument("--barge-in", choices=("cancel", "queue"), default="cancel",
                    help="new speech during an answer: cancel it (default) or queue the new request")
    ui.add_argument("--end-of-turn", choices=("adaptive", "fixed"), default="adaptive",
                    help="adaptive (default): a request that sounds complete ends after 0.6 s of silence, "
                         "one that trails off after 1.2 s; fixed: every request after 0.6 s")
    ui.add_argument("--turn-end", choices=TURN_END_JUDGES, default="words",
                    help="what tells a request that trails off, for the adaptive end of turn: words (default: "
                         "its last word) or model (also salmonn-mini's base LLM, as `assistant --turn-end model`)")
    ui.add_argument("--max-tokens", type=int, default=64, metavar="N", help="longest answer in tokens (default 64)")
    ui.add_argument("--memory-turns", type=int, metavar="N",
                    help="earlier turns each session remembers (default: 0 with salmonn-mini, 6 otherwise)")
    ui.add_argument("--watch-cooldown", type=float, default=10.0, metavar="SECONDS",
                    help="sound-watch detections closer than this are one event (default 10)")
    serve.set_defaults(handler=lambda args: _serve(args, load_model))


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """The server settings the options give (the key from ``--api-key`` or the environment)."""
    from pydantic import ValidationError

    from salmonn_agent.errors import ConfigError, format_validation_error

    try:
        return ServerSettings(
            host=args.host, port=args.port, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            insecure=args.insecure, max_body_bytes=int(args.max_body_mb * 1e6), max_in_flight=args.max_in_flight,
            max_sessions=args.max_sessions, max_frame_bytes=args.max_frame_bytes,
            max_frames_per_s=args.max_frames_per_s, max_session_audio_s=args.max_session_audio_s,
        )
    except ValidationError as err:
        raise ConfigError(f"serve options: {format_validation_error(err)}") from None


def live_options_from_args(args: argparse.Namespace) -> LiveOptions | None:
    """The live sessions' assistant options (None without ``--ui``); bad ones fail before the model loads."""
    from salmonn_agent.agent.actions import build_actions, check_webhook_url
    from salmonn_agent.agent.commands import check_assistant_numbers
    from salmonn_agent.errors import ConfigError
    from salmonn_agent.server.live import LiveOptions

    if not args.ui:
        given = [flag for flag, on in (("--allow", args.allow), ("--notes", args.notes), ("--webhook", args.webhook),
                                       ("--audit", args.audit)) if on]
        if given:
            raise ConfigError(f"{', '.join(given)} configure the browser's voice assistant: add --ui.")
        return None
    check_assistant_numbers(args)
    options = LiveOptions(
        allow=list(args.allow), notes_path=args.notes,
        webhook_url=check_webhook_url(args.webhook) if args.webhook else None,
        audit_path=args.audit, audit_redact=args.audit_redact, max_tokens=args.max_tokens,
        memory_turns=args.memory_turns, barge_in=args.barge_in, watch_cooldown_s=args.watch_cooldown,
        end_of_turn=args.end_of_turn,
    )
    names = [tool.name for tool in build_actions(options.actions_config())]
    unknown = [name for name in options.allow if name not in names]
    if unknown:
        hint = " (send_webhook needs --webhook URL)" if "send_webhook" in unknown else ""
        raise ConfigError(f"--allow names unknown tools {unknown}{hint}; the assistant's tools are: {', '.join(names)}.")
    return options


def _serve(args: argparse.Namespace, load_model: Callable[[argparse.Namespace], Any]) -> int:
    import uvicorn

    from salmonn_agent.agent.commands import turn_end_judge
    from salmonn_agent.agent.runtime import AgentConfig
    from salmonn_agent.chat_model import ChatSALMONN
    from salmonn_agent.registry import resolve_model_name
    from salmonn_agent.server.app import create_app

    settings = settings_from_args(args)
    check_exposure(settings)
    live = live_options_from_args(args)
    if args.max_batch_size < 1:
        from salmonn_agent.errors import ConfigError

        raise ConfigError("--max-batch-size must be 1 or more")
    name = os.path.basename(os.path.normpath(args.config or resolve_model_name(args.model)))

    def load() -> ChatSALMONN:
        model = load_model(args)
        if live is not None:  # the judge reads the loaded model's base LLM; shared by the sessions
            live.turn_end = turn_end_judge(model, AgentConfig(end_of_turn=live.end_of_turn), args.turn_end)
        return ChatSALMONN(client=model, model=name, max_batch_size=args.max_batch_size,
                           local_audio=False, allow_remote_audio=False)

    app = create_app(settings, load, live)
    page = f"; the voice assistant's page at http://{settings.host}:{settings.port}/" if live else ""
    print(f"salmonn-agent: serving {name} at http://{settings.host}:{settings.port}/v1{page} "
          "(loading the model; GET /health says when it is ready)", file=sys.stderr)
    # A live clip question comes as one WebSocket message: allow it the body limit (base64: 4/3).
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                ws_max_size=settings.max_body_bytes * 4 // 3 + 65_536)
    return 0
