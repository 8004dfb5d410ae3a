"""Continue salmonn-mini's training on one GPU: more synthetic data, one mixed stage, held-out checks.

    python tools/train_mini_gpu.py [--runs runs/mini] [--start DIR] [--minutes 5 | --steps N] [--stop-after N]
        [--batch-size 32] [--workers 8]
        [--extra-train 12000] [--extra-assistant 6000] [--export FILE] [--json-out FILE]

The CPU recipe (``tools/train_mini.py``) trains salmonn-mini in small stages on one dataset. On a GPU far more steps fit in minutes, so this script continues
from a trained salmonn-mini (``--start``: a model directory; default: the shipped weights on the
cached base parts) with more data:

1. data, each part skipped when it exists: ``runs/mini/data`` (``make_mini_data.py``, seed 0,
   exactly as ``train_mini.py`` makes it: its held-out split is the one ``eval_mini.py`` scores),
   ``runs/mini/data_seed1`` (seed 1, ``--extra-train`` training items only: new voices, sounds
   and sentences of the training split), ``runs/mini/assistant`` (``make_assistant_data.py``,
   seed 0, as ``train_mini.py``) and ``runs/mini/assistant_seed1`` (seed 1,
   ``--extra-assistant`` spoken requests, training only);
2. one stage, ``examples/mini/stage_gpu.yaml``: the Q-Former, projection and LoRA learn on all
   the training items of those four sets, shuffled together (``runs/mini/train_gpu.json``), with
   bf16 autocast. Its length is fitted to ``--minutes`` (the stage's whole wall time): a probe
   run of ``PROBE_STEPS`` steps times a step and the start-up, and the stage's
   ``iters_per_epoch`` is set so that its cosine schedule ends in time. ``--steps N`` gives the
   schedule's length instead (no probe), and ``--stop-after K`` ends the run after step K;
3. held-out checks of the start and the result: ``eval_mini.py`` on ``runs/mini/data``'s test
   split (``--skip-latency``), and the voice assistant's tool calls on the held-out spoken
   requests (``assistant_test.json``, the assistant's exact prompt, greedy): ``exact`` (the
   expected tool with the expected arguments, scored as ``bench_agent.py`` scores them),
   ``tool`` (the expected tool) and ``answers`` (a spoken question answered with its answer);
4. the result's trainable parameters, float16, to ``--export`` (default: not written).

docs/model-card.md ("Training recipe", stages 7 and 8) gives the run behind the shipped
weights: its options, its times, and the averaging with its start.

Prints one JSON object (also to ``--json-out``): data sizes, probe and training times, steps,
the metrics of both models. Needs espeak-ng (data), a CUDA GPU (``--device``), the base parts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "mini"  # the default --runs, where the CPU recipe works too
TRAIN_SETS = {"data": "train.json", "data_seed1": "train.json", "assistant": "assistant_train.json",
              "assistant_seed1": "assistant_train.json"}
"""The four data sets under ``--runs`` and their training annotation files."""
STAGE = ROOT / "examples" / "mini" / "stage_gpu.yaml"
PROBE_STEPS = 20
# The least start-up time (loading, data-loader workers, final save) counted against --minutes;
# the probe's own start-up is used when longer.
SETUP_S = 45.0


def _say(message: str) -> None:
    print(f"[train_mini_gpu] {message}", file=sys.stderr, flush=True)


def _tool(name: str) -> Any:
    """A module of ``tools/`` (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _run(args: list[str], log: Path) -> str:
    """Run a Python command with its stderr to ``log``; its stdout."""
    with open(log, "w") as err:
        done = subprocess.run([sys.executable, *args], stdout=subprocess.PIPE, stderr=err, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed (exit {done.returncode}); see {log}")
    return done.stdout


def make_data(args: argparse.Namespace, start_dir: Path) -> dict[str, int]:
    """The four data sets (each skipped when present); their training item counts."""
    tools, runs = ROOT / "tools", args.runs
    jobs = [
        (runs / "data", [str(tools / "make_mini_data.py"), str(runs / "data"), "--seed", "0"]),
        (runs / "data_seed1", [str(tools / "make_mini_data.py"), str(runs / "data_seed1"), "--seed", "1",
                               "--train", str(args.extra_train), "--valid", "0", "--test", "0"]),
        (runs / "assistant", [str(tools / "make_assistant_data.py"), str(runs / "assistant"), "--seed", "0",
                              "--model", str(start_dir)]),
        (runs / "assistant_seed1", [str(tools / "make_assistant_data.py"), str(runs / "assistant_seed1"),
                                    "--seed", "1", "--train", str(args.extra_assistant), "--valid", "0",
                                    "--test", "0", "--model", str(start_dir)]),
    ]
    for out, command in jobs:
        if (out / "summary.json").is_file():
            continue
        _say(f"making {out.name}")
        t0 = time.perf_counter()
        _run([*command, "--workers", str(args.workers)], runs / f"{out.name}.log")
        _say(f"{out.name}: {time.perf_counter() - t0:.0f} s")
    return {name: len(json.loads((runs / name / file).read_text())["annotation"]) for name, file in TRAIN_SETS.items()}


def mix(runs: Path, out: Path) -> int:
    """All training items of the four sets under ``runs``, paths made absolute, shuffled (seed 7)."""
    items = []
    for name, file in TRAIN_SETS.items():
        for item in json.loads((runs / name / file).read_text())["annotation"]:
            items.append(dict(item, path=os.path.abspath(runs / name / item["path"])))
    random.Random(7).shuffle(items)
    out.write_text(json.dumps({"annotation": items}))
    return len(items)


def start_model(args: argparse.Namespace) -> Path:
    """The start as a model directory (``--start``, or the shipped weights saved once)."""
    if args.start:
        return Path(args.start)
    target = args.runs / "gpu_start"
    if not (target / "model.safetensors").is_file():
        from salmonn_agent.mini.shipped import load_mini

        load_mini(device="cpu", dtype="float32").save_pretrained(target)
    return target


def assistant_accuracy(model: Any, annotation: Path, batch_size: int) -> dict[str, Any]:
    """Tool calls on held-out spoken requests (see the module docstring)."""
    bench = _tool("bench_agent")
    from salmonn_agent.agent.actions import ActionsConfig, build_actions

    items = json.loads(annotation.read_text())["annotation"]
    defaults = bench.tool_defaults(build_actions(ActionsConfig(notes_path=annotation.parent / "unused_notes.txt")))
    exact = tool = commands = answers = questions = 0
    for i in range(0, len(items), batch_size):
        batch = items[i: i + batch_size]
        encoded = model.encode_audio([str(annotation.parent / item["path"]) for item in batch])
        outs = model.generate_from_prompts([item["prompt"] for item in batch], [[e] for e in encoded],
                                           max_new_tokens=40, num_beams=1, do_sample=False)
        for item, out in zip(batch, outs):
            try:
                call = json.loads(out)
            except ValueError:
                call = None
            if not isinstance(call, dict):
                call = None
            if item["tool"] is None:
                questions += 1
                answers += call is None and bench.normalize(str(item["answer"])) in bench.normalize(out)
                continue
            commands += 1
            right_tool = call is not None and call.get("name") == item["tool"]
            got = call.get("arguments") if right_tool and isinstance(call.get("arguments"), dict) else None
            tool += right_tool
            exact += got is not None and bench.args_match(item["args"], got, defaults.get(item["tool"], {}))
    return {"exact": round(exact / max(commands, 1), 4), "tool": round(tool / max(commands, 1), 4),
            "answers": round(answers / max(questions, 1), 4), "commands": commands, "questions": questions}


def evaluate(model_dir: Path, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """``eval_mini.py`` on the held-out split and the assistant check, for one model directory."""
    out = log.with_suffix(".json")
    metrics = json.loads(_run([str(ROOT / "tools" / "eval_mini.py"), "--model", str(model_dir), "--data",
                               str(args.runs / "data"), "--json", "--skip-latency", "--device", args.device,
                               "--batch-size", str(args.eval_batch_size),
                               "--out", str(log.with_suffix(".items.jsonl"))], log))
    import torch

    from salmonn_agent.model.salmonn import SALMONN

    model = SALMONN.from_pretrained(str(model_dir), device=args.device, dtype="float32")
    with torch.inference_mode():
        assistant = assistant_accuracy(model, args.runs / "assistant" / "assistant_test.json", args.eval_batch_size)
    del model
    keep = ("wer", "wer_clean", "wer_noisy", "sound_acc", "speech_presence_acc", "spoken_query_acc",
            "gender_acc", "count_acc", "caption_class_acc")
    result = {k: metrics.get(k) for k in keep}
    out.write_text(json.dumps({"eval_mini": metrics, "assistant": assistant}, indent=1))
    return {**result, "assistant": assistant}


def train(args: argparse.Namespace, start_dir: Path, steps: int, output: Path, stop_after: int | None = None) -> float:
    """Run the stage (a schedule of ``steps`` optimizer steps, cut after ``stop_after``) into
    ``output``; its wall time."""
    sets = [f"model={start_dir}", f"output_dir={output}", f"run.iters_per_epoch={steps}",
            f"datasets.train_ann_path={args.runs / 'train_gpu.json'}",
            f"datasets.prompt_path={args.runs / 'data' / 'prompts.json'}",
            f"run.batch_size_train={args.batch_size}", f"run.num_workers={args.workers}",
            f"run.device={args.device}", f"run.optims.warmup_steps={max(1, min(100, steps // 10))}",
            f"run.save_every_steps={max(1, steps // 4)}"]
    if stop_after:
        sets.append(f"run.max_steps={stop_after}")
    command = ["-m", "salmonn_agent.cli", "train", str(STAGE)]
    for s in sets:
        command += ["--set", s]
    t0 = time.perf_counter()
    _run(command, output.parent / f"{output.name}.log")
    return time.perf_counter() - t0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=RUNS, help="where the data and runs go (runs/mini)")
    p.add_argument("--start", help="the model directory to continue from (default: the shipped salmonn-mini)")
    p.add_argument("--minutes", type=float, default=5.0, help="the stage's wall time, probe excluded (5)")
    p.add_argument("--steps", type=int, help="the schedule's length in steps (default: fitted to --minutes)")
    p.add_argument("--stop-after", type=int, help="stop after this many steps (the schedule keeps --steps)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=8, help="data-making processes and data-loader workers (8)")
    p.add_argument("--extra-train", type=int, default=12000, help="training items of the seed-1 data (12000)")
    p.add_argument("--extra-assistant", type=int, default=6000, help="spoken requests of seed 1 (6000)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--skip-start-eval", action="store_true", help="do not evaluate the start model")
    p.add_argument("--export", type=Path, help="write the result's float16 weights here")
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    counts = (args.batch_size, args.workers, args.steps or 1, args.stop_after or 1)
    if args.minutes <= 0 or min(counts) < 1:
        p.error("--minutes, --steps, --stop-after, --batch-size and --workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.runs = runs = args.runs.resolve()
    runs.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"device": args.device, "batch_size": args.batch_size}
    t0 = time.perf_counter()
    start_dir = start_model(args)
    report["data"] = make_data(args, start_dir)
    report["data_s"] = round(time.perf_counter() - t0, 1)
    report["train_items"] = mix(runs, runs / "train_gpu.json")
    if not args.skip_start_eval:
        report["start"] = evaluate(start_dir, args, runs / "eval_gpu_start.log")
    if args.steps:
        steps = args.steps
    else:
        probe = runs / "stage_gpu_probe"
        probe_s = train(args, start_dir, PROBE_STEPS, probe)
        log = [json.loads(line) for line in (probe / "metrics.jsonl").read_text().splitlines()]
        timed = [(r["step"], r["elapsed_s"]) for r in log if r.get("split") == "train"]
        # The steps between the first and last logged ones: past the start-up and warm-up.
        step_s = ((timed[-1][1] - timed[0][1]) / (timed[-1][0] - timed[0][0]) if len(timed) >= 2
                  else probe_s / PROBE_STEPS)
        setup_s = max(SETUP_S, probe_s - PROBE_STEPS * step_s)
        steps = max(PROBE_STEPS, int((args.minutes * 60 - setup_s) / step_s))
        report.update(probe_s=round(probe_s, 1), step_s=round(step_s, 4), setup_s=round(setup_s, 1))
        _say(f"probe: {step_s:.3f} s a step, {setup_s:.0f} s of start-up; training {steps} steps")
    report.update(steps=steps, stop_after=args.stop_after)
    output = runs / "stage_gpu"
    report["train_s"] = round(train(args, start_dir, steps, output, args.stop_after), 1)
    report["train_log"] = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()][-3:]
    report["result"] = evaluate(output / "model", args, runs / "eval_gpu_result.log")
    if args.export:
        _tool("train_mini").export_weights(output / "model" / "model.safetensors", args.export)
        report["export"] = str(args.export)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, indent=1)
    if args.json_out:
        args.json_out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
