"""Benchmark the voice assistant on a replayed spoken conversation: latency and right actions.

Makes a conversation of ``--requests`` held-out spoken requests from
:mod:`devkit.assistant_bank` (commands for set_timer, add_note, list_timers and
read_notes, plus ``--questions`` spoken questions), each said by a held-out espeak-ng voice
and followed by 1.2 s of silence, as one 16 kHz WAV. The voice assistant then hears it exactly
as ``salmonn-agent assistant --input FILE --allow add_note read_notes set_timer list_timers
cancel_timer`` would (same actions, policy, model settings; a Listener on a FileSource), in
this process, with its notes in a temporary file; ``--allow`` names fewer tools, as a user of the
command may. Everything is deterministic in ``--seed``.

Without ``--realtime`` the file is replayed as fast as possible and every request is answered
in turn (the command's path): ``eou_delay_ms`` is the front-end's delay in stream time (end of
the speech to the window) and ``ttft_ms``/``turn_ms`` are wall times from the window reaching
the assistant. ``--realtime`` paces the file like a microphone (barge-in applies).

Prints one JSON object:

* ``eou_to_first_token_ms``: median over turns of the end of speech → the first token,
  ``eou_delay_ms - head_start_ms + ttft_ms`` (see
  :class:`~salmonn_agent.agent.runtime.TurnMetrics`: an answer started at a pause counts from
  the pause window, and is handed out no earlier than its speech window);
* ``eou_to_action_ms``: the same for the first action of the turns that ran one;
* ``turn_ms``, ``ttft_ms``, ``eou_delay_ms``, ``head_start_ms``: medians over turns;
  ``preempted_turns``: turns answered from the pause before them;
* ``actions_correct``: fraction of the spoken commands whose turn called exactly the expected
  tool with the expected arguments (numbers equal; a note's text within a word error rate of
  0.25 after normalising case and punctuation; strings equal after that normalisation; an
  argument left out counts as its default, e.g. a timer's label "timer"; a timer's hours, minutes
  and seconds are added up, so any units that make the expected duration are right);
* ``tools_correct``: fraction of the spoken commands whose turn called exactly the expected
  tool, whatever its arguments (a call the gate refused counts: with ``--allow`` naming fewer
  tools, asking for the right tool that is not allowed is the right call);
* ``wrong_actions_run``: fraction of the spoken commands whose turn ran (the gate allowed) a
  tool other than the expected one, e.g. a note saved for a timer request;
* ``questions_answered`` (answered in words, no tool called) and ``questions_correct`` (the
  answer contains the expected words), as fractions of the questions; ``false_actions``: the
  fraction of the questions whose turns called an action tool; ``false_actions_run``: of those
  whose call ran (the gate did not refuse it, e.g. as a note nobody said);
* ``false_cutoffs``: the fraction of the requests where a turn ended while the speaker was
  mid-request (the request's speech is split over more than one turn). ``--hesitations N`` says N of the commands in two parts with a
  pause between them (a speaker thinking mid-request; ``--hesitation-s``, default
  :data:`HESITATION_S`), as a test of it; ``long_waits``: turns that ended only after the
  adaptive end of turn's longer wait (their request sounded unfinished at the shorter one);
* with ``--speak`` (answers said by the command's TTS engine into a sound-device stand-in
  paced in real time: :class:`~salmonn_agent.agent.speech_out.NullOutput`):
  ``eou_to_first_audio_ms``, the median over spoken turns of ``eou_delay_ms +
  first_audio_ms`` (end of the request's speech to the answer's first audio handed to the
  device), ``first_audio_ms``, ``spoken_turns`` and ``tts``; ``turn_ms`` then includes saying
  the answer;
* ``turns``, ``requests``, ``commands``, ``questions``, ``unmatched_turns`` (windows that
  overlap no request), ``model``, ``device``, ``threads``...;
  with ``--details``, ``details``: per request its text, what was expected and what was got.

Windows are matched to requests by time (the request whose speech overlaps the window most).

``--bank other`` replaces the held-out sentences by hand-written requests in wording the training
never used, said by voices no training used (:mod:`devkit.other_requests`): 30 commands and 10
questions or pieces of chit-chat, without hesitations by default. A piece of chit-chat has no
expected answer: it counts in ``false_actions`` and ``questions_answered``, not in
``questions_correct``.

Usage: python tools/bench_agent.py --json [--model DIR] [--bank heldout|other] [--allow TOOL...] [--requests 12] [--questions 2]
       [--hesitations 2] [--hesitation-s 0.3] [--end-of-turn adaptive|fixed] [--turn-end words|model]
       [--no-early-answers]
       [--seed 0] [--realtime] [--speak] [--details]
       [--threads 2] [--save-wav conversation.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # devkit/ sits at the repository root, outside the package
    sys.path.insert(0, str(ROOT))

from devkit import sounds as S  # noqa: E402
from devkit.assistant_bank import ASSISTANT_TOOLS, Request, sample_requests  # noqa: E402
from devkit.other_requests import OTHER_REQUESTS, OTHER_VOICES  # noqa: E402
from devkit.scenes import SceneBuilder  # noqa: E402
from devkit.voices import speak_with  # noqa: E402
from salmonn_agent.agent import (  # noqa: E402
    ActionGate,
    ActionPolicy,
    ActionsConfig,
    AuditLog,
    AuditRecord,
    TimerBoard,
    build_actions,
)
from salmonn_agent.agent.actions import duration_seconds  # noqa: E402
from salmonn_agent.agent.audio_refs import WindowStore  # noqa: E402
from salmonn_agent.agent.commands import TURN_END_JUDGES, turn_end_judge  # noqa: E402
from salmonn_agent.agent.runtime import (  # noqa: E402
    AgentConfig,
    TurnResult,
    VoiceAgent,
    memory_turns_for,
    offered_actions,
)
from salmonn_agent.audio import SAMPLE_RATE  # noqa: E402
from salmonn_agent.errors import ConfigError, SalmonnError  # noqa: E402
from salmonn_agent.model.half_weights import weight_format  # noqa: E402
from salmonn_agent.registry import profile_of  # noqa: E402
from salmonn_agent.stream import FileSource, Listener  # noqa: E402

COMMAND_TOOLS = ("set_timer", "add_note", "list_timers", "read_notes")
"""The actions the spoken commands ask for."""
ALLOW = list(ASSISTANT_TOOLS)
"""What ``--allow`` gives the assistant in the benchmark (the tools salmonn-mini was taught)."""
GAP_S = 1.2
LEAD_S = 0.5
NOTE_MAX_WER = 0.25
HESITATION_S = 0.3
"""Silence put between the two parts of a hesitating request (espeak-ng adds its own around it:
the speech stops for about half a second)."""
MAX_TOKENS = 64
"""``salmonn-agent assistant``'s default ``--max-tokens``."""


@dataclass(frozen=True)
class Spoken:
    """A request as said in the conversation: its speech spans ``start``-``end`` seconds."""

    request: Request
    start: float
    end: float
    voice: str


# ---------------------------------------------------------------- the conversation


BANKS = {"heldout": (12, 2, 2), "other": (len(OTHER_REQUESTS), sum(r.tool is None for r in OTHER_REQUESTS), 0)}
"""``--bank``: its default ``--requests``, ``--questions`` and ``--hesitations``. ``heldout``: held-out sentences of the
training templates (:mod:`devkit.assistant_bank`) said by held-out espeak-ng voices; ``other``:
the hand-written requests of :mod:`devkit.other_requests` said by voices no training used."""


def pick_requests(n: int, questions: int, seed: int, bank: str = "heldout") -> list[Request]:
    """``n`` distinct requests of ``bank``: ``n - questions`` commands and ``questions`` questions,
    in the order :func:`sample_requests` draws them (``other``: shuffled by ``seed``)."""
    want = {"command": n - questions, "question": questions}
    chosen: list[Request] = []
    seen: set[str] = set()
    if bank == "other":
        drawn = list(OTHER_REQUESTS)
        np.random.default_rng([seed, 4040]).shuffle(drawn)
    else:
        drawn = sample_requests("test", 50 * n + 200, seed)
    for request in drawn:
        kind = "question" if request.tool is None else "command" if request.tool in COMMAND_TOOLS else None
        if kind is None or want[kind] == 0 or request.text in seen:
            continue
        seen.add(request.text)
        want[kind] -= 1
        chosen.append(request)
        if not any(want.values()):
            return chosen
    raise ConfigError(f"The {bank} bank has too few distinct requests for --requests {n} --questions {questions}: "
                      "ask for fewer.")


def speak_conversation(
    requests: list[Request], seed: int, hesitations: int = 0, hesitation_s: float = HESITATION_S,
    bank: str = "heldout",
) -> tuple[np.ndarray, list[Spoken]]:
    """The requests said one after another by held-out espeak-ng voices (bank ``other``: by
    :data:`~devkit.other_requests.OTHER_VOICES` in turn, duration stretched 0.9-1.15), with
    :data:`GAP_S` of silence between; the first ``hesitations`` commands of more than three words
    are said in two parts (split in the middle, ``hesitation_s`` of silence apart)."""
    scene = SceneBuilder(noise_db=-65.0, seed=seed).silence(LEAD_S)
    voices, spans = [], []
    left = hesitations
    for index, request in enumerate(requests):
        rng = np.random.default_rng([seed, index, 8080])
        say: Callable[[str], np.ndarray]
        if bank == "other":
            name = OTHER_VOICES[index % len(OTHER_VOICES)]
            say = functools.partial(speak_with, name, stretch=float(rng.uniform(0.9, 1.15)))
        else:
            voice = S.draw_voice(rng, held_out=True)
            name, say = voice.name, functools.partial(S.speak, voice=voice)
        words = request.text.split()
        parts = [request.text]
        if left and request.tool is not None and len(words) > 3:
            parts = [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]
            left -= 1
        level = float(rng.uniform(-28.0, -18.0))
        first = scene.seconds
        for i, part in enumerate(parts):
            try:
                said = say(part)
            except RuntimeError as err:  # the synthesizer failed: not the assistant's fault
                raise ConfigError(f"Could not speak {part!r}: {err}") from None
            scene.speech(S.set_rms_db(said, level), label=request.text)
            if i < len(parts) - 1:
                scene.silence(hesitation_s)
        spans.append((first, scene.seconds))
        scene.silence(GAP_S)
        voices.append(name)
    samples, events = scene.build()
    spoken = []
    for request, (start, end), voice in zip(requests, spans, voices, strict=True):
        inside = [e for e in events if start <= e.start and e.end <= end + 1e-9]
        spoken.append(Spoken(request, min(e.start for e in inside), max(e.end for e in inside), voice))
    return samples, spoken


# ---------------------------------------------------------------- the assistant


async def run_assistant(
    wav: Path, model: Any, name: str, notes: Path, *, realtime: bool, max_tokens: int,
    memory_turns: int | None = None, speaker: Any = None, preemptive: bool = True,
    end_of_turn: str = "adaptive", turn_end: str = "words", allow: list[str] | None = None,
) -> tuple[list[TurnResult], list[AuditRecord], dict[str, dict[str, Any]]]:
    """Replay ``wav`` to the assistant built as ``salmonn-agent assistant`` builds it.

    Returns the turns, the audit records (every action call with its turn) and the action
    tools' argument defaults.
    """
    from salmonn_agent.chat_model import ChatSALMONN

    with TimerBoard() as board:
        allow = ALLOW if allow is None else allow
        chat = ChatSALMONN(client=model, model=name, temperature=0, max_tokens=max_tokens)
        # As the command does: the brain is offered the allowed tools and those its model was taught.
        actions = offered_actions(build_actions(ActionsConfig(notes_path=notes), board=board), allow, profile_of(chat))
        gate = ActionGate(ActionPolicy(allow=allow), AuditLog())
        memory = memory_turns_for(profile_of(chat)) if memory_turns is None else memory_turns  # as the command does
        config = AgentConfig(max_memory_turns=memory, preemptive=preemptive, end_of_turn=end_of_turn)
        agent = VoiceAgent(chat, actions=actions, gate=gate, store=WindowStore(), config=config, speaker=speaker,
                           turn_end=turn_end_judge(model, config, turn_end))  # as the command does
        if not realtime:  # as the command does: rate limits count the replay's seconds
            gate.clock = agent.stream_seconds
        listener = Listener(FileSource(wav, realtime=realtime), agent.segmenter_config(), on_onset=agent.on_onset if realtime else None)
        try:
            listener.start()
            results = await (agent.run(listener) if realtime else agent.process(listener))
        finally:
            listener.close()
    return results, gate.audit.records(), tool_defaults(actions)


def tool_defaults(actions: list[Any]) -> dict[str, dict[str, Any]]:
    """Each action tool's argument defaults (an argument left out is scored as its default)."""
    return {t.name: {k: v["default"] for k, v in t.args.items() if "default" in v} for t in actions}


# ---------------------------------------------------------------- scoring


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def value_matches(key: str, expected: Any, got: Any) -> bool:
    """Whether one argument is right (see the module docstring for the rules)."""
    if key == "text" and isinstance(expected, str):
        return isinstance(got, str) and bool(normalize(got)) and jiwer.wer(normalize(expected), normalize(got)) <= NOTE_MAX_WER
    if _number(expected) is not None:
        return _number(got) is not None and abs(_number(expected) - _number(got)) < 1e-6
    if isinstance(expected, str):
        return isinstance(got, str) and normalize(expected) == normalize(got)
    return expected == got


DURATION_KEYS = ("hours", "minutes", "seconds")


def _as_seconds(args: dict[str, Any]) -> dict[str, Any]:
    """A timer's arguments with its duration parts (hours, minutes, seconds) added up into
    ``seconds``, so "forty minutes" is right as ``{"minutes": 40}`` or ``{"seconds": 2400}``."""
    if not any(key in args for key in DURATION_KEYS):
        return args
    parts = [_number(args.get(key, 0)) for key in DURATION_KEYS]
    if any(part is None for part in parts):
        return args  # not numbers: compared as they are, and wrong
    rest = {key: value for key, value in args.items() if key not in DURATION_KEYS}
    return {**rest, "seconds": duration_seconds(*parts)}


def args_match(expected: dict[str, Any], got: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """Whether ``got`` equals ``expected``, arguments left out on either side taking their defaults;
    a timer's duration counts as right in any units that add up to the expected one."""
    expected, got = _as_seconds(expected), _as_seconds(got)
    defaults = {key: value for key, value in defaults.items() if key not in DURATION_KEYS}
    return all(
        value_matches(key, expected.get(key, defaults.get(key)), got.get(key, defaults.get(key)))
        for key in set(expected) | set(got)
    )


def assign_turns(spoken: list[Spoken], results: list[TurnResult]) -> list[list[TurnResult]]:
    """The turns of each request: each turn goes to the request its window overlaps most."""
    turns: list[list[TurnResult]] = [[] for _ in spoken]
    for result in results:
        start, end = float(result.window.get("start", 0.0)), float(result.window.get("end", 0.0))
        overlaps = [min(end, s.end) - max(start, s.start) for s in spoken]
        best = int(np.argmax(overlaps))
        if overlaps[best] > 0:
            turns[best].append(result)
    return turns


def score(
    spoken: list[Spoken], results: list[TurnResult], records: list[AuditRecord], defaults: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Accuracy figures and per-request details."""
    calls: dict[int, list[AuditRecord]] = defaultdict(list)
    for record in records:
        if record.turn is not None:
            calls[record.turn].append(record)
    commands = correct = right_tools = wrong_runs = questions = answered = right_answers = cutoffs = 0
    false_actions = false_runs = 0
    graded = 0  # questions with an expected answer (chit-chat has none)
    details = []
    assigned = assign_turns(spoken, results)
    for said, turns in zip(spoken, assigned, strict=True):
        request = said.request
        made = [record for turn in turns for record in calls[turn.turn]]
        answer = " ".join(turn.answer for turn in turns if turn.answer).strip()
        cut = len(turns) > 1  # a turn ended mid-request and the rest became another turn
        cutoffs += cut
        if request.tool is not None:
            commands += 1
            right_tool = len(made) == 1 and made[0].tool == request.tool
            ok = right_tool and args_match(request.args, made[0].args, defaults.get(request.tool, {}))
            right_tools += right_tool
            correct += ok
            wrong_runs += any(r.tool != request.tool and r.decision != "denied" for r in made)
            expected: dict[str, Any] = {"tool": request.tool, "args": request.args}
        else:
            questions += 1
            false_actions += bool(made)
            false_runs += any(r.decision != "denied" for r in made)
            words = not made and bool(answer)
            if request.answer is None:
                ok = not made
            else:
                ok = words and normalize(request.answer) in normalize(answer)
                graded += 1
                right_answers += ok
            answered += words
            expected = {"answer": request.answer}
        details.append({
            "text": request.text,
            "voice": said.voice,
            "speech": [round(said.start, 2), round(said.end, 2)],
            "expected": expected,
            "got": {
                "windows": [turn.window.get("id") for turn in turns],
                "calls": [{"tool": r.tool, "args": r.args, "decision": r.decision,
                           **({"reason": r.reason} if r.decision == "denied" else {})} for r in made],
                "answer": answer,
            },
            "correct": ok,
            "cut_off": cut,
        })
    figures = {
        "commands": commands,
        "questions": questions,
        "actions_correct": round(correct / commands, 3) if commands else None,
        "tools_correct": round(right_tools / commands, 3) if commands else None,
        "wrong_actions_run": round(wrong_runs / commands, 3) if commands else None,
        "questions_answered": round(answered / questions, 3) if questions else None,
        "questions_correct": round(right_answers / graded, 3) if graded else None,
        "false_actions": round(false_actions / questions, 3) if questions else None,
        "false_actions_run": round(false_runs / questions, 3) if questions else None,
        "false_cutoffs": round(cutoffs / len(spoken), 3) if spoken else None,
        "unmatched_turns": len(results) - sum(len(turns) for turns in assigned),
    }
    return figures, details


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


# ---------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark's JSON object."""
    import torch

    from salmonn_agent.registry import load_model, resolve_model_name

    defaults = dict(zip(("requests", "questions", "hesitations"), BANKS[args.bank], strict=True))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.requests < 1 or not 0 <= args.questions < args.requests:
        raise ConfigError(
            f"--requests must be at least 1 and --questions between 0 and --requests - 1, got "
            f"{args.requests} and {args.questions}."
        )
    if args.max_tokens < 1:
        raise ConfigError(f"--max-tokens must be at least 1, got {args.max_tokens}.")
    if unknown := sorted(set(args.allow) - set(ALLOW)):
        raise ConfigError(f"--allow names tools {unknown} that the benchmark's requests do not use; "
                          f"choose among {', '.join(ALLOW)}.")
    if not S.espeak_available():
        raise ConfigError("espeak-ng is not installed (it speaks the requests): apt-get install espeak-ng.")
    if args.bank == "other" and not (shutil.which("flite") and shutil.which("text2wave")):
        raise ConfigError("--bank other speaks with flite and festival: apt-get install flite festival "
                          "festvox-us-slt-hts.")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args.hesitations < 0:
        raise ConfigError(f"--hesitations must be 0 or more, got {args.hesitations}.")
    if not 0 <= args.hesitation_s <= 5:
        raise ConfigError(f"--hesitation-s must be between 0 and 5 seconds, got {args.hesitation_s}.")
    samples, spoken = speak_conversation(
        pick_requests(args.requests, args.questions, args.seed, args.bank), args.seed, args.hesitations,
        args.hesitation_s, args.bank,
    )
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    name = resolve_model_name(args.model)
    speaker = None
    if args.speak:
        from salmonn_agent.agent.speech_out import NullOutput, Speaker, load_tts

        engine = load_tts()
        speaker = Speaker(engine, output=NullOutput(engine.sample_rate, realtime=True))
        speaker.warm_up()  # as the command does
        speaker.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            wav = args.save_wav or Path(tmp) / "conversation.wav"
            sf.write(wav, samples, SAMPLE_RATE, subtype="PCM_16")
            results, records, defaults = asyncio.run(run_assistant(
                wav, model, name, Path(tmp) / "notes.txt", realtime=args.realtime, max_tokens=args.max_tokens,
                memory_turns=args.memory_turns, speaker=speaker, preemptive=not args.no_preemptive,
                end_of_turn=args.end_of_turn, turn_end=args.turn_end, allow=args.allow,
            ))
    finally:
        if speaker is not None:
            speaker.close()
    figures, details = score(spoken, results, records, defaults)

    metrics = [r.metrics for r in results]

    def from_eou(m: Any, ms: float) -> float:  # end of speech → ms after the answer started
        return m.eou_delay_ms - m.head_start_ms + ms

    out: dict[str, Any] = {
        "eou_to_first_token_ms": _median([from_eou(m, m.ttft_ms) for m in metrics if m.ttft_ms is not None]),
        "eou_to_action_ms": _median([from_eou(m, m.action_ms) for m in metrics if m.action_ms is not None]),
        "turn_ms": _median([m.turn_ms for m in metrics]),
        "ttft_ms": _median([m.ttft_ms for m in metrics if m.ttft_ms is not None]),
        "eou_delay_ms": _median([m.eou_delay_ms for m in metrics]),
        "head_start_ms": _median([m.head_start_ms for m in metrics]),
        "preempted_turns": sum(m.head_start_ms > 0 for m in metrics),
        "long_waits": sum(m.eou_delay_ms >= AgentConfig().unfinished_wait_ms for m in metrics)
        if args.end_of_turn == "adaptive" and not args.no_preemptive else 0,
        "actions_correct": figures.pop("actions_correct"),
        "tools_correct": figures.pop("tools_correct"),
        "wrong_actions_run": figures.pop("wrong_actions_run"),
        "questions_answered": figures.pop("questions_answered"),
        "questions_correct": figures.pop("questions_correct"),
        "false_actions": figures.pop("false_actions"),
        "false_actions_run": figures.pop("false_actions_run"),
        "false_cutoffs": figures.pop("false_cutoffs"),
        "turns": len(results),
        "requests": len(spoken),
        **figures,
        "actions_run": sum(r.decision == "allowed" for r in records),
        "actions_refused": sum(r.decision == "denied" for r in records),
        "audio_s": round(samples.size / SAMPLE_RATE, 2),
        "realtime": args.realtime,
        "seed": args.seed,
        "bank": args.bank,
        "allow": args.allow,
        "memory_turns": args.memory_turns,
        "hesitations": args.hesitations,
        "hesitation_s": args.hesitation_s,
        "end_of_turn": args.end_of_turn,
        "turn_end": args.turn_end,
        "preemptive": not args.no_preemptive,
        "model": name,
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "half_weights": weight_format(model.llm),  # "float16", "bfloat16" or None
    }
    if speaker is not None:
        spoken = [m for m in metrics if m.first_audio_ms is not None]
        out.update({
            "eou_to_first_audio_ms": _median([from_eou(m, m.first_audio_ms) for m in spoken]),
            "first_audio_ms": _median([m.first_audio_ms for m in spoken]),
            "spoken_turns": len(spoken),
            "tts": speaker.engine.name,
        })
    if args.details:
        out["details"] = details
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; user errors are one line on stderr and exit status 2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--model", help="a salmonn-agent model directory (default: the embedded model)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    parser.add_argument("--dtype", default="auto", help="the model's precision, as the CLI's --dtype (default: auto)")
    parser.add_argument("--bank", choices=list(BANKS), default="heldout",
                        help="heldout: held-out sentences of the training templates, held-out espeak-ng voices "
                             "(default); other: hand-written requests in other wording, voices no training used")
    parser.add_argument("--requests", type=int,
                        help="spoken requests in the conversation (default 12; --bank other: all 40)")
    parser.add_argument("--questions", type=int,
                        help="how many of them are questions or chit-chat (default 2; --bank other: all 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow", nargs="+", default=list(ALLOW), metavar="TOOL",
                        help=f"the tools allowed, as `assistant --allow` (default: {' '.join(ALLOW)}, the ones "
                             "salmonn-mini was taught)")
    parser.add_argument("--hesitations", type=int,
                        help="commands said in two parts with a pause between (default 2; --bank other: 0)")
    parser.add_argument("--hesitation-s", type=float, default=HESITATION_S,
                        help=f"silence between a hesitating command's two parts (default {HESITATION_S})")
    parser.add_argument("--end-of-turn", choices=["adaptive", "fixed"], default="adaptive",
                        help="as `assistant --end-of-turn` (default adaptive)")
    parser.add_argument("--turn-end", choices=TURN_END_JUDGES, default="words",
                        help="as `assistant --turn-end` (default words)")
    parser.add_argument("--no-early-answers", dest="no_preemptive", action="store_true",
                        help="do not start answers at pauses (as `assistant --no-early-answers`)")
    parser.add_argument("--realtime", action="store_true", help="pace the replay like a live microphone")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help=f"longest answer (default {MAX_TOKENS})")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2; 0: torch's default)")
    parser.add_argument("--speak", action="store_true",
                        help="say the answers (as `assistant --speak`, into a real-time null output)")
    parser.add_argument("--details", action="store_true", help="add per-request details")
    parser.add_argument("--memory-turns", type=int,
                        help="turns the assistant remembers (default: as `salmonn-agent assistant`, 0 with salmonn-mini)")
    parser.add_argument("--save-wav", type=Path, metavar="PATH", help="also keep the conversation's WAV here")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except SalmonnError as err:
        print(f"bench_agent: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
