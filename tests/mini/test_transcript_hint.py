"""The speech_transcript and sound_tags options: what Whisper tiny.en and YAMNet heard rides after the audio tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from salmonn_agent.errors import ConfigError
from devkit import scoring
from salmonn_agent.mini.model import mini_config
from salmonn_agent.model.inputs import EncodedAudio
from salmonn_agent.model.salmonn import SALMONN
from salmonn_agent.model.hints import hint_text
from salmonn_agent.sound_tags import SoundTag

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream"
TEXTS = {item["file"]: item["text"] for item in json.loads((FIXTURES / "speech.json").read_text())}


@pytest.fixture(scope="module")
def hinted(mini_parts, mini_cache) -> SALMONN:
    import os

    os.environ.setdefault("SALMONN_AGENT_CACHE", str(mini_cache))
    config = mini_config(mini_parts.whisper_dir, mini_parts.llm_dir, hints=True)
    assert config.speech_transcript and config.sound_tags
    return SALMONN.from_config(config, device="cpu")


def test_clips_carry_whispers_transcript(hinted):
    files = ["lights.flac", "weather.flac"]
    encoded = hinted.encode_audio([str(FIXTURES / f) for f in files])
    transcripts = [e.transcript for e in encoded]
    assert scoring.corpus_wer([TEXTS[f] for f in files], transcripts) <= 0.25, transcripts
    assert all(e.sound_tags and e.sound_tags[0].label == "Speech" for e in encoded)
    # The decoder shares the speech encoder: its weights are not registered (or saved) twice.
    names = [name for name, _ in hinted.named_parameters()]
    assert not any(name.startswith("transcriber.whisper.model.encoder") for name in names)
    assert not any(name.startswith("transcriber") for name in hinted.trainable_state_dict())


def test_the_fast_decoding_loop_writes_the_tokens_whispers_generate_writes(hinted):
    # The transcript is decoded by a loop of its own (faster on a CPU); it must not change a word.
    import numpy as np

    from salmonn_agent.audio import load_audio

    clips = [load_audio(str(FIXTURES / f)) for f in sorted(TEXTS)]
    clips.append(np.concatenate(clips[:3]))  # a longer clip: a row that ends later than the others
    with torch.no_grad():
        states = hinted.speech_encoder(hinted.features(clips)).last_hidden_state
    transcriber = hinted.transcriber
    ours = transcriber.greedy_ids(states)
    theirs = transcriber._generate(states)
    config = transcriber.whisper.generation_config
    if int(theirs[0, 0]) == config.decoder_start_token_id:  # transformers versions that return the start tokens
        theirs = theirs[:, 2:]
    width = max(ours.shape[1], theirs.shape[1])
    eos = config.eos_token_id
    pad = lambda ids: torch.nn.functional.pad(ids, (0, width - ids.shape[1]), value=eos)  # noqa: E731
    assert torch.equal(pad(ours), pad(theirs))
    assert transcriber.transcribe(states) == [t.strip() for t in transcriber.tokenizer.batch_decode(theirs, skip_special_tokens=True)]


def test_a_clip_longer_than_the_encoder_context_is_transcribed_in_whispers_native_window(hinted):
    # salmonn-mini's encoder reads 10 s chunks; a longer clip's transcript must not be cut (or loop)
    # at a chunk's end: it is Whisper tiny.en's own transcript over its 30 s window.
    import numpy as np
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from salmonn_agent.audio import load_audio

    files = sorted(TEXTS)[:6]
    gap = np.zeros(8000, dtype=np.float32)
    clip = np.concatenate([part for f in files for part in (load_audio(str(FIXTURES / f)), gap)])
    assert len(clip) > hinted.chunk_samples  # more than one encoder chunk
    transcript = hinted.encode_samples([clip])[0].transcript
    whisper_dir = hinted.config.whisper
    processor = WhisperProcessor.from_pretrained(whisper_dir)
    whisper = WhisperForConditionalGeneration.from_pretrained(whisper_dir).eval()
    with torch.no_grad():
        ids = whisper.generate(processor(clip, sampling_rate=16000, return_tensors="pt").input_features,
                               num_beams=1, do_sample=False, max_new_tokens=120)
    assert transcript == processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
    assert scoring.corpus_wer([" ".join(TEXTS[f] for f in files)], [transcript]) <= 0.2, transcript
    assert not any(name.endswith("native_positions") for name in hinted.state_dict())


def test_a_long_clip_without_speech_is_not_read_again(hinted, monkeypatch):
    # Its transcript never reaches the prompt, so the second encoder pass would be wasted.
    import numpy as np

    from salmonn_agent.model.hints import hears_speech

    def refuse(clips):
        raise AssertionError("a clip without speech was transcribed again")

    monkeypatch.setattr(hinted.transcriber, "transcribe_native", refuse)
    seconds = np.arange(12 * 16000, dtype=np.float32) / 16000
    tone = (0.1 * np.sin(2 * np.pi * 440 * seconds)).astype(np.float32)
    encoded = hinted.encode_samples([tone])[0]
    assert not hears_speech(encoded.sound_tags)
    assert "Transcript: (no speech)" in hint_text(encoded.transcript, encoded.sound_tags)


@pytest.mark.parametrize("text, looped", [
    ("Press 1 to call this number. Press 1 to call this number. Press 1 to call this number.", True),
    ("Press 4 for the previous message. Press 4 for the previous message.", True),
    ("Use the 7 key for Q. Use the 7 key for Q.", True),
    ("to 8 to 8 to 8 to 8 to 8 to 8 to 8 to 8 to 8 to 8 to 8 to 8 to 8 to 8", True),
    ("Set a timer for ten minutes.", False),
    ("No, no, no, I said the blue one.", False),
    ("Press 1 to mute or unmute yourself, 2 to lock or unlock the conference, 3 to eject the last user.", False),
    ("", False),
])
def test_whispers_repetition_loop_is_recognized(text, looped):
    from salmonn_agent.model.transcript import looks_looped

    assert looks_looped(text) is looped


def test_prompt_holds_the_transcript_right_after_the_audio_tokens(hinted):
    tags = (SoundTag(label="Speech", score=0.98), SoundTag(label="Dog", score=0.2))
    audio = EncodedAudio(torch.zeros(4, hinted.llm.config.hidden_size), 1.0, "Turn on the lights.", tags)
    bare = EncodedAudio(audio.embeds, 1.0)
    prompt = hinted.render_prompt("Recognize the speech and give me the transcription.")
    with_hint = hinted.embed_prompts([prompt], [[audio]])
    without = hinted.embed_prompts([prompt], [[bare]])
    assert hint_text("Turn on the lights.", tags) == "\nTranscript: Turn on the lights.\nSounds: Speech 0.98, Dog 0.20\n"
    hint = hinted.tokenizer.encode(hint_text("Turn on the lights.", tags))
    assert with_hint.text_tokens[0] == without.text_tokens[0] + len(hint)
    head = with_hint.head_tokens[0]
    rows = with_hint.embeds[0, head + 4 : head + 4 + len(hint)]
    assert torch.equal(rows, hinted.llm.get_input_embeddings()(torch.tensor(hint)))


def test_the_option_needs_a_decoder(hinted):
    with pytest.raises(ConfigError, match="speech_transcript"):
        SALMONN(hinted.config, hinted.speech_encoder, hinted.features, hinted.llm, hinted.tokenizer)
    with pytest.raises(ConfigError, match="sound_tags"):
        SALMONN(hinted.config.model_copy(update={"speech_transcript": False}), hinted.speech_encoder,
                hinted.features, hinted.llm, hinted.tokenizer)


def test_no_transcript_when_yamnet_hears_no_speech():
    # Whisper writes words for sounds without speech; the tags decide whether anyone spoke.
    beeps = [SoundTag(label="Beep, bleep", score=0.5), SoundTag(label="Telephone", score=0.32)]
    assert hint_text("I'm going to go to the end.", beeps) == "\nTranscript: (no speech)\nSounds: Beep, bleep 0.50, Telephone 0.32\n"
    speech = [SoundTag(label="Speech", score=0.99)]
    assert hint_text("Turn on the lights.", speech) == "\nTranscript: Turn on the lights.\nSounds: Speech 0.99\n"
    assert hint_text("Turn on the lights.", None) == "\nTranscript: Turn on the lights.\n"


def test_exported_weights_say_whether_they_read_the_hints(hinted, tmp_path):
    import sys

    from salmonn_agent.mini.shipped import trained_with_hints

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    from train_mini import export_weights

    hinted.save_pretrained(tmp_path / "hinted")
    export_weights(tmp_path / "hinted" / "model.safetensors", tmp_path / "with.safetensors")
    assert trained_with_hints(tmp_path / "with.safetensors")
    config = json.loads((tmp_path / "hinted" / "salmonn_config.json").read_text())
    config["speech_transcript"] = config["sound_tags"] = False
    (tmp_path / "hinted" / "salmonn_config.json").write_text(json.dumps(config))
    export_weights(tmp_path / "hinted" / "model.safetensors", tmp_path / "without.safetensors")
    assert not trained_with_hints(tmp_path / "without.safetensors")


def test_parent_tags_give_way_to_the_sound_they_contain():
    cow = [SoundTag(label="Animal", score=1.0), SoundTag(label="Cattle, bovinae", score=0.99),
           SoundTag(label="Moo", score=0.98)]
    assert hint_text(None, cow) == "\nSounds: Cattle, bovinae 0.99, Moo 0.98\n"
    only_parent = [SoundTag(label="Animal", score=0.6)]
    assert hint_text(None, only_parent) == "\nSounds: Animal 0.60\n"  # nothing more specific to show


def test_silence_gives_way_to_the_sound_between_the_gaps():
    barks = [SoundTag(label="Silence", score=1.0), SoundTag(label="Animal", score=0.5), SoundTag(label="Dog", score=0.5)]
    assert hint_text(None, barks) == "\nSounds: Dog 0.50\n"
    quiet = [SoundTag(label="Silence", score=0.99)]
    assert hint_text(None, quiet) == "\nSounds: Silence 0.99\n"  # nothing else was heard



def test_chat_salmonn_reports_what_whisper_heard_ahead_of_the_answer(hinted):
    # A voice assistant judges whether a request sounds finished from it (agent/turn_end.py).
    from salmonn_agent.chat_model import ChatSALMONN, audio_message

    chat = ChatSALMONN(client=hinted, model="hinted", max_tokens=3)
    message = audio_message(str(FIXTURES / "lights.flac"), "What was said?")
    chunks = list(chat.stream([message]))
    first = chunks[0]
    assert first.content == "" and len(first.response_metadata["transcripts"]) == 1
    heard = first.response_metadata["transcripts"][0]
    assert scoring.corpus_wer([TEXTS["lights.flac"]], [heard]) <= 0.25, heard
    assert all("transcripts" not in c.response_metadata for c in chunks[1:])  # sent once
    assert chat.invoke([message]).response_metadata["transcripts"] == [heard]


def test_salmonn_minis_base_llm_hears_a_request_stop_mid_phrase(hinted, mini_parts):
    # The voice assistant's adaptive end of turn (agent/turn_end.py) asks salmonn-mini's base
    # chat LLM whether a request sounds finished: the word rule misses "Set a pasta."
    from salmonn_agent.agent.commands import turn_end_judge
    from salmonn_agent.agent.runtime import AgentConfig
    from salmonn_agent.agent.turn_end import TurnEndModel
    from salmonn_agent.registry import mini_chat_llm

    assert mini_chat_llm(hinted) == Path(mini_parts.llm_dir).resolve()
    judge = TurnEndModel(mini_parts.llm_dir)
    assert judge.end_probability("Set a pasta.") < 0.1 < judge.end_probability("Set a pasta timer for nine minutes.")
    assert judge.unfinished("Set a pasta.") and judge.unfinished("Add milk and")
    assert not judge.unfinished("Set a pasta timer for nine minutes.")
    assert turn_end_judge(hinted, AgentConfig()) is None  # the word rule is the default
    assert turn_end_judge(hinted, AgentConfig(end_of_turn="fixed"), "model") is None
    with pytest.raises(ConfigError, match="--turn-end words"):
        turn_end_judge(object(), AgentConfig(), "model")  # a brain not built on salmonn-mini
