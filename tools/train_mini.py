"""Train salmonn-mini, the embedded default model, from scratch: one command, reproducible.

Steps (each skipped when its output already exists, so an interrupted run resumes):
1. prepare the frozen base parts (Whisper tiny.en, SmolLM2-135M-Instruct) in the user cache;
2. generate the synthetic dataset (``tools/make_mini_data.py``, seed 0) into ``runs/mini/data``
   plus the small validation subsets the stage configs use;
3. build the untrained model (``runs/mini/init``, seed 0);
4. train the stages with ``salmonn-agent train``: ``examples/mini/stage_align.yaml`` (the Q-Former
   and projection alone, CTC-aligned to the LLM's input embeddings of what each clip says and
   sounds like: ``run.objective: ctc``, see ``salmonn_agent/training/alignment.py``; it replaces
   SALMONN's LLM-driven pretraining stage, which did not teach a small Q-Former to hear words on a
   CPU budget), ``stage2.yaml`` and ``stage2b.yaml`` (instruction tuning with LoRA, two passes),
   ``stage_assistant.yaml`` and ``stage_assistant2.yaml`` (the voice assistant's spoken requests,
   answered with tool calls, two passes; the data comes from ``tools/make_assistant_data.py`` into
   ``runs/mini/assistant``; LoRA only), ``stage2c.yaml`` (instruction tuning again, weighted to
   the sound, background and speech-presence questions: :data:`SOUND_FOCUS`),
   ``stage_assistant3.yaml`` (the spoken requests again, LoRA only) and ``stage3.yaml``
   (activation tuning; LoRA only);
5. export the trained parts (float16) to ``salmonn_agent/mini/weights/salmonn-mini.safetensors``,
   the file the package ships.

The shipped weights then had one more stage on a GPU, ``tools/train_mini_gpu.py`` (from
``runs/mini/stage3/model``), and are the average of its result and stage 3's:
``--export-from runs/mini/stage_gpu/model --blend-with runs/mini/stage3/model`` (weight 0.5) writes
them into the package. The GPU stage alone reached the best WER and tool calls but fell below the
sound and speech-presence bars; the average keeps most of both (README, salmonn-mini).

Then the hint stages, ``--hint-stage`` (``examples/mini/stage_hints.yaml``, then
``stage_hints2.yaml`` to ``stage_hints4.yaml``: :data:`HINT_ROUNDS`), from the weights in the
package with the transcript and tag hints on: each stage's candidates' transcripts and tags go
into the feature cache first (``salmonn-agent train --cache-only``), and its mix keeps only
targets that agree with them (:func:`_relayed`). The later stages add short fragments and runs
of sentences in voices other than espeak-ng's, and "is anyone speaking?" of music
(:func:`_hint2_pool`).

Then the wording stage, ``--wording-stage`` (``examples/mini/stage_wording.yaml``, from
``stage_hints4``'s result): the voice assistant's spoken requests in many wordings and voices
(``tools/make_assistant_data.py --wording``), every target agreeing with Whisper's transcript
(:data:`WORDING`). Its result averaged with stage_hints4's was exported next:
``--export-from runs/mini/stage_wording/model --blend-with runs/mini/stage_hints4/model``.

Then the units stage, ``--units-stage`` (``examples/mini/stage_units.yaml``, from those exported
weights): the wording stage's mix with the timer tools' new schema in every prompt and each
timer's target in the units its request said (:func:`_units_mix`). The shipped weights are its
checkpoint at step 60: ``--export-from runs/mini/stage_units/checkpoints/step_00000060``.

Usage: python tools/train_mini.py [--skip-export | --hint-stage | --wording-stage | --units-stage
       | --export-from MODEL_DIR [--blend-with MODEL_DIR] [--blend-weight 0.5]]
On a 2-core CPU the shipped run took about four hours, on a machine shared with other jobs:
alignment 1,200 steps at batch 16 (62 min; its first epoch also fills the encoder-feature cache),
stage 2 400 steps at batch 8 (41 min, about 6.2 s a step), stage 2b 400 more (53 min; about 5.7 s a
step when nothing else ran), the assistant stage 50 steps at batch 4 (15 min) and 100 more (28 min),
stage 2c 250 steps at batch 8 (32 min; about 6 s a step alone), the third assistant pass 50 steps
(17 min), stage 3 12 steps (2 min).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from salmonn_agent.mini.shipped import HINTS_METADATA

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "salmonn_agent" / "mini" / "weights" / "salmonn-mini.safetensors"


def _say(message: str) -> None:
    print(f"[train_mini] {message}", file=sys.stderr, flush=True)


def _validation_subsets(data: Path) -> None:
    """Small fixed validation sets: decoding all of valid.json at every check would dominate."""
    entries = json.loads((data / "valid.json").read_text())["annotation"]
    by_task: dict[str, list[dict]] = {}
    for entry in entries:
        by_task.setdefault(entry["task"], []).append(entry)
    rng = random.Random(0)
    small = rng.sample(by_task["asr"], 24) + rng.sample(by_task["audiocaption"], 16)
    rng = random.Random(1)
    mix = rng.sample(by_task["asr"], 16) + rng.sample(by_task["QA"], 16) + rng.sample(by_task["speech_query"], 8)
    (data / "valid_small.json").write_text(json.dumps({"annotation": small}))
    (data / "valid_mix.json").write_text(json.dumps({"annotation": mix}))


# The word each sound class is aligned to (one or few SmolLM2 tokens, see training/alignment.py).
ALIGN_WORDS = {"alarm": "alarm", "siren": "siren", "knocking": "knocking", "ticking": "ticking", "rain": "rain",
               "dog_bark": "dog", "doorbell": "doorbell", "music": "music", "birdsong": "birds", "engine": "engine"}


def alignment_target(entry: dict) -> tuple[str, str]:
    """The CTC target text and task name of one clip, from its synthesis metadata.

    ``man``/``woman`` for a speaker, the class word of a sound (once per event when the events
    were counted, else once), then the transcript: everything the questions ask about, in words.
    """
    words = []
    if entry.get("speaker_gender") in ("male", "female"):
        words.append("man" if entry["speaker_gender"] == "male" else "woman")
    if entry.get("sound_class"):
        words.extend([ALIGN_WORDS[entry["sound_class"]]] * int(entry.get("count") or 1))
    if entry.get("transcript"):
        words.append(entry["transcript"])
        task = "align_speech"
    else:
        task = "align_sound" if entry.get("sound_class") else "align_silence"
    return " ".join(words), task


def _alignment_data(data: Path) -> None:
    """``{train,valid,test}_align.json``: every distinct clip once, with its CTC target (the test
    file is for diagnosis: ``salmonn-agent evaluate examples/mini/stage_align.yaml --split test
    --set datasets.test_ann_path=../../runs/mini/data/test_align.json``)."""
    for split in ("train", "valid", "test"):
        entries, seen = [], set()
        for entry in json.loads((data / f"{split}.json").read_text())["annotation"]:
            if entry["path"] in seen or entry["task"] == "audio_story_telling":
                continue
            seen.add(entry["path"])
            text, task = alignment_target(entry)
            entries.append({"path": entry["path"], "text": text, "task": task, "prompt": "<SpeechHere>"})
        (data / f"{split}_align.json").write_text(json.dumps({"annotation": entries}))


# Stage 2c's items per kind: every sound, background and speech-presence question (the skills
# below their bars after the assistant stages), with enough of the rest to keep them.
SOUND_FOCUS = {"qa_sound": None, "qa_background": None, "qa_presence": None, "asr_clean": 250, "asr_noisy": 250,
               "cap_sound": 150, "cap_mix": 150, "query": 200, "qa_gender": 100, "qa_count": 100}


def _sound_focus_data(data: Path) -> None:
    """``train_2c.json`` (see :data:`SOUND_FOCUS`; ``None``: all of a kind) and ``valid_sound.json``
    (the validation split's sound, background and presence questions)."""
    by_kind: dict[str, list[dict]] = {}
    for entry in json.loads((data / "train.json").read_text())["annotation"]:
        by_kind.setdefault(entry.get("kind") or entry["task"], []).append(entry)
    rng = random.Random(5)
    chosen = [e for kind, n in SOUND_FOCUS.items()
              for e in (by_kind[kind] if n is None else rng.sample(by_kind[kind], n))]
    rng.shuffle(chosen)
    (data / "train_2c.json").write_text(json.dumps({"annotation": chosen}))
    valid = [e for e in json.loads((data / "valid.json").read_text())["annotation"]
             if e.get("kind") in ("qa_sound", "qa_background", "qa_presence")]
    (data / "valid_sound.json").write_text(json.dumps({"annotation": valid}))


def _assistant_data(runs: Path) -> None:
    """The voice-assistant items, mixed with as many ordinary instruction items."""
    out = runs / "assistant"
    if not (out / "summary.json").is_file():
        _say("generating the voice-assistant requests")
        subprocess.run([sys.executable, str(ROOT / "tools" / "make_assistant_data.py"), str(out), "--seed", "0",
                        "--model", str(runs / "init")],
                       check=True, stdout=subprocess.DEVNULL)
    assistant = _entries(out, "assistant_train.json")
    rng = random.Random(3)
    mixed = assistant + rng.sample(_entries(runs / "data", "train.json"), len(assistant))
    rng.shuffle(mixed)
    (out / "assistant_mix.json").write_text(json.dumps({"annotation": mixed}))


TRANSCRIPT_MIX = {"broad_asr": 800, "ordinary": 800}
"""Items of the transcript stage's mix: broad-text speech recognition (tools/make_broad_asr.py) and
ordinary instruction items (no stories). The voice assistant's requests are left out: their
prompts are five times longer, and a step with one of them took ten times as long on 2 cores."""


def _entries(directory: Path, file: str) -> list[dict]:
    """The annotations of ``directory/file`` with absolute audio paths."""
    items = json.loads((directory / file).read_text())["annotation"]
    return [dict(item, path=os.path.abspath(directory / item["path"])) for item in items]


def _whole_batches(items: list[dict], batch_size: int) -> list[list[dict]]:
    """``items`` cut into batches of ``batch_size`` in order; a last, shorter batch is left out."""
    return [items[i : i + batch_size] for i in range(0, len(items) - batch_size + 1, batch_size)]


def _cache_hints(runs: Path, config: Path, name: str) -> Path:
    """Put the encoder features, transcripts and tags of ``{name}_pool.json``'s items into the
    feature cache (``salmonn-agent train CONFIG --cache-only``); the cache folder they went to."""
    pool = json.loads((runs / f"{name}_pool.json").read_text())["annotation"]
    _say(f"computing the transcripts and tags of {len(pool)} candidate items")
    subprocess.run([sys.executable, "-m", "salmonn_agent.cli", "train", str(config), "--cache-only",
                    "--set", f"datasets.train_ann_path=../../runs/mini/{name}_pool.json"], check=True)
    key = _cache_key(pool[0])
    return next(f.parent for f in (runs / "cache").glob(f"*/{key}.pt"))


def _transcript_data(runs: Path) -> None:
    """``transcript_mix.json`` and ``transcript_valid.json`` for ``stage_transcript.yaml``."""
    broad = runs / "broad"
    if not (broad / "train.json").is_file():
        _say("generating the broad-text speech recognition data")
        subprocess.run([sys.executable, str(ROOT / "tools" / "make_broad_asr.py"), str(broad)], check=True)

    rng = random.Random(11)
    ordinary = [e for e in _entries(runs / "data", "train.json") if e["task"] != "audio_story_telling"]
    mix = (rng.sample(_entries(broad, "train.json"), TRANSCRIPT_MIX["broad_asr"])
           + rng.sample(ordinary, TRANSCRIPT_MIX["ordinary"]))
    rng.shuffle(mix)
    (runs / "transcript_mix.json").write_text(json.dumps({"annotation": mix}))
    valid = _entries(broad, "valid.json")[:40]
    (runs / "transcript_valid.json").write_text(json.dumps({"annotation": valid}))


TAG_QUESTIONS = ("What sound is this?", "What do you hear?", "Name the sound in this clip.",
                 "Which sound can you hear? Answer briefly.")
"""Questions of the tag-reading items (see :func:`_tag_reading_data`)."""
TAG_READING_KINDS = ("cap_sound", "qa_sound")
"""The synthetic items whose clips are sounds without speech."""


def _tag_reading_data(runs: Path) -> None:
    """``tag_reading_mix.json`` for ``stage_transcript2.yaml``: the sound-only clips of the synthetic
    data asked what they are, answered with YAMNet's top event tag (so that the LLM learns to name
    what the tagger heard rather than one of the ten synthesized classes), beside broad-text speech
    recognition and the other ordinary items."""
    from salmonn_agent.audio import load_audio
    from salmonn_agent.model.hints import PARENT_TAGS
    from salmonn_agent.sound_tags import SoundTagger

    tagger = SoundTagger.load()
    rng = random.Random(13)
    ordinary = [e for e in _entries(runs / "data", "train.json") if e["task"] != "audio_story_telling"]
    sounds = [e for e in ordinary if e.get("kind") in TAG_READING_KINDS]
    reading = []
    for entry in rng.sample(sounds, 400):
        events = tagger.events(load_audio(entry["path"]), top_k=3, min_score=0.2)
        specific = [t for t in events if t.label not in PARENT_TAGS] or events
        if specific:
            reading.append({"path": entry["path"], "task": "QA", "Q": rng.choice(TAG_QUESTIONS),
                            "text": f"{specific[0].label}.", "kind": "qa_tag_reading"})
    others = [e for e in ordinary if e.get("kind") not in TAG_READING_KINDS]
    mix = reading + rng.sample(_entries(runs / "broad", "train.json"), 400) + rng.sample(others, 400)
    rng.shuffle(mix)
    (runs / "tag_reading_mix.json").write_text(json.dumps({"annotation": mix}))
    _say(f"tag-reading mix: {len(reading)} tag-reading items, {len(mix)} in all")


ALL_TASKS_MIX = {"assistant_batches": 40, "broad_asr": 500, "ordinary": 700}
"""The third transcript stage's mix (besides every tag-reading item): whole batches of the voice
assistant's spoken requests (their prompts are five times longer, so they share batches instead of
padding short items to their length), broad-text speech recognition and ordinary items."""


def _all_tasks_data(runs: Path, batch_size: int = 8) -> None:
    """``all_tasks_mix.json`` for ``stage_transcript3.yaml``, laid out batch by batch (the stage
    reads it in file order): every task of the recipe at once, with the hints and the speech gate.

    Items whose encoder features and hints are already in the feature cache are taken first, since
    computing Whisper's transcript costs about a second a clip on 2 cores."""
    cached_keys = {f.stem for f in (runs / "cache").glob("*/*.pt")}

    def cached_first(items: list[dict], count: int, rng: random.Random) -> list[dict]:
        rng.shuffle(items)
        items.sort(key=lambda e: _cache_key(e) not in cached_keys)  # stable: cached ones first, shuffled
        return items[:count]

    rng = random.Random(17)
    tag_mix = json.loads((runs / "tag_reading_mix.json").read_text())["annotation"]
    reading = [e for e in tag_mix if e.get("kind") == "qa_tag_reading"]
    ordinary = [e for e in _entries(runs / "data", "train.json") if e["task"] != "audio_story_telling"]
    others = (reading + cached_first(_entries(runs / "broad", "train.json"), ALL_TASKS_MIX["broad_asr"], rng)
              + cached_first(ordinary, ALL_TASKS_MIX["ordinary"], rng))
    rng.shuffle(others)
    assistant = rng.sample(_entries(runs / "assistant", "assistant_train.json"),
                           ALL_TASKS_MIX["assistant_batches"] * batch_size)
    batches = _whole_batches(others, batch_size) + _whole_batches(assistant, batch_size)
    rng.shuffle(batches)
    mix = [item for batch in batches for item in batch]
    (runs / "all_tasks_mix.json").write_text(json.dumps({"annotation": mix}))
    fresh = sum(_cache_key(e) not in cached_keys for e in mix)
    _say(f"all-tasks mix: {len(batches)} batches of {batch_size}, {len(reading)} tag-reading items, "
         f"{len(assistant)} spoken requests, {fresh} items not in the feature cache yet")


HINT_POOL = {"broad_asr": 800, "natural_asr": 700, "assistant": 400, "tag_reading": 200,
             "ordinary": {"asr_clean": 200, "asr_noisy": 200, "query": 150, "cap_sound": 100, "qa_sound": 100,
                          "qa_presence": 200, "cap_mix": 80, "qa_background": 80, "qa_gender": 80,
                          "cap_speech": 60, "qa_count": 60, "cap_silence": 40},
             "more_tag_reading": 250, "sound_presence": 200}
"""The hint stage's candidate items, whose transcripts and tags are computed before any is chosen
(:func:`_hint_pool`): broad-text speech recognition (espeak-ng and flite voices, and festival
and hibari-tts voices: ``natural_asr``), the voice assistant's spoken requests, sound-only clips
for tag reading and for "is anyone speaking?", and the ordinary synthetic items per kind."""
HINT_BATCHES = {"assistant": 50, "others": 310}
"""Batches of 8 in the hint stage's mix: spoken requests (whole batches: their prompts are five
times longer) and everything else."""
MAX_RELAY_WER = 0.5
"""A relayed transcript (see :func:`_relayed`) that differs from the truth by more word errors than
this is left out: the audio is too far from what Whisper heard."""
ESPEAK_TAUGHT = ("espeak",)
"""The engine whose voices salmonn-mini's audio tokens learned to hear (every earlier stage)."""
PRESENCE_QUESTIONS = ("Is anyone talking in this clip?", "Is someone speaking in this audio?",
                      "Does someone say something in this recording?", "Can you hear a person talking?",
                      "Is there any speech in the recording?", "Does this audio contain a human voice?")
"""The synthetic data's speech-presence questions, asked again of more clips (see :func:`_hint_mix`)."""


def _hint_pool(runs: Path) -> list[dict]:
    """``hint_pool.json``: the candidates of :data:`HINT_POOL`, absolute paths, each tagged with
    ``pool`` (its group)."""
    rng = random.Random(19)
    pool = [dict(e, pool="broad_asr") for e in rng.sample(_entries(runs / "broad", "train.json"), HINT_POOL["broad_asr"])]
    pool += [dict(e, pool="assistant")
             for e in rng.sample(_entries(runs / "assistant", "assistant_train.json"), HINT_POOL["assistant"])]
    by_kind: dict[str, list[dict]] = {}
    for entry in _entries(runs / "data", "train.json"):
        by_kind.setdefault(entry.get("kind"), []).append(entry)
    for kind, count in HINT_POOL["ordinary"].items():
        pool += [dict(e, pool=kind) for e in rng.sample(by_kind[kind], count)]
    taken = {e["path"] for e in pool}
    sounds = [e for kind in TAG_READING_KINDS for e in by_kind[kind] if e["path"] not in taken]
    pool += [dict(e, pool="tag_reading") for e in rng.sample(sounds, HINT_POOL["tag_reading"])]
    pool += [dict(e, pool="natural_asr")
             for e in rng.sample(_entries(runs / "broad_natural", "train.json"), HINT_POOL["natural_asr"])]
    taken = {e["path"] for e in pool}
    sounds = [e for e in sounds if e["path"] not in taken]
    extra = rng.sample(sounds, HINT_POOL["more_tag_reading"] + HINT_POOL["sound_presence"])
    pool += [dict(e, pool="tag_reading") for e in extra[: HINT_POOL["more_tag_reading"]]]
    pool += [dict(e, pool="sound_presence") for e in extra[HINT_POOL["more_tag_reading"]:]]
    (runs / "hint_pool.json").write_text(json.dumps({"annotation": pool}))
    return pool


HINT2_POOL = {"shaped_asr": 900, "music_presence": 400, "sound_presence": 300, "earlier": 1600}
"""The second hint stage's candidates (:func:`_hint2_pool`): speech recognition in festival's,
hibari-tts's and flite's voices of short fragments, single sentences and two or three sentences in
a row (``broad_shapes``); "is anyone speaking?" of every sound-only clip whose sound is music and
of more sound-only clips (the synthetic data has only about a hundred music clips without speech,
so :func:`_music_data` makes more); and a sample of the first stage's pool, so nothing learned there is lost."""
HINT2_BATCHES = {"assistant": 40, "others": 200}
"""Batches of 8 in the second hint stage's mix."""
MUSIC_CLIPS = 320
"""Synthesized music clips made for the second hint stage (:func:`_music_data`)."""
HINT_ROUNDS = (("hint2", "broad_shapes", 2), ("hint3", "broad_shapes2", 3), ("hint4", "broad_shapes3", 4))
"""The hint stages after the first, in order: the name of their pool, mix and config
(``stage_hints2.yaml`` to ``stage_hints4.yaml``), the folder of their new speech and its
``make_broad_asr.py`` seed. Each has :data:`HINT2_POOL`'s composition (new sentences, the same
kinds) and starts from the one before."""


def _music_data(runs: Path) -> None:
    """``runs/music``: :data:`MUSIC_CLIPS` clips of synthesized music alone (the training variants of
    ``devkit.sounds``), 3-10 s, a third of them over pink noise at 10-30 dB SNR, level -35 to -14 dBFS."""
    sys.path.insert(0, str(ROOT))
    from devkit import sounds as S

    out = runs / "music"
    if (out / "train.json").is_file():
        return
    rng = np.random.default_rng(31)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(MUSIC_CLIPS):
        sound = S.synth_sound("music", rng, float(rng.uniform(3.0, 10.0)))
        x = sound.audio
        if rng.random() < 1 / 3:
            x = S.mix_at_snr(x, S.pink_noise(rng, len(x)), float(rng.uniform(10.0, 30.0)))
        x = S.limit_peak(S.set_rms_db(x, float(rng.uniform(-35.0, -14.0))))
        rel = Path("audio") / f"music_{index:05d}.wav"
        S.write_wav(out / rel, x)
        items.append({"path": str(rel), "text": "Music.", "task": "audiocaption", "kind": "cap_sound",
                      "sound_class": "music", "sound_variant": sound.meta["variant"],
                      "duration": round(len(x) / S.SR, 3)})
    (out / "train.json").write_text(json.dumps({"annotation": items}))


def _hint2_pool(runs: Path, name: str = "hint2", shaped_dir: str = "broad_shapes", seed: int = 29) -> list[dict]:
    """``{name}_pool.json``: the candidates of :data:`HINT2_POOL`, absolute paths, each tagged with
    ``pool`` as in :func:`_hint_pool` (the speech of ``shaped_dir`` as ``natural_asr``)."""
    rng = random.Random(seed)
    earlier = json.loads((runs / "hint_pool.json").read_text())["annotation"]
    pool = [e for e in earlier if e["pool"] == "assistant"]
    pool += rng.sample([e for e in earlier if e["pool"] not in ("assistant", "sound_presence")], HINT2_POOL["earlier"])
    shaped = _entries(runs / shaped_dir, "train.json")
    pool += [dict(e, pool="natural_asr") for e in rng.sample(shaped, min(len(shaped), HINT2_POOL["shaped_asr"]))]
    sounds = [e for e in _entries(runs / "data", "train.json") if e.get("kind") in TAG_READING_KINDS + ("cap_silence",)]
    music = [e for e in sounds if e.get("sound_class") == "music"] + _entries(runs / "music", "train.json")
    others = [e for e in sounds if e.get("sound_class") != "music"]
    pool += [dict(e, pool="sound_presence") for e in rng.sample(music, min(len(music), HINT2_POOL["music_presence"]))]
    pool += [dict(e, pool="sound_presence") for e in rng.sample(others, HINT2_POOL["sound_presence"])]
    (runs / f"{name}_pool.json").write_text(json.dumps({"annotation": pool}))
    return pool


def _relayed(entry: dict, transcript: str, speech_heard: bool) -> dict | None:
    """One pool item as the hint stage trains it, or None when it would contradict its hints.

    Speech recognition of a voice the audio tokens never learned (flite, festival, hibari-tts)
    answers Whisper's own transcript, so the LLM learns to relay it where its audio tokens do not
    hear (items where Whisper is far from the truth are dropped). The synthetic data's espeak-ng
    items, which the audio tokens hear better than Whisper tiny.en does, keep their true targets;
    espeak-ng reading broad text (which neither hears well) is left out. "Is anyone speaking?" is
    kept only where the speech gate (:data:`salmonn_agent.model.hints.SPEECH_GATE`) agrees with
    the truth, so the answer follows whether a transcript is shown."""
    import jiwer

    from salmonn_agent.training.wer import normalize_transcript

    if entry.get("kind") == "qa_presence":
        return entry if speech_heard == bool(entry.get("transcript")) else None
    voice = str(entry.get("voice", ""))
    engine = voice.split(":")[0] if ":" in voice else "espeak"
    if entry["task"] != "asr":
        return entry
    if engine in ESPEAK_TAUGHT:
        return None if entry.get("kind") == "asr_broad" else entry
    heard = normalize_transcript(transcript) if speech_heard else ""
    if not heard or jiwer.wer(normalize_transcript(entry["text"]), heard) > MAX_RELAY_WER:
        return None
    return dict(entry, text=transcript.strip())


def _hint_mix(runs: Path, cache_dir: Path, name: str = "hint", batches_per_group: dict[str, int] = HINT_BATCHES,
              batch_size: int = 8) -> None:
    """``{name}_mix.json`` for ``stage_hints.yaml`` (``stage_hints2.yaml``: name ``hint2``) from the
    cached hints of ``{name}_pool.json`` (see :func:`_relayed`), laid out batch by batch (the stage
    reads it in file order)."""
    import torch

    from salmonn_agent.model.hints import PARENT_TAGS, SPEECH_TAGS, hears_speech
    from salmonn_agent.sound_tags import SoundTag

    pool = json.loads((runs / f"{name}_pool.json").read_text())["annotation"]
    rng = random.Random(23)
    kept: dict[str, list[dict]] = {"assistant": [], "others": []}
    dropped: dict[str, int] = {}
    for entry in pool:
        cached = torch.load(cache_dir / f"{_cache_key(entry)}.pt", weights_only=True)
        tags = [SoundTag(label=label, score=score) for label, score in cached.get("sound_tags", [])]
        speech_heard = hears_speech(tags)
        if entry["pool"] == "sound_presence" or (entry["pool"] == "natural_asr" and rng.random() < 0.25):
            # "is anyone speaking?" of a sound-only clip or a voice the audio tokens never learned
            said = entry["pool"] == "natural_asr"
            item = ({"path": entry["path"], "task": "QA", "Q": rng.choice(PRESENCE_QUESTIONS),
                     "text": "Yes." if said else "No.", "kind": "qa_presence", "pool": entry["pool"] + "_presence"}
                    if speech_heard == said else None)
            if item is not None:
                kept["others"].append(item)
            if entry["pool"] == "sound_presence":
                if item is None:
                    dropped["sound_presence"] = dropped.get("sound_presence", 0) + 1
                continue
        if entry["pool"] == "tag_reading":
            specific = [t.label for t in tags if t.score >= 0.2 and t.label not in PARENT_TAGS
                        and t.label not in SPEECH_TAGS]
            item = ({"path": entry["path"], "task": "QA", "Q": rng.choice(TAG_QUESTIONS),
                     "text": f"{specific[0]}.", "kind": "qa_tag_reading", "pool": "tag_reading"}
                    if specific else None)
        else:
            item = _relayed(entry, cached.get("whisper_transcript", ""), speech_heard)
        if item is None:
            dropped[entry["pool"]] = dropped.get(entry["pool"], 0) + 1
            continue
        kept["assistant" if entry["pool"] == "assistant" else "others"].append(item)
    batches = []
    for group, count in batches_per_group.items():
        items = kept[group]
        rng.shuffle(items)
        batches += _whole_batches(items[: count * batch_size], batch_size)
    rng.shuffle(batches)
    mix = [item for batch in batches for item in batch]
    (runs / f"{name}_mix.json").write_text(json.dumps({"annotation": mix}))
    counts: dict[str, int] = {}
    for item in mix:
        counts[item["pool"]] = counts.get(item["pool"], 0) + 1
    _say(f"{name} mix: {len(batches)} batches of {batch_size}; items per group {counts}; dropped {dropped}")


WORDING = {"clips": 900, "seed": 5, "earlier_assistant_batches": 20, "others": 480, "max_wer": 0.25}
"""The wording stage (:func:`_wording_stage`): spoken requests of :mod:`devkit.command_wording` in
several engines' voices (``tools/make_assistant_data.py --wording``), whole batches of the fourth
hint stage's spoken requests and a draw of its other items; an item is kept only where Whisper's
transcript is within ``max_wer`` of what was said (numbers spelled out), so every target agrees with
the transcript hint."""


def _wording_mix(runs: Path, cache_dir: Path, batch_size: int = 8) -> None:
    """``wording_mix.json`` for ``stage_wording.yaml`` (see :data:`WORDING`), batch by batch."""
    import jiwer
    import torch

    sys.path.insert(0, str(ROOT))
    from devkit.scoring import normalize

    from salmonn_agent.model.hints import hears_speech
    from salmonn_agent.sound_tags import SoundTag

    rng = random.Random(41)
    pool = json.loads((runs / "wording_pool.json").read_text())["annotation"]
    kept, dropped = [], 0
    for entry in pool:
        cached = torch.load(cache_dir / f"{_cache_key(entry)}.pt", weights_only=True)
        tags = [SoundTag(label=label, score=score) for label, score in cached.get("sound_tags", [])]
        heard = normalize(cached.get("whisper_transcript", "")) if hears_speech(tags) else ""
        if not heard or jiwer.wer(normalize(entry["transcript"]), heard) > WORDING["max_wer"]:
            dropped += 1
            continue
        kept.append(entry)
    earlier = json.loads((runs / "hint4_mix.json").read_text())["annotation"]
    assistant = [e for e in earlier if e["pool"] == "assistant"][: WORDING["earlier_assistant_batches"] * batch_size]
    others = rng.sample([e for e in earlier if e["pool"] != "assistant"], WORDING["others"])
    batches = []
    for items in (kept, assistant, others):  # like with like: the requests' prompts are five times longer
        rng.shuffle(items)
        batches += _whole_batches(items, batch_size)
    rng.shuffle(batches)
    mix = [item for batch in batches for item in batch]
    (runs / "wording_mix.json").write_text(json.dumps({"annotation": mix}))
    _say(f"wording mix: {len(batches)} batches of {batch_size}; {len(kept)} new requests kept, {dropped} dropped "
         f"(Whisper heard them otherwise), {len(assistant)} earlier requests, {len(others)} other items")


def _wording_stage(runs: Path) -> None:
    """Data and training of ``stage_wording.yaml`` (see :data:`WORDING`), from stage_hints4's result."""
    out = runs / "assistant_wording"
    if not (out / "assistant_train.json").is_file():
        _say("generating spoken requests in many wordings and voices")
        subprocess.run([sys.executable, str(ROOT / "tools" / "make_assistant_data.py"), str(out), "--wording",
                        "--train", str(WORDING["clips"]), "--valid", "0", "--test", "0",
                        "--seed", str(WORDING["seed"]), "--workers", "2"], check=True)
    config = ROOT / "examples" / "mini" / "stage_wording.yaml"
    if not (runs / "wording_mix.json").is_file():
        pool = [dict(e, pool="wording") for e in _entries(out, "assistant_train.json")]
        (runs / "wording_pool.json").write_text(json.dumps({"annotation": pool}))
        _wording_mix(runs, _cache_hints(runs, config, "wording"))
    if not (runs / "stage_wording" / "model" / "model.safetensors").is_file():
        _say("training stage_wording")
        subprocess.run([sys.executable, "-m", "salmonn_agent.cli", "train", str(config)], check=True)


def _units_mix(runs: Path) -> None:
    """``units_mix.json`` for ``stage_units.yaml``: the wording stage's mix, item for item and in its
    order, with every spoken request's prompt rendered anew (the timer tools' schema now takes
    hours, minutes and seconds that add up) and every timer's target in the units its request said
    (:func:`devkit.assistant_bank.spoken_timer_args`)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tools"))
    from make_assistant_data import assistant_prompt, target_of

    from devkit.assistant_bank import Request, spoken_timer_args

    mix = json.loads((runs / "wording_mix.json").read_text())["annotation"]
    old_prompts = {e["prompt"] for e in mix if e["task"] == "assistant"}
    if len(old_prompts) != 1:
        raise SystemExit(f"wording_mix.json's spoken requests have {len(old_prompts)} prompts, not one")
    prompt, timers = assistant_prompt(None), 0
    for entry in mix:
        if entry["task"] != "assistant":
            continue
        entry["prompt"] = prompt
        if entry["tool"] == "set_timer":
            args = spoken_timer_args(entry["args"]["seconds"], entry["transcript"], entry["args"].get("label"))
            entry["args"] = args
            entry["text"] = target_of(Request(entry["transcript"], "set_timer", args))
            timers += 1
    (runs / "units_mix.json").write_text(json.dumps({"annotation": mix}))
    _say(f"units mix: {len(mix)} items, {timers} timer targets in the units said")


def _units_stage(runs: Path, parts) -> None:  # parts: MiniParts
    """Data and training of ``stage_units.yaml`` from the shipped weights (see :func:`_units_mix`)."""
    _shipped_start(runs, parts, "units_start")
    if not (runs / "units_mix.json").is_file():
        _units_mix(runs)
    if not (runs / "stage_units" / "model" / "model.safetensors").is_file():
        _say("training stage_units")
        subprocess.run([sys.executable, "-m", "salmonn_agent.cli", "train",
                        str(ROOT / "examples" / "mini" / "stage_units.yaml")], check=True)


def _cache_key(entry: dict) -> str | None:
    """The feature cache's key of an annotation (see ``salmonn_agent.training.data.FeatureCache``)."""
    from salmonn_agent.training.data import FeatureCache

    return FeatureCache.key(dict(entry, expand_wav=entry.get("expand_wav", [])))


def _shipped_start(runs: Path, parts, name: str = "transcript_start") -> Path:  # parts: MiniParts
    """The shipped salmonn-mini weights in the model directory ``runs/name`` with
    ``speech_transcript`` and ``sound_tags`` set (written once: later stages start from what was
    shipped when it was made)."""
    from salmonn_agent.mini.model import mini_config
    from salmonn_agent.model.checkpoint import load_trainable
    from salmonn_agent.model.salmonn import SALMONN

    start = runs / name
    if not (start / "model.safetensors").is_file():
        config = mini_config(parts.whisper_dir, parts.llm_dir, hints=True)
        model = SALMONN.from_config(config, device="cpu")
        load_trainable(model, {k: v.float() for k, v in load_file(str(WEIGHTS)).items()}, "salmonn-mini")
        model.save_pretrained(start)
    return start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-export", action="store_true", help="do not write the package's weights file")
    parser.add_argument("--export-from", type=Path, metavar="MODEL_DIR",
                        help="only write this model directory's (or training checkpoint's) trainable parameters as "
                             "the package's weights")
    parser.add_argument("--blend-with", type=Path, metavar="MODEL_DIR",
                        help="with --export-from: average its parameters with this model directory's")
    parser.add_argument("--transcript-stage", action="store_true",
                        help="only train the transcript stages (stage_transcript*.yaml) from the shipped weights (speech_transcript and sound_tags on)")
    parser.add_argument("--hint-stage", action="store_true",
                        help="only train the hint stages (stage_hints*.yaml) from the shipped weights (speech_transcript "
                             "and sound_tags on), every target agreeing with the hints")
    parser.add_argument("--wording-stage", action="store_true",
                        help="only train the wording stage (stage_wording.yaml) from stage_hints4's result: spoken "
                             "requests in many wordings and voices")
    parser.add_argument("--units-stage", action="store_true",
                        help="only train the units stage (stage_units.yaml) from the shipped weights: the wording "
                             "stage's mix with timers in the units said")
    parser.add_argument("--blend-weight", type=float, default=0.5,
                        help="the weight of --export-from's parameters in the average (0.5)")
    args = parser.parse_args()
    if args.export_from is not None:
        sources = [args.export_from] + ([args.blend_with] if args.blend_with else [])
        files = [_weights_file(source) for source in sources]
        for source, file in zip(sources, files):
            if file is None:
                parser.error(f"{source} holds neither model.safetensors nor trainable.safetensors: give a model "
                             "directory (a training run's output_dir/model) or one of its checkpoints "
                             "(output_dir/checkpoints/step_N)")
        if not 0.0 <= args.blend_weight <= 1.0:
            parser.error("--blend-weight must be between 0 and 1")
        blend = (files[1], args.blend_weight) if args.blend_with else None
        export_weights(files[0], WEIGHTS, blend)
        _say(f"wrote {WEIGHTS} from {', '.join(map(str, sources))}")
        return 0
    if args.blend_with is not None:
        parser.error("--blend-with needs --export-from")
    runs = ROOT / "runs" / "mini"  # where examples/mini/stage*.yaml read and write

    from salmonn_agent.mini.model import mini_config
    from salmonn_agent.mini.parts import prepare_mini_parts
    from salmonn_agent.model.salmonn import SALMONN

    parts = prepare_mini_parts(progress=_say)
    if args.hint_stage:
        _hint_stage(runs, parts)
        return 0
    if args.wording_stage:
        _wording_stage(runs)
        return 0
    if args.units_stage:
        _units_stage(runs, parts)
        return 0
    if args.transcript_stage:
        _shipped_start(runs, parts)
        _transcript_data(runs)
        for stage in ("stage_transcript", "stage_transcript2", "stage_transcript3"):
            if (runs / stage / "model" / "model.safetensors").is_file():
                continue
            if stage == "stage_transcript2":
                _tag_reading_data(runs)
            if stage == "stage_transcript3":
                _all_tasks_data(runs)
            _say(f"training {stage}")
            subprocess.run([sys.executable, "-m", "salmonn_agent.cli", "train",
                            str(ROOT / "examples" / "mini" / f"{stage}.yaml")], check=True)
        return 0
    data = runs / "data"
    if not (data / "summary.json").is_file():
        _say("generating the synthetic dataset")
        subprocess.run([sys.executable, str(ROOT / "tools" / "make_mini_data.py"), str(data), "--seed", "0"],
                       check=True, stdout=subprocess.DEVNULL)
    _validation_subsets(data)
    _alignment_data(data)
    _sound_focus_data(data)
    init = runs / "init"
    if not (init / "model.safetensors").is_file():
        torch.manual_seed(0)
        SALMONN.from_config(mini_config(parts.whisper_dir, parts.llm_dir, hints=False),
                            device="cpu").save_pretrained(init)
    for stage in ("stage_align", "stage2", "stage2b", "stage_assistant", "stage_assistant2", "stage2c",
                  "stage_assistant3", "stage3"):
        if (runs / stage / "model" / "model.safetensors").is_file():
            continue
        if stage == "stage_assistant":  # its data also serves stage_assistant2
            _assistant_data(runs)
        _say(f"training {stage}")
        subprocess.run([sys.executable, "-m", "salmonn_agent.cli", "train",
                        str(ROOT / "examples" / "mini" / f"{stage}.yaml")], check=True)
    if not args.skip_export:
        export_weights(runs / "stage3" / "model" / "model.safetensors", WEIGHTS)
        _say(f"wrote {WEIGHTS}")
    return 0


def _hint_stage(runs: Path, parts) -> None:  # parts: MiniParts
    """Data and training of ``stage_hints.yaml`` and of the stages of :data:`HINT_ROUNDS` after it:
    each pool's transcripts and tags go into the feature cache first (``salmonn-agent train
    --cache-only``), then the mix is chosen from them."""
    _shipped_start(runs, parts)
    if not (runs / "broad" / "train.json").is_file():
        _say("generating the broad-text speech recognition data")
        subprocess.run([sys.executable, str(ROOT / "tools" / "make_broad_asr.py"), str(runs / "broad")], check=True)
    if not (runs / "broad_natural" / "train.json").is_file():
        _say("generating broad-text speech recognition in festival's and hibari-tts's voices")
        subprocess.run([sys.executable, str(ROOT / "tools" / "make_broad_asr.py"), str(runs / "broad_natural"),
                        "--voices", "festival,hibari", "--train", "700", "--valid", "0", "--seed", "1"], check=True)
    if not (runs / "assistant" / "summary.json").is_file():
        _say("generating the voice-assistant requests")
        subprocess.run([sys.executable, str(ROOT / "tools" / "make_assistant_data.py"), str(runs / "assistant"),
                        "--seed", "0"], check=True, stdout=subprocess.DEVNULL)
    _hint_round(runs, "hint", functools.partial(_hint_pool, runs), HINT_BATCHES)
    _music_data(runs)
    for name, shaped_dir, data_seed in HINT_ROUNDS:
        if not (runs / shaped_dir / "train.json").is_file():
            _say(f"generating fragments, sentences and runs of sentences in festival's, hibari-tts's and flite's voices "
                 f"for {name}")
            subprocess.run([sys.executable, str(ROOT / "tools" / "make_broad_asr.py"), str(runs / shaped_dir),
                            "--voices", "festival,hibari,flite", "--train", "900", "--valid", "0",
                            "--seed", str(data_seed), "--fragments", "0.2", "--joined", "0.3"], check=True)
        _hint_round(runs, name, functools.partial(_hint2_pool, runs, name, shaped_dir, 27 + data_seed), HINT2_BATCHES)


def _hint_round(runs: Path, name: str, make_pool: Callable[[], list[dict]], batches: dict[str, int]) -> None:
    """One hint stage, ``stage_{name}s.yaml`` (``hint`` -> ``stage_hints.yaml``): its pool from
    ``make_pool``, whose transcripts and tags go into the feature cache first, then its mix
    (:func:`_hint_mix`), then its training; each step skipped when its output exists."""
    stage = f"stage_{name.replace('hint', 'hints')}"
    config = ROOT / "examples" / "mini" / f"{stage}.yaml"
    if not (runs / f"{name}_mix.json").is_file():
        make_pool()  # writes {name}_pool.json
        _hint_mix(runs, _cache_hints(runs, config, name), name, batches)
    if not (runs / stage / "model" / "model.safetensors").is_file():
        _say(f"training {stage}")
        subprocess.run([sys.executable, "-m", "salmonn_agent.cli", "train", str(config)], check=True)


def export_weights(source: Path, target: Path, blend: tuple[Path, float] | None = None) -> None:
    """Write a model's trainable parameters as float16 safetensors (the shipped file).

    ``blend=(other, weight)``: write ``weight * source + (1 - weight) * other`` instead, parameter by
    parameter (both files must hold the same names and shapes: two trainings of one model).
    """
    tensors = load_file(str(source))
    if blend is not None:
        other = load_file(str(blend[0]))
        if {k: v.shape for k, v in other.items()} != {k: v.shape for k, v in tensors.items()}:
            raise SystemExit(f"{source} and {blend[0]} do not hold the same parameters; they cannot be averaged")
        tensors = {k: blend[1] * v.float() + (1.0 - blend[1]) * other[k].float() for k, v in tensors.items()}
    tensors = {k: v.to(torch.float16).contiguous() for k, v in tensors.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "model": "salmonn-mini"}
    if _reads_hints(_config_dir(source)) or (blend is not None and _reads_hints(_config_dir(blend[0]))):
        metadata[HINTS_METADATA] = "1"
    save_file(tensors, str(target), metadata=metadata)


def _weights_file(directory: Path) -> Path | None:
    """The parameters of a model directory (``model.safetensors``) or of a training checkpoint
    (``output_dir/checkpoints/step_N/trainable.safetensors``: the same names), else None."""
    for name in ("model.safetensors", "trainable.safetensors"):
        if (directory / name).is_file():
            return directory / name
    return None


def _config_dir(weights: Path) -> Path:
    """Where the model config of a weights file lies: beside a model directory's file; for a
    checkpoint's, in its run's ``output_dir/model``."""
    if weights.name == "trainable.safetensors":
        return weights.parent.parent.parent / "model"
    return weights.parent


def _reads_hints(model_dir: Path) -> bool:
    """Whether a model directory's config turns the transcript hint on (see mini_config)."""
    config = model_dir / "salmonn_config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get("speech_transcript"))


if __name__ == "__main__":
    raise SystemExit(main())
