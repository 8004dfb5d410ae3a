"""CLI commands of the front-end: ``devices``, ``segment`` and ``listen``.

The main CLI (``salmonn_agent/cli.py``) calls :func:`add_stream_commands` on its subparsers;
each command sets ``handler(args) -> int``. User errors are raised as
:class:`~salmonn_agent.errors.SalmonnError` subclasses, which the main CLI prints as one line.

``listen --ask INSTRUCTION`` answers each window with a model; the main CLI passes the
function that does it (``answer_windows``) to :func:`add_stream_commands`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from salmonn_agent.errors import format_validation_error
from salmonn_agent.stream.config import SegmenterConfig
from salmonn_agent.stream.errors import FrontendError
from salmonn_agent.stream.listener import Listener
from salmonn_agent.stream.sources import (
    FileSource,
    MicrophoneSource,
    Source,
    list_input_devices,
)
from salmonn_agent.stream.windows import AudioWindow

Answerer = Callable[[Iterable[AudioWindow], str, argparse.Namespace], Iterator[tuple[AudioWindow, str]]]


def add_stream_commands(
    subparsers: argparse._SubParsersAction,
    *,
    answer_windows: Answerer | None = None,
    add_model_options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Register ``devices``, ``segment`` and ``listen`` on the main CLI's subparsers.

    The front-end knows nothing of models: the caller passes ``answer_windows`` (which yields
    ``(window, answer)`` for ``listen --ask``) and ``add_model_options`` (its model flags).
    """
    p = subparsers.add_parser("devices", help="list audio input devices (microphones)")
    p.add_argument("--json", action="store_true", help="one JSON object per device")
    p.set_defaults(handler=run_devices)

    p = subparsers.add_parser(
        "segment",
        help="cut an audio file into speech / sound windows",
        description="Print one line per window (start, end, kind, ...); JSON Lines with --json.",
    )
    p.add_argument("file", type=Path, help="audio file (WAV, FLAC, OGG, MP3, ...)")
    _add_output_options(p)
    _add_segmenter_options(p)
    p.set_defaults(handler=run_segment)

    p = subparsers.add_parser(
        "listen",
        help="listen to the microphone (or a file) and print windows as they come",
        description=(
            "Listen continuously and print each speech / sound window as soon as it ends. "
            "With --ask, a model answers each window. Stop with Ctrl-C."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", type=Path, metavar="FILE", help="replay a file instead of the microphone")
    src.add_argument("--mic", "--device", dest="device", metavar="MIC",
                     help="microphone: index or part of the name (see `devices`; --device is its old name)")
    p.add_argument("--fast", action="store_true", help="with --input: as fast as possible, not real time")
    p.add_argument("--ask", metavar="INSTRUCTION", help="have the model answer each window")
    _add_output_options(p)
    _add_segmenter_options(p)
    if add_model_options is not None:
        add_model_options(p)
    p.set_defaults(handler=run_listen, answer_windows=answer_windows)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per window")
    p.add_argument("--save-dir", type=Path, metavar="DIR", help="also save each window as a WAV file")


def _add_segmenter_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("segmenter (defaults: see SegmenterConfig)")
    g.add_argument("--vad-mode", type=int, choices=range(4), help="webrtcvad aggressiveness (2)")
    g.add_argument("--frame-ms", type=int, choices=(10, 20, 30), help="VAD frame length (30)")
    g.add_argument("--pre-roll-ms", type=int, help="audio kept before the onset (400)")
    g.add_argument("--hangover-ms", type=int, help="silence that ends speech (600)")
    g.add_argument("--min-speech-ms", type=int, help="shorter speech becomes sound (200)")
    g.add_argument("--max-window-s", type=float, help="longest window, longer is split (30)")
    g.add_argument("--min-level-db", type=float, help="volume gate in dBFS (-50)")
    g.add_argument("--confirm", dest="confirm_with", choices=("yamnet", "spectral", "silero", "none"),
                   help="second stage for speech (yamnet: the AudioSet tagger, also labels sound "
                        "windows; spectral: built in; silero needs silero-vad; none: webrtcvad only)")
    g.add_argument("--sound-hangover-ms", type=int, help="quiet that ends a sound event (800)")
    g.add_argument("--highpass-hz", type=float, help="high-pass cutoff before the VAD (100)")
    g.add_argument("--labels", dest="sound_labels", type=int, metavar="K",
                   help="top AudioSet labels per window (3 with --confirm yamnet, else 0)")
    g.add_argument("--no-sound", dest="sound_events", action="store_false", default=None,
                   help="no `sound` windows for non-speech events")
    g.add_argument("--periodic", dest="periodic_every_s", type=float, metavar="SECONDS",
                   help="also emit a `periodic` window this often")
    g.add_argument("--periodic-length", dest="periodic_length_s", type=float, metavar="SECONDS",
                   help="length of periodic windows (10)")


_CONFIG_ARGS = (
    "vad_mode", "frame_ms", "pre_roll_ms", "hangover_ms", "min_speech_ms", "max_window_s",
    "min_level_db", "confirm_with", "sound_events", "periodic_every_s", "periodic_length_s",
    "sound_hangover_ms", "highpass_hz", "sound_labels",
)


def config_from_args(args: argparse.Namespace) -> SegmenterConfig:
    """The SegmenterConfig the options ask for (unset options keep their defaults)."""
    given = {k: getattr(args, k) for k in _CONFIG_ARGS if getattr(args, k, None) is not None}
    try:
        return SegmenterConfig(**given)
    except ValidationError as err:
        problems = format_validation_error(err, unnamed=None, bare=True)
        raise FrontendError(f"Invalid segmenter options: {problems}.") from None


def run_devices(args: argparse.Namespace) -> int:
    """``salmonn-agent devices``: print the input devices."""
    devices = list_input_devices()
    if not devices:
        print("No audio input device found.", file=sys.stderr)
        return 1
    for d in devices:
        if args.json:
            print(d.model_dump_json())
        else:
            mark = "*" if d.is_default else " "
            print(f"{mark}{d.index:3d}  {d.name}  ({d.channels} ch, {d.default_samplerate:.0f} Hz, {d.hostapi})")
    return 0


def run_segment(args: argparse.Namespace) -> int:
    """``salmonn-agent segment FILE``: print (and save) every window of the file."""
    config = config_from_args(args)
    save_dir = _save_dir(args.save_dir)
    with Listener(FileSource(args.file), config) as listener:
        for window in listener:
            _print_window(window, args.json, _save(window, save_dir))
        _summary(listener)
    return 0


def run_listen(args: argparse.Namespace) -> int:
    """``salmonn-agent listen``: print windows as they come; answer them with ``--ask``."""
    config = config_from_args(args)
    save_dir = _save_dir(args.save_dir)
    answer = _answerer(args) if args.ask else None
    source: Source
    if args.input is not None:
        source = FileSource(args.input, realtime=not args.fast)
    else:
        source = MicrophoneSource(args.device)
        source.check()  # a missing microphone fails now, before --ask loads a model
    listener = Listener(source, config)
    # With --ask the model loads here, before the microphone opens; the front-end then runs in
    # its own thread (Listener.threaded_windows), so that answering never stops the capture.
    answered = answer(listener.threaded_windows(), args.ask, args) if answer is not None else None
    reported = 0
    try:
        listener.start()
        if not args.json and args.input is None and isinstance(source, MicrophoneSource):
            info = source.device_info
            print(f"Listening on {info.name if info else 'the default input'} (Ctrl-C to stop)...",
                  file=sys.stderr, flush=True)
        results = ((w, None) for w in listener) if answered is None else answered
        for window, text in results:
            _print_window(window, args.json, _save(window, save_dir), answer=text)
            reported = _report_drops(source, reported)
    except KeyboardInterrupt:
        return 130
    finally:
        listener.close()
        if source.overflows:
            print(f"warning: {source.overflows} audio blocks dropped in all (the consumer was too slow).",
                  file=sys.stderr)
    return 0


def _report_drops(source: Source, reported: int) -> int:
    """Say when the source dropped audio blocks since the last report; returns the new count."""
    if source.overflows > reported:
        print(f"warning: {source.overflows - reported} audio blocks dropped just now (the consumer was too slow).",
              file=sys.stderr, flush=True)
    return source.overflows


def _answerer(args: argparse.Namespace) -> Answerer:
    answer_windows = getattr(args, "answer_windows", None)
    if answer_windows is None:
        raise FrontendError(
            "answering windows needs a model, and this command was built without one; "
            "leave out --ask to only print the windows."
        )
    return answer_windows


def _save_dir(path: Path | None) -> Path | None:
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FrontendError(f"Cannot create --save-dir {str(path)!r}: {err}.") from None
    return path


def _save(window: AudioWindow, save_dir: Path | None) -> Path | None:
    if save_dir is None:
        return None
    name = f"{window.index:04d}_{window.kind}_{window.start:08.2f}-{window.end:08.2f}.wav"
    return window.save_wav(save_dir / name)


def _print_window(window: AudioWindow, as_json: bool, path: Path | None, answer: str | None = None) -> None:
    if as_json:
        record: dict[str, Any] = window.to_dict()
        if path is not None:
            record["file"] = str(path)
        if answer is not None:
            record["answer"] = answer
        print(json.dumps(record), flush=True)
        return
    m = window.metrics
    line = (
        f"#{window.index:<3d} {window.kind:8s} {window.start:8.2f} - {window.end:8.2f} s  "
        f"(event {window.event_start:.2f}-{window.event_end:.2f}, {m.reason}, "
        f"voiced {m.voiced_ratio:.2f}, {m.level_db:.1f} dBFS)"
    )
    if path is not None:
        line += f"  -> {path}"
    print(line, flush=True)
    if answer is not None:
        print(f"     {answer}", flush=True)


def _summary(listener: Listener) -> None:
    s = listener.stats
    kinds = ", ".join(f"{n} {k}" for k, n in s.windows.items() if n)
    print(f"{sum(s.windows.values())} windows ({kinds or 'none'}) in {s.seconds_in:.1f} s of audio; "
          f"{s.seconds_dropped:.1f} s outside windows.", file=sys.stderr)
