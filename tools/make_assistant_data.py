"""Make salmonn-mini's voice-assistant data: spoken requests answered with tool calls or words.

    python tools/make_assistant_data.py OUT [--seed 0] [--train 1200] [--valid 48] [--test 120] [--workers 1]
                                        [--wording]

Each item is a request from :mod:`devkit.assistant_bank` spoken by espeak-ng (a
voice of the split; held-out voices for ``test``), sometimes over a quiet background sound, and
its target: the JSON tool call of ChatSALMONN's tool protocol (``{"name": ..., "arguments":
{...}}``) or the spoken question's short answer. The prompt of every item is the one the voice
assistant really sends on a first turn (``VoiceAgent.rendered_prompt`` with the actions that
``salmonn-agent assistant --allow`` binds for :data:`~devkit.assistant_bank.ASSISTANT_TOOLS`), stored in the annotation's
``prompt`` field, so training sees exactly what the assistant renders. ``--model`` is any
salmonn-mini directory (only its prompt template and tokenizer are used; default: the parts). Output: ``OUT/audio/<split>/*.wav``, ``OUT/assistant_<split>.json``
(official annotation format plus ``prompt``, ``tool``, ``args``, ``answer``, ``transcript``) and
``OUT/summary.json``. Deterministic in ``--seed``.

``--wording`` makes training items from :mod:`devkit.command_wording` instead (requests in many
wordings other than the bank's templates, and chit-chat answered in words), said by
:data:`WORDING_VOICES` (espeak-ng, flite, festival and hibari-tts training voices), leaving out
any request that shares :data:`SHARED_WORDS` words in a row with an evaluation request.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # devkit/ sits at the repository root, outside the package
    sys.path.insert(0, str(ROOT))

from devkit import sounds as S  # noqa: E402
from devkit.assistant_bank import ASSISTANT_TOOLS, Request, sample_requests  # noqa: E402
from devkit.command_wording import wording_requests  # noqa: E402
from devkit.other_requests import OTHER_REQUESTS  # noqa: E402
from devkit.scoring import normalize  # noqa: E402
from devkit.voices import speak_with  # noqa: E402

SPLIT_IDS = {"train": 0, "valid": 1, "test": 2}


WORDING_VOICES = ("espeak", "flite:kal", "flite:kal16", "flite:awb", "flite:rms", "festival:kal_diphone",
                  "festival:ked_diphone", "hibari:heart")
"""``--wording``'s voices, drawn with equal chance per item (espeak: a training variant): the
training voices of ``tools/make_broad_asr.py``, none of the evaluation voices of
:data:`devkit.other_requests.OTHER_VOICES`."""


SHARED_WORDS = 4
"""``--wording`` leaves out every request that shares a run of this many words with one of the
evaluation requests of :mod:`devkit.other_requests` (numbers spelled out), so that evaluation
keeps measuring wording the training never saw."""


def _word_runs(text: str) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    return {tuple(words[i : i + SHARED_WORDS]) for i in range(len(words) - SHARED_WORDS + 1)}


def training_wording(n: int, seed: int) -> list[Request]:
    """``n`` requests of :func:`devkit.command_wording.wording_requests` that share no run of
    :data:`SHARED_WORDS` words with an evaluation request."""
    held = set().union(*(_word_runs(r.text) for r in OTHER_REQUESTS))
    clean = [r for r in wording_requests(2 * n, seed) if not _word_runs(r.text) & held]
    if len(clean) < n:
        raise SystemExit(f"error: only {len(clean)} wording requests left after leaving out the evaluation's "
                         f"wording: ask for fewer than {n}")
    return clean[:n]


def render_clip(request: Request, split: str, index: int, seed: int, mixed: bool = False) -> tuple[np.ndarray, dict]:
    """The spoken request: a voice of the split (``mixed``: one of :data:`WORDING_VOICES`), lead/tail
    silence, a quiet background half the time."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index, 4242])
    held_out = split == "test"
    engine = WORDING_VOICES[int(rng.integers(len(WORDING_VOICES)))] if mixed else "espeak"
    if engine == "espeak":
        voice = S.draw_voice(rng, held_out)
        said, meta = S.speak(request.text, voice), {"voice": voice.name, "speed": voice.speed}
    else:
        stretch = float(rng.uniform(0.85, 1.2))
        said, meta = speak_with(engine, request.text, stretch), {"voice": engine, "stretch": round(stretch, 2)}
    x = S.set_rms_db(said, float(rng.uniform(-28.0, -18.0)))
    lead, tail = S.samples(float(rng.uniform(0.2, 0.6))), S.samples(float(rng.uniform(0.3, 0.7)))
    clip = np.zeros(len(x) + lead + tail, np.float32)
    S.add_at(clip, x, lead)
    if rng.random() < 0.5:
        cls = S.SOUND_CLASSES[int(rng.integers(len(S.SOUND_CLASSES)))]
        bg = S.synth_sound(cls, rng, S.seconds(len(clip)), held_out)
        snr = float(rng.uniform(15.0, 30.0))
        clip = S.mix_at_snr(clip, bg.audio, snr)
        meta.update(background=cls, snr_db=round(snr, 1))
    return S.limit_peak(clip.astype(np.float32)), meta


def write_clip(job: tuple[Request, str, int, int, str, bool]) -> dict:
    """Render one request (``render_clip``) into its WAV file; its metadata."""
    request, split, index, seed, path, mixed = job
    clip, meta = render_clip(request, split, index, seed, mixed)
    sf.write(path, clip, S.SR, subtype="PCM_16")
    return meta


def target_of(request: Request) -> str:
    """What the model should answer: the protocol's JSON call, or the short answer."""
    if request.tool is None:
        return str(request.answer)
    return json.dumps({"name": request.tool, "arguments": request.args}, ensure_ascii=False)


def assistant_prompt(model_dir: str | None) -> str:
    """The first-turn prompt of the default voice assistant on salmonn-mini."""
    import tempfile

    from salmonn_agent.agent.actions import ActionsConfig, build_actions
    from salmonn_agent.agent.audio_refs import WindowStore
    from salmonn_agent.agent.policy import ActionGate, ActionPolicy
    from salmonn_agent.agent.runtime import VoiceAgent
    from salmonn_agent.chat_model import ChatSALMONN
    from salmonn_agent.registry import load_model

    model = load_model(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        actions = [t for t in build_actions(ActionsConfig(notes_path=Path(tmp) / "notes.txt")) if t.name in ASSISTANT_TOOLS]
        agent = VoiceAgent(ChatSALMONN(client=model, model="salmonn-mini"), actions=actions,
                           gate=ActionGate(ActionPolicy()), store=WindowStore())
        silence = SimpleNamespace(samples=np.zeros(S.SR // 2, np.float32), sample_rate=S.SR)
        return agent.rendered_prompt(silence)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--valid", type=int, default=48)
    parser.add_argument("--test", type=int, default=120)
    parser.add_argument("--model", help="a salmonn-mini model directory for the prompt (default: salmonn-mini)")
    parser.add_argument("--workers", type=int, default=1, help="processes that render the clips (1)")
    parser.add_argument("--wording", action="store_true",
                        help="train split only: the requests of devkit.command_wording (many wordings, chit-chat), "
                             "said by WORDING_VOICES (needs flite, festival's kal/ked voices and hibari-tts)")
    args = parser.parse_args(argv)
    if args.wording and (args.valid or args.test):
        parser.error("--wording makes training data only: give --valid 0 --test 0")
    if not S.espeak_available():
        print("error: espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    prompt = assistant_prompt(args.model)
    summary: dict = {"seed": args.seed, "prompt": prompt, "wording": args.wording, "splits": {}}
    for split, n in (("train", args.train), ("valid", args.valid), ("test", args.test)):
        folder = args.out / "audio" / split
        folder.mkdir(parents=True, exist_ok=True)
        requests = training_wording(n, args.seed) if args.wording else sample_requests(split, n, args.seed)
        jobs = [(request, split, index, args.seed, str(folder / f"{split}_{index:05d}.wav"), args.wording)
                for index, request in enumerate(requests)]
        if args.workers > 1 and len(jobs) > 1:
            context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with context.Pool(args.workers) as pool:
                metas = pool.map(write_clip, jobs, chunksize=8)
        else:
            metas = [write_clip(job) for job in jobs]
        items = [{"path": str(Path(path).relative_to(args.out)), "text": target_of(request), "task": "assistant",
                  "prompt": prompt, "tool": request.tool, "args": request.args, "answer": request.answer,
                  "transcript": request.text, **meta}
                 for (request, _, _, _, path, _), meta in zip(jobs, metas)]
        (args.out / f"assistant_{split}.json").write_text(json.dumps({"annotation": items}, indent=1))
        summary["splits"][split] = {"items": len(items), "kinds": dict(Counter(i["tool"] or "answer" for i in items))}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["splits"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
