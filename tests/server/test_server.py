"""``salmonn-agent serve`` through clients nobody here wrote: the openai SDK, LangChain's
ChatOpenAI, raw HTTP for bad requests, and the CLI's ``ask --server``."""

from __future__ import annotations

import base64
import json
import threading

import httpx
import pytest
from pydantic import BaseModel

openai = pytest.importorskip("openai")


def audio_part(wav: bytes) -> dict:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}


def question(wav: bytes, text: str = "What do you hear?") -> list[dict]:
    return [{"role": "user", "content": [audio_part(wav), {"type": "text", "text": text}]}]


TIMER = {"type": "function", "function": {
    "name": "set_timer", "description": "Start a countdown timer.",
    "parameters": {"type": "object", "properties": {"seconds": {"type": "integer"}, "label": {"type": "string"}},
                   "required": ["seconds"]}}}


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)


def test_openai_sdk_audio_question_and_usage(client, wav_bytes, tiny_model):
    from salmonn_agent.chat_model import ChatSALMONN

    answer = client.chat.completions.create(model="salmonn", messages=question(wav_bytes), max_tokens=6,
                                            temperature=0)
    local = ChatSALMONN(client=tiny_model, max_tokens=6, temperature=0).invoke(question(wav_bytes))
    assert answer.choices[0].message.content == local.content  # the same model, the same answer
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.prompt_tokens_details.audio_tokens == local.usage_metadata["input_token_details"]["audio"] > 0
    assert answer.usage.completion_tokens == local.usage_metadata["output_tokens"]
    assert client.models.list().data[0].id == "tiny-salmonn"


def test_sampling_options_stop_and_seed(client, wav_bytes):
    def ask(**options) -> str:
        return client.chat.completions.create(model="salmonn", messages=question(wav_bytes), max_tokens=10,
                                              **options).choices[0].message.content

    assert ask(temperature=1.0, top_p=0.9, seed=3) == ask(temperature=1.0, top_p=0.9, seed=3)
    greedy = ask(temperature=0)
    cut = greedy[2:4]
    if cut.strip():
        assert cut not in ask(temperature=0, stop=[cut])


def test_openai_sdk_streams_chunks_before_the_end(client, wav_bytes):
    whole = client.chat.completions.create(model="salmonn", messages=question(wav_bytes), max_tokens=8)
    stream = client.chat.completions.create(model="salmonn", messages=question(wav_bytes), max_tokens=8,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 3  # token by token, not one block at the end
    assert "".join(pieces) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_openai_sdk_forced_tool_call_parses(client, wav_bytes):
    answer = client.chat.completions.create(
        model="salmonn", messages=question(wav_bytes, "Set a timer."), tools=[TIMER],
        tool_choice={"type": "function", "function": {"name": "set_timer"}}, max_tokens=120)
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "set_timer"
    assert isinstance(json.loads(call.function.arguments)["seconds"], int)
    streamed = client.chat.completions.create(
        model="salmonn", messages=question(wav_bytes, "Set a timer."), tools=[TIMER], tool_choice="required",
        max_tokens=120, stream=True)
    deltas = [tc for c in streamed if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    # OpenAI's streamed form: the first delta names the call, the arguments come in pieces
    assert deltas[0].function.name == "set_timer" and deltas[0].id and deltas[0].type == "function"
    assert len(deltas) >= 2 and all(d.index == 0 for d in deltas)
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert isinstance(json.loads(arguments)["seconds"], int)


def test_openai_sdk_json_schema_answer_validates(client, wav_bytes):
    class Hearing(BaseModel):
        speech: bool
        sound: str

    answer = client.chat.completions.parse(model="salmonn", messages=question(wav_bytes), response_format=Hearing,
                                           max_tokens=160)
    assert isinstance(answer.choices[0].message.parsed, Hearing)


def test_openai_sdk_transcription_upload(client, wav_bytes):
    text = client.audio.transcriptions.create(model="salmonn", file=("clip.wav", wav_bytes, "audio/wav"))
    assert isinstance(text.text, str)
    plain = client.audio.transcriptions.create(model="salmonn", file=("clip.wav", wav_bytes), response_format="text")
    assert isinstance(plain, str)
    with pytest.raises(openai.BadRequestError, match="srt"):
        client.audio.transcriptions.create(model="salmonn", file=("clip.wav", wav_bytes), response_format="srt")


def test_langchain_chat_openai_invoke_stream_and_tools(server, wav_bytes):
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain_core.messages import HumanMessage

    llm = langchain_openai.ChatOpenAI(base_url=server.url, api_key="unused", model="salmonn", max_tokens=8,
                                      temperature=0, max_retries=0)
    message = HumanMessage(content=[
        {"type": "text", "text": "What do you hear?"},
        {"type": "audio", "base64": base64.b64encode(wav_bytes).decode(), "mime_type": "audio/wav"},
    ])
    answer = llm.invoke([message])
    assert isinstance(answer.content, str) and answer.usage_metadata["input_tokens"] > 0
    pieces = [chunk.content for chunk in llm.stream([message])]
    assert "".join(pieces) == answer.content and len([p for p in pieces if p]) >= 3
    called = llm.bind_tools([TIMER], tool_choice="set_timer").invoke([message], max_tokens=120)
    assert called.tool_calls[0]["name"] == "set_timer"
    chunks = list(llm.bind_tools([TIMER], tool_choice="set_timer").stream([message], max_tokens=120))
    merged = chunks[0]
    for piece in chunks[1:]:
        merged = merged + piece
    assert [c["name"] for c in merged.tool_calls] == ["set_timer"] and "seconds" in merged.tool_calls[0]["args"]


def test_api_key_is_required_when_set(start_server, wav_bytes):
    server = start_server(api_key="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(f"{server.url}/chat/completions", json={"messages": question(wav_bytes)},
                              headers=headers)
        assert response.status_code == 401
        assert "API key" in response.json()["error"]["message"]
    assert httpx.get(f"{server.base}/health").status_code == 200  # health stays open for probes
    good = openai.OpenAI(base_url=server.url, api_key="s3cret", max_retries=0)
    assert good.chat.completions.create(model="salmonn", messages=question(wav_bytes), max_tokens=2).choices


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not valid JSON"),
    (json.dumps({"messages": []}).encode(), 400, "messages"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "n": 2}).encode(), 400, "n=2"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "modalities": ["text", "audio"]}).encode(),
     400, "Audio output"),
    (json.dumps({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFFjunk" * 50).decode(),
                                                "format": "wav"}}]}]}).encode(), 400, "content block"),
    (json.dumps({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "midi"}}]}]}).encode(), 400, "midi"),
    (json.dumps({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}).encode(), 400, "image_url"),
    (json.dumps({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"}]}], "tool_choice": "required"}).encode(), 400, "tools"),
    (json.dumps({"messages": [{"role": "user", "content": "listen " * 5000}]}).encode(), 400, "context of 2048"),
    (json.dumps({"messages": [{"role": "system", "content": "Be brief."}]}).encode(), 400, "Nothing to answer"),
])
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(server, wav_bytes, body, status, words):
    response = httpx.post(f"{server.url}/chat/completions", content=body,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words.lower() in error["message"].lower() and error["type"]
    ok = httpx.post(f"{server.url}/chat/completions", json={"messages": question(wav_bytes), "max_tokens": 2})
    assert ok.status_code == 200


def test_local_paths_and_urls_in_messages_are_never_read(server, tmp_path, wav_bytes):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes)
    answers = []
    for url in (str(clip), clip.as_uri(), "file:///etc/passwd", "/does/not/exist.wav", "http://127.0.0.1:9/a.wav"):
        body = {"messages": [{"role": "user", "content": [{"type": "audio", "url": url}]}]}
        response = httpx.post(f"{server.url}/chat/completions", json=body)
        assert response.status_code == 400
        answers.append(response.json()["error"]["message"].replace(url, "URL"))
    # the same error whether the file exists or not: a client cannot probe the file system
    assert answers[0].split(":", 1)[1] == answers[2].split(":", 1)[1] == answers[3].split(":", 1)[1]


def test_oversized_body_gets_413(start_server, wav_bytes):
    server = start_server(max_body_bytes=150_000)
    big = {"messages": question(wav_bytes * 3)}
    response = httpx.post(f"{server.url}/chat/completions", json=big)
    assert response.status_code == 413 and "limit" in response.json()["error"]["message"]
    assert httpx.post(f"{server.url}/chat/completions", json={"messages": question(wav_bytes),
                                                              "max_tokens": 2}).status_code == 200


def test_a_burst_past_the_bound_gets_503_then_normal_service(start_server, wav_bytes):
    server = start_server(max_in_flight=2)
    barrier = threading.Barrier(16)
    statuses: list[int] = []
    retry_after: list[str | None] = []

    def send() -> None:
        barrier.wait()
        response = httpx.post(f"{server.url}/chat/completions", timeout=120,
                              json={"messages": question(wav_bytes), "max_tokens": 24})
        statuses.append(response.status_code)
        retry_after.append(response.headers.get("retry-after"))

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) >= 2 and statuses.count(503) >= 1
    assert set(statuses) <= {200, 503}
    assert all(r == "1" for s, r in zip(statuses, retry_after) if s == 503)
    assert httpx.post(f"{server.url}/chat/completions", json={"messages": question(wav_bytes),
                                                              "max_tokens": 2}).status_code == 200


def test_health_is_503_until_the_model_is_loaded(start_server, tiny_model):
    import time

    from salmonn_agent.chat_model import ChatSALMONN
    from salmonn_agent.server.app import create_app
    from salmonn_agent.server.settings import ServerSettings
    from tests.server.conftest import RunningServer

    release = threading.Event()

    def slow_load() -> ChatSALMONN:
        release.wait(10)
        return ChatSALMONN(client=tiny_model, local_audio=False)

    server = RunningServer(create_app(ServerSettings(), slow_load))
    try:
        assert httpx.get(f"{server.base}/health").status_code == 503
        early = httpx.post(f"{server.url}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert early.status_code == 503 and early.headers["retry-after"]
        release.set()
        server.wait_ready()
        assert httpx.get(f"{server.base}/health").json()["status"] == "ok"
    finally:
        release.set()
        server.stop()
        time.sleep(0)


def test_a_disconnected_client_cancels_its_generation(start_server, tiny_model, wav_bytes):
    import time

    from salmonn_agent.chat_model import ChatSALMONN

    loaded: list[ChatSALMONN] = []
    server = start_server(lambda: loaded.append(ChatSALMONN(client=tiny_model, local_audio=False)) or loaded[0])
    engine = loaded[0]._runtime(None).engine
    jobs, submit = [], engine.submit
    engine.submit = lambda job: jobs.append(job) or submit(job)
    body = {"messages": question(wav_bytes), "max_tokens": 1500, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/chat/completions", timeout=1.0, json=body)
    with httpx.stream("POST", f"{server.url}/chat/completions", json=dict(body, stream=True), timeout=30) as response:
        events = (line for line in response.iter_lines() if line.startswith("data:"))
        for _ in range(3):  # the role event and two pieces of the answer, then the client leaves
            next(events)
    deadline = time.monotonic() + 20
    while not (len(jobs) == 2 and all(job.control.ended_by for job in jobs)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [job.control.ended_by for job in jobs] == ["cancelled", "cancelled"]
    assert all(len(job.control.token_ids) < 1500 for job in jobs)
    state = server.server.config.app.state.server
    while state.requests.open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.requests.open == 0
