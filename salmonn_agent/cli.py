"""The ``salmonn-agent`` command.

Answers go to stdout, logs to stderr. A user error (bad audio, missing model, bad option) is
one line on stderr and exit status 2, never a traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from salmonn_agent.agent.commands import add_assistant_command
from salmonn_agent.errors import SalmonnError
from salmonn_agent.registry import MODEL_ENV
from salmonn_agent.server.commands import add_serve_command
from salmonn_agent.server.settings import API_KEY_ENV, SERVER_ENV
from salmonn_agent.stream.commands import add_stream_commands
from salmonn_agent.training.commands import add_training_commands

logger = logging.getLogger("salmonn_agent")



def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="salmonn-agent", description="Ears for conversational agents: ask SALMONN about audio."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ask = commands.add_parser("ask", help="answer an instruction about an audio file")
    ask.add_argument("audio", help="audio file (WAV, FLAC, OGG, MP3; any rate, mono or stereo)")
    ask.add_argument("instruction", help='what to do, e.g. "Please describe the audio."')
    add_model_options(ask)
    ask.add_argument("--num-beams", type=int, help="beam search width (official default 4)")
    ask.add_argument("--max-new-tokens", type=int, help="answer length limit (official default 200)")
    ask.add_argument("--do-sample", action="store_true", default=None, help="sample instead of searching")
    ask.add_argument("--temperature", type=float, help="sampling temperature")
    ask.add_argument("--top-p", type=float, help="nucleus sampling mass")
    ask.add_argument("--repetition-penalty", type=float, help="repetition penalty (1.0 = none)")
    ask.add_argument(
        "--lora-scale", type=float,
        help="LoRA scaling for this answer (official 4.0; ~2.0 wakes cross-modal reasoning)",
    )
    ask.add_argument("--stream", action="store_true", help="print the answer while it is generated (greedy/sampling)")
    ask.add_argument("--server", help=f"ask a running `salmonn-agent serve` at this URL instead of loading a model "
                                      f"(default ${SERVER_ENV})")
    ask.add_argument("--api-key", help=f"the server's key (default ${API_KEY_ENV})")
    ask.set_defaults(handler=_ask)

    add_training_commands(commands)
    add_stream_commands(
        commands,
        answer_windows=answer_windows,
        add_model_options=lambda p: add_model_options(p, device_flag="--model-device"),
    )
    add_assistant_command(commands, add_model_options=add_model_options, load_model=load_model_from_args)
    add_serve_command(commands, add_model_options=add_model_options, load_model=load_model_from_args)
    return parser


def add_model_options(parser: argparse.ArgumentParser, device_flag: str = "--device") -> None:
    """The options every model-using command shares: which model, where, in what precision.

    The model's device is ``--model-device`` in every command, and also ``--device`` except in
    ``listen``, where ``--device`` is the old name of ``--mic`` (the microphone).
    """
    group = parser.add_argument_group("model")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--model", help=f"model directory in salmonn-agent format (or ${MODEL_ENV})")
    source.add_argument(
        "--config", help="official SALMONN decode_config.yaml (whisper_path, beats_path, llama_path, ckpt)"
    )
    flags = ["--model-device"] if device_flag == "--model-device" else [device_flag, "--model-device"]
    group.add_argument(
        *flags, dest="model_device", default="auto",
        help="where the model runs: cpu, cuda, cuda:N, mps or auto (default)",
    )
    group.add_argument("--dtype", default="auto",
                       help="auto (default: on a CPU bfloat16-weights where it has native bfloat16 "
                            "arithmetic, AVX512-BF16 or AMX, else float16-weights; float32 elsewhere), float32, "
                            "float16-weights (CPU: float32 compute, the LLM's linear weights stored in "
                            "float16; decoding up to about 2x faster), bfloat16-weights (CPU: the LLM's "
                            "linear products in bfloat16; prefill about 2x faster on such CPUs, slow on "
                            "others), bfloat16, float16, or int8 (CPU: the "
                            "LLM's linear layers in 8 bits; faster decoding, at a cost in accuracy that "
                            "depends on the model)")
    group.add_argument("--compile", default="auto", metavar="{auto,on,off}",
                       help="compiled decoding (a static key/value cache and torch.compile, CUDA graphs "
                            "on a GPU): auto (default: on CUDA, for one answer at a time without beams, in "
                            "commands that answer more than once; `ask` answers once and decodes eagerly), "
                            "on (also on a CPU; slow to warm up) or off")
    group.add_argument("--quantize", choices=["int8", "int4"], default=None,
                       help="the LLM's weights in 8 or 4 bits (bitsandbytes; for big checkpoints on "
                            "GPUs with less memory, also runs on a CPU); LoRA stays at each answer's "
                            "scale. Not with --dtype int8, float16-weights or bfloat16-weights")


def load_model_from_args(args: argparse.Namespace, *, answers_once: bool = False):  # noqa: ANN201 - returns SALMONN, imported lazily
    """Load the model the options name: ``--config``, else ``--model``, else
    ``$SALMONN_AGENT_MODEL``, else the embedded default model (salmonn-mini).

    ``answers_once``: the command answers one request and exits, so ``--compile auto`` decodes
    eagerly (a compile warm-up of tens of seconds would never pay off); so does a ``--quantize``d
    model."""
    from salmonn_agent.model.compiled import check_compile_mode
    from salmonn_agent.model.salmonn import SALMONN
    from salmonn_agent.registry import load_model

    compile_mode = check_compile_mode(getattr(args, "compile", "auto"))  # before minutes of loading
    if compile_mode == "auto" and (answers_once or args.quantize):
        compile_mode = "off"  # untried with bitsandbytes' layers; `on` still asks for it
    if args.config:
        from salmonn_agent.model.threads import one_thread

        with one_thread(args.model_device):
            model = SALMONN.from_official(args.config, device=args.model_device, dtype=args.dtype,
                                          quantize=args.quantize)
    else:
        model = load_model(args.model, device=args.model_device, dtype=args.dtype, quantize=args.quantize)
    model.set_compile(compile_mode)
    return model


def answer_windows(windows: Iterable[Any], instruction: str, args: argparse.Namespace) -> Iterator[tuple[Any, str]]:
    """Answer ``instruction`` about each front-end window as it comes (``listen --ask``).

    The model loads when this is called, before any window is read (so before the microphone
    opens); the answers come as the returned iterator is read."""
    model = load_model_from_args(args)

    def answers() -> Iterator[tuple[Any, str]]:
        for window in windows:
            yield window, model.generate(window.samples, instruction, sample_rate=window.sample_rate)[0]

    return answers()


def _ask(args: argparse.Namespace) -> int:
    server = args.server or os.environ.get(SERVER_ENV)
    if server:
        return _ask_server(args, server)
    from salmonn_agent.audio import SAMPLE_RATE, load_audio

    audio = load_audio(args.audio)  # a missing or broken file fails now, not after loading the model
    model = load_model_from_args(args, answers_once=True)
    options = {
        "num_beams": args.num_beams,
        "max_new_tokens": args.max_new_tokens,
        "do_sample": args.do_sample,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "repetition_penalty": args.repetition_penalty,
        "lora_scale": args.lora_scale,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if args.stream:
        for piece in model.stream(audio, args.instruction, sample_rate=SAMPLE_RATE, **options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    else:
        print(model.generate(audio, args.instruction, sample_rate=SAMPLE_RATE, **options)[0])
    return 0


def _ask_server(args: argparse.Namespace, server: str) -> int:
    """``ask --server``: the question goes to a running server; nothing heavy is imported."""
    from salmonn_agent.errors import ConfigError
    from salmonn_agent.server import client

    if args.model or args.config:
        raise ConfigError("--server asks the server's model; leave out --model/--config (or --server).")
    temperature = args.temperature if args.temperature is not None else (1.0 if args.do_sample else None)
    options = {"num_beams": args.num_beams, "max_tokens": args.max_new_tokens, "temperature": temperature,
               "top_p": args.top_p, "repetition_penalty": args.repetition_penalty, "lora_scale": args.lora_scale}
    body = client.chat_request(args.audio, args.instruction, options, stream=args.stream)
    api_key = args.api_key or os.environ.get(API_KEY_ENV)
    for piece in client.ask(server, body, api_key):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _quiet_libraries(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        # Environment defaults rather than an import: transformers takes seconds to import, and
        # commands that never load a model (ask --server) must not pay for it.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if "transformers" in sys.modules:  # already imported: its settings were read at import
            transformers = sys.modules["transformers"]
            transformers.utils.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 1 unexpected failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _quiet_libraries(args.debug)
        return int(args.handler(args) or 0)
    except SalmonnError as err:
        if args.debug:
            raise
        print(f"salmonn-agent: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("salmonn-agent: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI promises one line, not a traceback
        if args.debug:
            raise
        print(
            f"salmonn-agent: unexpected error: {type(err).__name__}: {err} (rerun with --debug "
            "for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
