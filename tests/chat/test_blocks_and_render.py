"""Content blocks in every accepted form, clear errors for bad ones, and prompt rendering."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import soundfile as sf
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from salmonn_agent.chat.blocks import BlockReader
from salmonn_agent.chat.errors import ContentBlockError
from salmonn_agent.chat.messages import audio_block, audio_message
from salmonn_agent.chat.render import render_conversation
from salmonn_agent.config import OFFICIAL_PROMPT_TEMPLATE

SR = 16_000
CLIP = "<Speech><SpeechHere></Speech>"


def wav_bytes(samples: np.ndarray, rate: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


@pytest.fixture
def reader(tiny_model) -> BlockReader:
    return BlockReader(lambda payload: tiny_model.load(payload), max_bytes=2_000_000)


def render(messages, reader, **kwargs) -> str:
    return render_conversation(messages, OFFICIAL_PROMPT_TEMPLATE, reader, **kwargs).prompt


# ---------------------------------------------------------------- accepted forms
def test_every_audio_block_form_decodes_to_the_same_clip(reader, chirp_wav):
    data = chirp_wav.read_bytes()
    b64 = base64.b64encode(data).decode()
    forms = [
        {"type": "audio", "base64": b64, "mime_type": "audio/wav"},
        {"type": "audio", "source_type": "base64", "data": b64, "mime_type": "audio/wav"},
        {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}},
        {"type": "audio", "url": str(chirp_wav)},
        {"type": "audio", "url": chirp_wav.as_uri()},
        {"type": "audio", "url": f"data:audio/wav;base64,{b64}"},
    ]
    clips = [reader.read(HumanMessage([form]), 0).clips[0] for form in forms]
    assert len({clip.key for clip in clips}) == 1  # same bytes, same cache key
    reference = clips[0].load()
    assert reference.dtype == np.float32 and reference.ndim == 1
    assert abs(len(reference) - 2 * SR) <= 1  # 22.05 kHz stereo → 16 kHz mono
    for clip in clips[1:]:
        np.testing.assert_array_equal(clip.load(), reference)


def test_helpers_build_messages_from_path_bytes_array_and_window(reader, chirp_wav):
    samples = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1

    class Window:  # the front-end's AudioWindow, duck-typed
        def __init__(self) -> None:
            self.samples, self.sample_rate, self.start, self.end, self.kind = samples, SR, 0.0, 1.0, "speech"

    from_path = audio_message(chirp_wav, "What is it?")
    assert from_path.content[0] == {"type": "audio", "url": chirp_wav.resolve().as_uri()}
    assert from_path.content[1] == {"type": "text", "text": "What is it?"}
    from_bytes = audio_block(chirp_wav.read_bytes())
    assert from_bytes["mime_type"] == "audio/wav"
    from_array = reader.read(HumanMessage([audio_block(samples, sample_rate=SR)]), 0).clips[0]
    np.testing.assert_array_equal(from_array.load(), samples)  # float WAV: lossless
    from_window = reader.read(HumanMessage([audio_block(Window())]), 0).clips[0]
    assert from_window.key == from_array.key
    with pytest.raises(ContentBlockError, match="sample rate"):
        audio_block(samples)


# ---------------------------------------------------------------- refused blocks
@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"type": "audio", "base64": "AAAA", "mime_type": "audio/mp4"}, "unsupported MIME type 'audio/mp4'"),
        ({"type": "audio", "base64": "not base64!!", "mime_type": "audio/wav"}, "does not decode"),
        ({"type": "audio", "base64": base64.b64encode(b"RIFF garbage").decode(), "mime_type": "audio/wav"},
         "Could not decode"),
        ({"type": "audio", "base64": base64.b64encode(bytes(3_000_000)).decode(), "mime_type": "audio/wav"},
         "over the limit of 2.0 MB"),
        ({"type": "audio", "url": "https://example.org/a.wav"}, "remote audio URLs are off"),
        ({"type": "audio", "url": "/no/such/file.wav"}, "not found"),
        ({"type": "audio", "file_id": "file-123"}, "file_id"),
        ({"type": "image", "base64": "AAAA", "mime_type": "image/png"}, "'image' blocks are not supported"),
    ],
)
def test_bad_blocks_raise_an_error_naming_the_block(reader, block, message):
    human = HumanMessage([{"type": "text", "text": "hi"}, block])
    with pytest.raises(ContentBlockError, match="messages\\[3\\] \\(HumanMessage\\), content block 1") as err:
        parts = reader.read(human, 3)
        for clip in parts.clips:
            clip.load()
    assert message in str(err.value)


def test_bad_block_error_reaches_the_caller_of_invoke(chat):
    bad = HumanMessage([{"type": "audio", "base64": "AAAA", "mime_type": "audio/x-m4a"}])
    with pytest.raises(ContentBlockError, match="messages\\[0\\].*audio/x-m4a"):
        chat.invoke([bad])


def test_size_limit_is_configurable(tiny_model, chirp_wav):
    small = BlockReader(lambda p: tiny_model.load(p), max_bytes=1000)
    with pytest.raises(ContentBlockError, match="max_audio_bytes"):
        small.read(HumanMessage([{"type": "audio", "url": str(chirp_wav)}]), 0)


# ---------------------------------------------------------------- rendering
def test_local_audio_can_be_limited_to_directories_or_turned_off(tiny_model, chirp_wav, tmp_path):
    load = lambda payload: tiny_model.load(payload)  # noqa: E731
    inside = BlockReader(load, max_bytes=2_000_000, local_audio=[chirp_wav.parent])
    for url in (str(chirp_wav), chirp_wav.as_uri()):
        assert inside.read(HumanMessage(content=[{"type": "audio", "url": url}]), 0).clips[0].load().size
    other = tmp_path / "other.wav"
    other.write_bytes(chirp_wav.read_bytes())
    escape = chirp_wav.parent / ".." / tmp_path.name / "other.wav"
    for url in (str(other), str(escape), "file:///etc/passwd"):
        with pytest.raises(ContentBlockError, match="outside the directories"):
            inside.read(HumanMessage(content=[{"type": "audio", "url": url}]), 0)
    off = BlockReader(load, max_bytes=2_000_000, local_audio=False)
    errors = []
    for url in (str(chirp_wav), "/no/such/file.wav", "file:///etc/passwd"):
        with pytest.raises(ContentBlockError, match="local audio paths are off") as caught:
            off.read(HumanMessage(content=[{"type": "audio", "url": url}]), 0)
        errors.append(str(caught.value))
    assert len(set(errors)) == 1  # whether a file exists is never revealed
    data = base64.b64encode(chirp_wav.read_bytes()).decode()
    assert off.read(HumanMessage(content=[{"type": "audio", "base64": data, "mime_type": "audio/wav"}]), 0).clips


def test_single_turn_is_the_official_prompt_byte_for_byte(reader, tiny_model, chirp_wav):
    for instruction in ["Recognize the speech and give me the transcription.", "  Describe it. ", ""]:
        message = audio_message(chirp_wav, instruction or None)
        assert render([message], reader) == tiny_model.render_prompt(instruction)
    # text first in the message: the audio still goes first, as SALMONN was trained
    text_first = HumanMessage([{"type": "text", "text": "Describe it."}, audio_block(chirp_wav)])
    assert render([text_first], reader) == tiny_model.render_prompt("Describe it.")


def test_multi_turn_rendering_with_system_turns_and_several_clips(reader, chirp_wav):
    clip = audio_block(chirp_wav)
    messages = [
        SystemMessage("You are a sound expert."),
        HumanMessage([clip, {"type": "text", "text": "What is this?"}]),
        AIMessage("A bird."),
        HumanMessage([clip, clip, {"type": "text", "text": "Compare the two clips."}]),
        AIMessage("They are the same."),
        SystemMessage("Be brief."),
        HumanMessage("Thanks!"),
    ]
    rendered = render_conversation(messages, OFFICIAL_PROMPT_TEMPLATE, reader)
    assert rendered.prompt == (
        "You are a sound expert.\nBe brief.\n"
        f"USER: {CLIP} What is this?\nASSISTANT: A bird.\n"
        f"USER: {CLIP} {CLIP} Compare the two clips.\nASSISTANT: They are the same.\n"
        "USER: Thanks!\nASSISTANT:"
    )
    assert len(rendered.clips) == 3 == rendered.prompt.count("<SpeechHere>")


def test_consecutive_messages_merge_and_a_final_ai_message_is_a_prefill(reader):
    messages = [HumanMessage("hello"), HumanMessage("there"), AIMessage("hi"), AIMessage("you"),
                HumanMessage("how are you"), AIMessage("I am")]
    assert render(messages, reader) == (
        "USER: hello\nthere\nASSISTANT: hi\nyou\nUSER: how are you\nASSISTANT: I am"
    )


def test_tool_calls_and_results_are_rendered_back(reader):
    messages = [
        HumanMessage("What is 1 + 2?"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "abc", "type": "tool_call"}]),
        ToolMessage('{"result": 3}', tool_call_id="abc"),
        ToolMessage("Error: b missing", tool_call_id="xyz", name="add", status="error"),
    ]
    prompt = render(messages, reader, extra_system="TOOLS")
    assert prompt == (
        "TOOLS\nUSER: What is 1 + 2?\nASSISTANT: {\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n"
        "USER: Tool result (add, id abc): {\"result\": 3}\nTool error (add, id xyz): Error: b missing\nASSISTANT:"
    )


def test_placeholder_in_text_and_audio_in_ai_messages_are_refused(reader, chirp_wav):
    with pytest.raises(ContentBlockError, match="<SpeechHere>"):
        render([HumanMessage("say <SpeechHere> please")], reader)
    with pytest.raises(ContentBlockError, match="AIMessage"):
        render([HumanMessage("hi"), AIMessage([audio_block(chirp_wav)])], reader)
