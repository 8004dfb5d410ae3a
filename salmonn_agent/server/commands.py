"""``salmonn-agent serve``: the OpenAI-compatible server on one loaded model."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from salmonn_agent.server.settings import API_KEY_ENV, ServerSettings, check_exposure


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
    serve.set_defaults(handler=lambda args: _serve(args, load_model))


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """The server settings the options give (the key from ``--api-key`` or the environment)."""
    from pydantic import ValidationError

    from salmonn_agent.errors import ConfigError, format_validation_error

    try:
        return ServerSettings(
            host=args.host, port=args.port, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            insecure=args.insecure, max_body_bytes=int(args.max_body_mb * 1e6), max_in_flight=args.max_in_flight,
        )
    except ValidationError as err:
        raise ConfigError(f"serve options: {format_validation_error(err)}") from None


def _serve(args: argparse.Namespace, load_model: Callable[[argparse.Namespace], Any]) -> int:
    import uvicorn

    from salmonn_agent.chat_model import ChatSALMONN
    from salmonn_agent.registry import resolve_model_name
    from salmonn_agent.server.app import create_app

    settings = settings_from_args(args)
    check_exposure(settings)
    if args.max_batch_size < 1:
        from salmonn_agent.errors import ConfigError

        raise ConfigError("--max-batch-size must be 1 or more")
    name = os.path.basename(os.path.normpath(args.config or resolve_model_name(args.model)))

    def load() -> ChatSALMONN:
        return ChatSALMONN(client=load_model(args), model=name, max_batch_size=args.max_batch_size,
                           local_audio=False, allow_remote_audio=False)

    app = create_app(settings, load)
    print(f"salmonn-agent: serving {name} at http://{settings.host}:{settings.port}/v1 "
          "(loading the model; GET /health says when it is ready)", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0
