"""Held-out metrics of the embedded default model "salmonn-mini" (or any salmonn-agent model dir).

    python tools/eval_mini.py [--model DIR] [--data DIR] [--limit N] [--json] [--skip-latency]
                              [--out FILE] [--batch-size 8] [--max-new-tokens 40] [--device auto]
                              [--cli PATH]
    python tools/eval_mini.py --real DIR [--real-limit N] [...]   (real recordings, see below)

Model: ``--model DIR`` (a salmonn-agent model directory, e.g. a training run's ``runs/x/model``),
else the default resolution of ``salmonn_agent.registry.load_model(None)``:
``$SALMONN_AGENT_MODEL``, else salmonn-mini.

Data: ``--data DIR`` is a ``tools/make_mini_data.py`` output directory (its ``test.json`` and
``prompts.json`` are read; ``path`` values are relative to DIR). Without it, the held-out split
of the default dataset (seed 0, 600 items; ``--data-seed`` / ``--data-size`` change it) is made
with make_mini_data's own functions into ``<cache>/eval-mini/test-seed<S>-n<N>`` (``<cache>`` as
salmonn-mini's parts: ``$SALMONN_AGENT_CACHE`` or the user cache) once and reused: the same items,
byte for byte, as the ``test`` split of ``make_mini_data.py OUT`` with that seed and test size.

Decoding: the FIRST instruction template of each task in ``prompts.json`` (the text after
``<Speech><SpeechHere></Speech>``, ``{}`` -> the item's ``Q``), greedy (``num_beams=1``,
no sampling, the model's own repetition penalty), ``--max-new-tokens`` (40), batches of
``--batch-size`` (8) items of one metric group. ``--limit N`` keeps the first N items (file
order) of each metric group. Story items are not evaluated; captions only where their label is
a sound class.

Scoring (``devkit/scoring.py`` has the details):

* ``wer``: jiwer corpus WER over all asr items (errors / reference words) after normalising
  hypothesis and ``label`` alike: lower case, punctuation removed (``'`` kept inside words),
  digits written as words the way the labels write numbers, whitespace collapsed. Also
  ``wer_clean`` / ``wer_noisy`` (kinds asr_clean / asr_noisy) and ``wer_ref_words``.
* ``sound_acc``: QA items of qa_type sound_class, background_class and sound_yesno. An answer maps
  to the sound class it names first, by keyword stems built from ``text_bank`` (each class's
  ``label_words``, music's instrument names, "metronome"/"melody"/"tune", their inflections and
  text_bank's compounds such as "rainfall"; quoted speech ignored); every text_bank phrasing of a
  class maps back to it.
  sound_yesno answers map to yes/no. Correct when the mapping equals the label. Per qa_type:
  ``sound_class_acc``, ``background_class_acc``, ``sound_yesno_acc``.
* ``speech_presence_acc``: yes/no read from the answer (its first word when that is a yes/no
  word, else the first "yes"/"no" in it) equals the label.
* ``spoken_query_acc``: speech_query items; the normalised answer equals the label or starts with
  it followed by a space.
* ``gender_acc`` (first gender word: man/male/he... vs woman/female/she...), ``count_acc`` (first
  number in the answer, digits and once/twice included, equals the label), ``caption_class_acc``
  (audiocaption items labelled with a sound class: the caption names that class).
* Every score key has its sample count ``<key>_n``; a score without samples is null.

Latency and memory (skipped with ``--skip-latency``), on the speech clip of the data closest to 5 s:

* ``warm_answer_s``: model loaded and warmed up by one untimed answer, the median of 3 timed
  answers (audio encoding included) to that clip cut or zero-padded to exactly 5.0 s, "Please
  describe the audio.", greedy, max_new_tokens=20 (``warm_answer_tokens``: tokens generated).
* ``cold_cli_s``: wall time of ``salmonn-agent ask CLIP "Recognize the speech and give me the
  transcription."`` in a fresh process (``--model DIR`` passed when given; the CLI's own decoding
  defaults), median of 2 runs; salmonn-mini's parts are already cached by then (this tool loaded
  the model first). ``--cli PATH`` times another installation's ``salmonn-agent`` (say, one
  installed as README's first command, without the test extras: peft imports bitsandbytes
  when it is installed, which adds about 1.5 s). ``cli_peak_rss_mb``: the larger "Maximum resident set size" of the two runs
  from ``/usr/bin/time -v`` (``rss_method``: "/usr/bin/time -v"), or, without it, from
  ``resource.getrusage(RUSAGE_CHILDREN)`` in a small wrapper process ("getrusage(RUSAGE_CHILDREN)").

Real recordings (``--real DIR``, a ``tools/make_real_eval.py`` output directory; evaluation only,
never training): instead of the synthetic split, the items of ``DIR/manifest.json``, greedy as
above, ``--real-limit N`` keeping the first N items of each group (manifest order; for presence,
speech, sound and music items in turn):

* ``real_wer``: speech items, "Recognize the speech and give me the transcription.", jiwer corpus
  WER against the transcripts with the normaliser above (``real_wer_ref_words``). Long prompts
  need more tokens: a batch may generate ``max(--max-new-tokens, 4 * longest clip in s + 16)``.
* ``whisper_real_wer``: the reference line - plain Whisper tiny.en (salmonn-mini's prepared
  ``whisper`` part: transformers WhisperForConditionalGeneration + WhisperProcessor, greedy, at
  most 224 tokens) on the same speech items, same scoring.
* ``real_sound_acc``: sound items, "What sound do you hear? Answer briefly."; correct when the
  answer names one of the item's keywords (whole words, case-insensitive, inflections allowed:
  ``scoring.keyword_in``).
* ``real_music_acc``: music items, the same question; correct when the answer names one of the
  item's keywords or a general music word (``scoring.MUSIC_WORDS``: music, melody, song,
  instrument, piano, guitar, drum...).
* ``real_speech_presence_acc``: all items, "Is anyone speaking in this audio? Answer yes or no.";
  yes for speech, no for sound and music, read as ``speech_presence_acc`` reads answers; also
  ``real_presence_speech_acc`` / ``real_presence_nonspeech_acc`` (the speech / other items).

Each with its count ``<key>_n``. ``--out FILE`` then holds one line per item and group (with
``whisper`` for the speech items); latency (unless ``--skip-latency``) uses the real speech clip
closest to 5 s; ``bars`` holds only the latency bars.

Output: ``--json`` prints one JSON object on stdout (the metrics above, ``bars`` - each of the
issue's quality bars with its value and whether it passes - and run facts: ``model``, ``data``,
``device``, ``limit``, ``items``, ``load_s``, ``eval_s``...); otherwise a readable report.
``--out FILE`` writes one JSON line per evaluated item (instruction, label, prediction,
normalised prediction, what was extracted, correct). Progress goes to stderr. Exit status 0, or 2
with one error line on stderr when the model or data cannot be loaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit import scoring as SC  # noqa: E402

SPEECH_TAG = "<Speech><SpeechHere></Speech>"
WARM_INSTRUCTION = "Please describe the audio."
CLI_INSTRUCTION = "Recognize the speech and give me the transcription."
WARM_SECONDS = 5.0
REAL_INSTRUCTIONS = {  # real-set group -> instruction
    "real_asr": CLI_INSTRUCTION,
    "real_sound": "What sound do you hear? Answer briefly.",
    "real_music": "What sound do you hear? Answer briefly.",
    "real_presence": "Is anyone speaking in this audio? Answer yes or no.",
}
WHISPER_MAX_NEW_TOKENS = 224
LATENCY_BARS = ("warm_answer_s", "cold_cli_s", "cli_peak_rss_mb")
BARS = {  # metric -> (comparison, threshold): the quality bars
    "wer": ("<=", 0.25),
    "sound_acc": (">=", 0.80),
    "speech_presence_acc": (">=", 0.95),
    "warm_answer_s": ("<=", 1.5),
    "cold_cli_s": ("<=", 8.0),
    "cli_peak_rss_mb": ("<=", 1536.0),
}


def log(message: str) -> None:
    print(f"[eval_mini] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def _make_mini_data():  # -> the tools/make_mini_data.py module
    spec = importlib.util.spec_from_file_location("make_mini_data", ROOT / "tools" / "make_mini_data.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules.setdefault("make_mini_data", module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def default_data_dir(seed: int, size: int) -> Path:
    from salmonn_agent.mini.parts import cache_root

    return cache_root() / "eval-mini" / f"test-seed{seed}-n{size}"


def ensure_default_data(seed: int, size: int, workers: int = 2) -> Path:
    """The held-out split (seed, size) made by make_mini_data's functions, cached and reused."""
    out = default_data_dir(seed, size)
    if (out / "test.json").is_file() and (out / "prompts.json").is_file():
        return out
    mmd = _make_mini_data()
    if not mmd.S.espeak_available():
        raise RuntimeError("no --data given and espeak-ng is not installed to make the held-out split "
                           "(apt-get install espeak-ng, or pass --data DIR from tools/make_mini_data.py)")
    tmp = out.with_name(out.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"making the held-out split (seed {seed}, {size} items) into {out}")
    mmd.prepare_dirs(tmp, {"test": size})
    jobs = [mmd.Job(str(tmp), seed, "test", i, kind) for i, kind in enumerate(mmd.plan_kinds(size, seed, "test"))]
    anns = mmd.run_jobs(jobs, workers)
    mmd.write_json(tmp / "test.json", {"annotation": anns})
    mmd.write_json(tmp / "prompts.json", mmd.T.PROMPTS)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def load_data(data_dir: Path) -> tuple[list[dict], dict[str, list[str]]]:
    test = data_dir / "test.json"
    if not test.is_file():
        raise RuntimeError(f"{test} not found: --data takes a tools/make_mini_data.py output directory")
    items = json.loads(test.read_text(encoding="utf-8"))["annotation"]
    prompts_file = data_dir / "prompts.json"
    if prompts_file.is_file():
        prompts = json.loads(prompts_file.read_text(encoding="utf-8"))
    else:
        from devkit.text_bank import PROMPTS as prompts
    for item in items:
        item["audio"] = str((data_dir / item["path"]).resolve())
    return items, prompts


def instruction_for(item: dict, prompts: dict[str, list[str]]) -> str:
    """The first template of the item's task, after the speech tag, with ``{}`` -> ``Q``."""
    template = prompts[item["task"]][0]
    text = template.split(SPEECH_TAG, 1)[1] if SPEECH_TAG in template else template
    return text.replace("{}", item.get("Q", "")).strip()


def select(items: list[dict], limit: int | None) -> dict[str, list[dict]]:
    """Items per metric group (file order), the first ``limit`` of each."""
    groups: dict[str, list[dict]] = {g: [] for g in SC.GROUPS}
    for item in items:
        g = SC.group_of(item)
        if g is not None and (limit is None or len(groups[g]) < limit):
            groups[g].append(item)
    return groups


def load_real(real_dir: Path) -> list[dict]:
    """The items of a ``tools/make_real_eval.py`` output (``audio``: absolute path)."""
    manifest = real_dir / "manifest.json"
    if not manifest.is_file():
        raise RuntimeError(f"{manifest} not found: --real takes a tools/make_real_eval.py output directory")
    items = json.loads(manifest.read_text(encoding="utf-8"))["items"]
    for item in items:
        item["audio"] = str((real_dir / item["path"]).resolve())
        if not Path(item["audio"]).is_file():
            raise RuntimeError(f"{item['audio']} not found (rebuild the set with tools/make_real_eval.py)")
    return items


def select_real(items: list[dict], limit: int | None) -> dict[str, list[dict]]:
    """Items per real-set group (manifest order; speech, sound and music in turn for presence),
    the first ``limit`` of each."""
    by_kind = {kind: [it for it in items if it["kind"] == kind] for kind in ("speech", "sound", "music")}
    mixed = [it for row in itertools.zip_longest(*by_kind.values()) for it in row if it is not None]
    groups = {"real_asr": by_kind["speech"], "real_sound": by_kind["sound"], "real_music": by_kind["music"],
              "real_presence": mixed}  # kinds taken in turn, so that a limit keeps a mix
    return {g: v if limit is None else v[:limit] for g, v in groups.items()}


# --------------------------------------------------------------------------- model


def check_model(model: str | None) -> None:
    """Fail early (before minutes of data generation) when the model cannot be there."""
    from salmonn_agent.mini.shipped import mini_weights_available
    from salmonn_agent.registry import DEFAULT_MODEL, MODEL_ENV, resolve_model_name

    name = resolve_model_name(model)
    if name == DEFAULT_MODEL and not mini_weights_available():
        raise RuntimeError(f"no --model given and this installation has no embedded {DEFAULT_MODEL} weights; "
                           f"pass --model DIR or set ${MODEL_ENV}")
    if name != DEFAULT_MODEL and not Path(name).is_dir():
        raise RuntimeError(f"model directory {name} not found")


def load_model(model: str | None, device: str | None, dtype: str):  # -> SALMONN (imported lazily)
    from salmonn_agent.registry import load_model as resolve_and_load

    return resolve_and_load(model, device=device, dtype=dtype)


def answer_groups(model: Any, groups: dict[str, list[dict]], batch_size: int, what: str,
                  ask: Callable[[str, list[dict]], tuple[list[str], int]],
                  record: Callable[[str, dict, str, str], dict]) -> list[dict]:
    """Greedy answers for all selected items, in batches of one group; returns scored records.

    ``ask(group, batch)`` gives the batch's instructions and token limit; ``record(group, item,
    instruction, answer)`` scores one answer."""
    import torch

    total = sum(len(v) for v in groups.values())
    records: list[dict] = []
    start = time.perf_counter()
    done = 0
    with torch.inference_mode():
        for group, items in groups.items():
            for i in range(0, len(items), batch_size):
                batch = items[i:i + batch_size]
                instructions, tokens = ask(group, batch)
                answers = model.generate([it["audio"] for it in batch], instructions, num_beams=1,
                                         do_sample=False, max_new_tokens=tokens)
                records += [record(group, item, instruction, answer)
                            for item, instruction, answer in zip(batch, instructions, answers)]
                done += len(batch)
                log(f"{done}/{total} {what} ({group}), {time.perf_counter() - start:.1f} s")
    return records


def predict(model: Any, groups: dict[str, list[dict]], prompts: dict[str, list[str]], batch_size: int,
            max_new_tokens: int) -> list[dict]:
    """Greedy answers for the held-out split's groups; returns scored records."""

    def ask(group: str, batch: list[dict]) -> tuple[list[str], int]:
        return [instruction_for(it, prompts) for it in batch], max_new_tokens

    def record(group: str, item: dict, instruction: str, answer: str) -> dict:
        rec = {"path": item["path"], "task": item["task"], "kind": item.get("kind"),
               "qa_type": item.get("qa_type"), "instruction": instruction,
               "label": item.get("label", ""), "reference": item.get("text", ""), "prediction": answer}
        rec.update(SC.score_item(item, answer))
        return rec

    return answer_groups(model, groups, batch_size, "items", ask, record)


def asr_tokens(batch: list[dict], max_new_tokens: int) -> int:
    """Tokens a real-set transcription batch may generate: room for its longest clip."""
    return max(max_new_tokens, int(4 * max(float(it["duration"]) for it in batch)) + 16)


def predict_real(model: Any, groups: dict[str, list[dict]], batch_size: int, max_new_tokens: int) -> list[dict]:
    """Greedy answers for the real-set groups; returns scored records."""

    def ask(group: str, batch: list[dict]) -> tuple[list[str], int]:
        tokens = asr_tokens(batch, max_new_tokens) if group == "real_asr" else max_new_tokens
        return [REAL_INSTRUCTIONS[group]] * len(batch), tokens

    def record(group: str, item: dict, instruction: str, answer: str) -> dict:
        rec = {"id": item["id"], "path": item["path"], "kind": item["kind"], "source": item["source"],
               "instruction": instruction, "prediction": answer}
        rec.update(SC.score_real_item(group, item, answer))
        return rec

    return answer_groups(model, groups, batch_size, "real items", ask, record)


def whisper_transcripts(items: list[dict], batch_size: int, device: str) -> list[str]:
    """Plain Whisper tiny.en (salmonn-mini's prepared part), greedy, on each item's audio."""
    import soundfile as sf
    import torch
    import transformers
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    transformers.logging.set_verbosity_error()  # its batch-generation notices are not ours to fix

    from salmonn_agent.mini.parts import prepare_mini_parts

    whisper_dir = prepare_mini_parts().whisper_dir
    processor = WhisperProcessor.from_pretrained(str(whisper_dir))
    model = WhisperForConditionalGeneration.from_pretrained(str(whisper_dir)).to(device).eval()
    out: list[str] = []
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            batch = items[i:i + batch_size]
            audio = [sf.read(it["audio"], dtype="float32")[0] for it in batch]
            features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features.to(device)
            ids = model.generate(features, num_beams=1, do_sample=False, max_new_tokens=WHISPER_MAX_NEW_TOKENS)
            out += [t.strip() for t in processor.batch_decode(ids, skip_special_tokens=True)]
            log(f"whisper {len(out)}/{len(items)}, {time.perf_counter() - start:.1f} s")
    return out


# --------------------------------------------------------------------------- latency


def latency_clip(items: list[dict]) -> dict:
    """The speech clip closest to 5 s (any clip when the data has no speech)."""
    speech = [it for it in items if it.get("transcript")] or items
    return min(speech, key=lambda it: (abs(float(it.get("duration", 0.0)) - WARM_SECONDS), it["path"]))


def warm_answer(model: Any, clip_path: str, repeats: int = 3) -> dict:
    """Median seconds of ``repeats`` answers to a 5.0 s clip (after one untimed warm-up)."""
    import numpy as np
    import torch

    samples = model.load(clip_path)
    n = int(WARM_SECONDS * 16000)
    clip = np.zeros(n, np.float32)
    clip[: min(n, len(samples))] = samples[:n]
    times, tokens, answer = [], 0, ""
    with torch.inference_mode():
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            enc = model.encode_audio([clip], sample_rate=16000)
            gen = model.generate_detailed([model.render_prompt(WARM_INSTRUCTION)], [[enc[0]]], num_beams=1,
                                          do_sample=False, max_new_tokens=20)[0]
            if i:
                times.append(time.perf_counter() - t0)
            tokens, answer = len(gen.token_ids), gen.text
    return {"warm_answer_s": round(statistics.median(times), 3), "warm_answer_runs": [round(t, 3) for t in times],
            "warm_answer_tokens": tokens, "warm_answer": answer}


def cli_command() -> list[str]:
    exe = Path(sys.executable).with_name("salmonn-agent")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("salmonn-agent")
    if found:
        return [found]
    return [sys.executable, "-m", "salmonn_agent.cli"]


_RSS_WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
                "sys.stderr.write('\\nMaximum resident set size (kbytes): %d\\n' % "
                "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def cold_cli(clip_path: str, model: str | None, device: str | None, dtype: str, runs: int = 2,
             cli: str | None = None) -> dict:
    """Wall time and peak RSS of ``salmonn-agent ask`` in fresh processes (median / max of ``runs``);
    ``cli``: the ``salmonn-agent`` executable (default: this environment's)."""
    cmd = ([cli] if cli else cli_command()) + ["ask", clip_path, CLI_INSTRUCTION]
    if model:
        cmd += ["--model", model]
    if device:
        cmd += ["--device", device]
    cmd += ["--dtype", dtype]
    time_bin = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else shutil.which("time")
    if time_bin and Path(time_bin).is_file():
        wrapped, method = [time_bin, "-v", *cmd], "/usr/bin/time -v"
    else:
        wrapped, method = [sys.executable, "-c", _RSS_WRAPPER, *cmd], "getrusage(RUSAGE_CHILDREN)"
    walls, rss_kb, answer = [], [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(wrapped, capture_output=True, text=True, timeout=600, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            last = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("\t")]
            return {"cold_cli_s": None, "cli_peak_rss_mb": None, "rss_method": method,
                    "cold_cli_error": (last[-1] if last else f"exit status {proc.returncode}")[:500]}
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        if m:
            rss_kb.append(int(m.group(1)))
        walls.append(wall)
        answer = proc.stdout.strip()
    return {"cold_cli_s": round(statistics.median(walls), 3), "cold_cli_runs": [round(w, 3) for w in walls],
            "cli_peak_rss_mb": round(max(rss_kb) / 1024, 1) if rss_kb else None, "rss_method": method,
            "cli_answer": answer, "cli_command": " ".join(cmd)}


# --------------------------------------------------------------------------- report


def bars(metrics: dict) -> dict:
    out = {}
    for key, (op, bar) in BARS.items():
        value = metrics.get(key)
        ok = None if value is None else (value <= bar if op == "<=" else value >= bar)
        out[key] = {"value": value, "bar": f"{op} {bar:g}", "pass": ok}
    return out


def human_report(result: dict) -> str:
    lines = [f"model: {result['model']}   data: {result['data']}   device: {result['device']}",
             f"{result['items']} items in {result['eval_s']} s (load {result['load_s']} s)", ""]
    keys = ["wer", "wer_clean", "wer_noisy", "sound_acc", "sound_class_acc", "background_class_acc",
            "sound_yesno_acc", "speech_presence_acc", "spoken_query_acc", "gender_acc", "count_acc",
            "caption_class_acc"]
    for key in keys:
        value = result.get(key)
        shown = "-" if value is None else f"{value:.4f}"
        bar = result["bars"].get(key)
        verdict = "" if not bar or bar["pass"] is None else f"   bar {bar['bar']}: {'PASS' if bar['pass'] else 'FAIL'}"
        lines.append(f"{key:<22}{shown:>8}   n={result.get(key + '_n', 0)}{verdict}")
    for key in ("warm_answer_s", "cold_cli_s", "cli_peak_rss_mb"):
        if key in result:
            value = result[key]
            bar = result["bars"][key]
            verdict = "" if bar["pass"] is None else f"   bar {bar['bar']}: {'PASS' if bar['pass'] else 'FAIL'}"
            lines.append(f"{key:<22}{'-' if value is None else value:>8}{verdict}")
    if result.get("cold_cli_error"):
        lines.append(f"cold CLI failed: {result['cold_cli_error']}")
    return "\n".join(lines)


def real_report(result: dict) -> str:
    lines = [f"model: {result['model']}   real set: {result['real']}   device: {result['device']}",
             f"{result['items']} answers in {result['eval_s']} s (load {result['load_s']} s)", ""]
    for key in ("real_wer", "whisper_real_wer", "real_sound_acc", "real_music_acc", "real_speech_presence_acc",
                "real_presence_speech_acc", "real_presence_nonspeech_acc"):
        value = result.get(key)
        shown = "-" if value is None else f"{value:.4f}"
        lines.append(f"{key:<30}{shown:>8}   n={result.get(key + '_n', 0)}")
    for key in LATENCY_BARS:
        if key in result:
            lines.append(f"{key:<30}{'-' if result[key] is None else result[key]:>8}")
    if result.get("cold_cli_error"):
        lines.append(f"cold CLI failed: {result['cold_cli_error']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="salmonn-agent model directory (default: $SALMONN_AGENT_MODEL, else salmonn-mini)")
    p.add_argument("--data", type=Path, help="make_mini_data.py output dir (default: the held-out split, made once)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated split without --data (0)")
    p.add_argument("--data-size", type=int, default=600, help="items of the generated split without --data (600)")
    p.add_argument("--limit", type=int, help="first N items of each metric group (default: all)")
    p.add_argument("--real", type=Path, help="evaluate the real recordings of this tools/make_real_eval.py output "
                                             "directory instead of the synthetic split")
    p.add_argument("--real-limit", type=int, help="with --real: first N items of each real-set group (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--skip-latency", action="store_true", help="skip warm_answer_s, cold_cli_s and peak RSS")
    p.add_argument("--cli", metavar="PATH",
                   help="the salmonn-agent executable cold_cli_s times (default: this environment's)")
    p.add_argument("--out", type=Path, help="write per-item predictions here (JSON Lines)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--device", help="cpu, cuda, mps (default: auto, as the CLI)")
    p.add_argument("--dtype", default="auto", help="the model's precision, as the CLI's --dtype (default: auto)")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 0:
        p.error("--limit must be >= 0")
    if args.real_limit is not None and args.real_limit < 0:
        p.error("--real-limit must be >= 0")
    if args.real and (args.data or args.limit is not None):
        p.error("--real evaluates the real set only: use --real-limit, not --data or --limit")
    if args.batch_size < 1 or args.max_new_tokens < 1:
        p.error("--batch-size and --max-new-tokens must be >= 1")
    if args.cli and not (Path(args.cli).is_file() and os.access(args.cli, os.X_OK)):
        p.error(f"--cli {args.cli}: not an executable file (give the path of an installation's salmonn-agent)")
    return args


def latency(model: Any, items: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    """The warm answer and cold CLI figures on the item closest to 5 s (see the module docstring)."""
    clip = latency_clip(items)
    out: dict[str, Any] = {"latency_clip": clip["path"], "latency_clip_s": clip.get("duration")}
    log(f"warm answer latency on {clip['path']}")
    out.update(warm_answer(model, clip["audio"]))
    log("cold CLI runs")
    out.update(cold_cli(clip["audio"], args.model, args.device, args.dtype, cli=args.cli))
    return out


def load_groups_and_model(args: argparse.Namespace, make_groups: Callable[[], dict]) -> tuple | None:
    """The items to evaluate per group and the loaded model, with its load time; None (after a
    one-line error on stderr) when the model or the data cannot be read."""
    from salmonn_agent.errors import SalmonnError
    from salmonn_agent.registry import resolve_model_name

    try:
        check_model(args.model)
        groups = make_groups()
        t0 = time.perf_counter()
        model = load_model(args.model, args.device, args.dtype)
        load_s = time.perf_counter() - t0
    except (SalmonnError, RuntimeError, OSError, KeyError, ValueError) as err:
        print(f"eval_mini: error: {err}", file=sys.stderr)
        return None
    log(f"model {resolve_model_name(args.model)} loaded in {load_s:.1f} s; "
        + ", ".join(f"{g} {len(v)}" for g, v in groups.items()))
    return groups, model, load_s


def main_real(args: argparse.Namespace) -> int:
    """``--real DIR``: the real-recordings metrics (see the module docstring)."""
    from salmonn_agent.errors import SalmonnError

    read: dict[str, Any] = {}

    def real_groups() -> dict:
        read["items"] = load_real(args.real)
        return select_real(read["items"], args.real_limit)

    loaded = load_groups_and_model(args, real_groups)
    if loaded is None:
        return 2
    groups, model, load_s = loaded
    items = read["items"]
    from salmonn_agent.registry import resolve_model_name

    t0 = time.perf_counter()
    records = predict_real(model, groups, args.batch_size, args.max_new_tokens)
    eval_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "model": resolve_model_name(args.model), "real": str(args.real), "device": str(model.device),
        "real_limit": args.real_limit, "items": len(records), "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "num_beams": 1,
        "load_s": round(load_s, 2), "eval_s": round(eval_s, 2),
    }
    result.update(SC.summarize_real(records))
    speech = groups["real_asr"]
    if speech:
        t0 = time.perf_counter()
        try:
            hyps = whisper_transcripts(speech, args.batch_size, str(model.device))
        except (SalmonnError, OSError) as err:
            print(f"eval_mini: error: Whisper tiny.en reference: {err}", file=sys.stderr)
            return 2
        result["whisper_real_wer"] = round(SC.corpus_wer([it["transcript"] for it in speech], hyps), 4)
        result["whisper_s"] = round(time.perf_counter() - t0, 2)
        by_id = dict(zip((it["id"] for it in speech), hyps))
        for rec in records:
            if rec["group"] == "real_asr":
                rec["whisper"] = by_id[rec["id"]]
    else:
        result["whisper_real_wer"] = None
    result["whisper_real_wer_n"] = len(speech)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", encoding="utf-8") as f:
            for rec in sorted(records, key=lambda r: (SC.REAL_GROUPS.index(r["group"]), r["id"])):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if not args.skip_latency and items:
        result.update(latency(model, items, args))
        del model
    result["bars"] = {k: v for k, v in bars(result).items() if k in LATENCY_BARS and k in result}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(real_report(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.real:
        return main_real(args)
    read: dict[str, Any] = {}

    def synthetic_groups() -> dict:
        read["data_dir"] = args.data if args.data else ensure_default_data(args.data_seed, args.data_size)
        read["items"], read["prompts"] = load_data(read["data_dir"])
        return select(read["items"], args.limit)

    loaded = load_groups_and_model(args, synthetic_groups)
    if loaded is None:
        return 2
    groups, model, load_s = loaded
    items, prompts, data_dir = read["items"], read["prompts"], read["data_dir"]
    from salmonn_agent.registry import resolve_model_name

    t0 = time.perf_counter()
    records = predict(model, groups, prompts, args.batch_size, args.max_new_tokens)
    eval_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "model": resolve_model_name(args.model), "data": str(data_dir), "device": str(model.device),
        "limit": args.limit, "items": len(records), "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "num_beams": 1,
        "load_s": round(load_s, 2), "eval_s": round(eval_s, 2),
    }
    result.update(SC.summarize(records))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", encoding="utf-8") as f:
            for rec in sorted(records, key=lambda r: r["path"]):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if not args.skip_latency:
        result.update(latency(model, items, args))
        del model
    result["bars"] = bars(result)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(human_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
