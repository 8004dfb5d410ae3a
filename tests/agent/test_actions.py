"""The real actions: notes file, timers, webhook (local HTTP server), Python events."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from pydantic import ValidationError

from salmonn_agent.agent.actions import (
    ActionError,
    ActionEvent,
    ActionsConfig,
    NotesBook,
    TimerBoard,
    TimerInfo,
    build_actions,
    event_tool,
    notes_tools,
    timer_tools,
    webhook_tool,
)
from salmonn_agent.errors import SalmonnError


def call(tool: Any, args: dict[str, Any], call_id: str = "call_1") -> ToolMessage:
    """Invoke a tool the way an agent does (a ToolCall) and return its ToolMessage."""
    result = tool.invoke({"type": "tool_call", "name": tool.name, "args": args, "id": call_id})
    assert isinstance(result, ToolMessage)
    return result


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- notes -------------------------------------------------------------------------------


def test_notes_are_appended_one_per_line_with_a_timestamp(tmp_path: Path) -> None:
    book = NotesBook(tmp_path / "sub" / "notes.txt")
    assert book.read() == []
    assert book.append("buy milk") == 1
    assert book.append("call Anna\nabout   the\r\n\n tickets") == 2
    lines = (tmp_path / "sub" / "notes.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    stamp, text = lines[1].split(" ", 1)
    assert text == "call Anna about   the tickets"  # line breaks collapsed, nothing else touched
    assert datetime.fromisoformat(stamp).tzinfo is not None
    assert book.read(last=1) == [lines[1]]
    assert book.read() == lines
    # a new book on the same file continues the numbering (UTF-8 kept)
    assert NotesBook(tmp_path / "sub" / "notes.txt").append("café ☕") == 3
    assert book.read(1)[0].endswith(" café ☕")


def test_empty_and_too_long_notes_are_refused_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    book = NotesBook(path, max_chars=20)
    book.append("first")
    before = path.read_bytes()
    with pytest.raises(ActionError, match="empty"):
        book.append(" \n\t \n")
    with pytest.raises(ActionError, match="21 characters long; the limit is 20") as info:
        book.append("x" * 21)
    assert isinstance(info.value, SalmonnError) and isinstance(info.value, ValueError)
    assert path.read_bytes() == before
    assert book.append("y" * 20) == 2


def test_clear_deletes_every_note(tmp_path: Path) -> None:
    book = NotesBook(tmp_path / "notes.txt")
    assert book.clear() == 0
    for text in ("a", "b", "c"):
        book.append(text)
    assert book.clear() == 3
    assert book.read() == [] and book.count() == 0
    assert book.append("again") == 1


def test_notes_tools(tmp_path: Path) -> None:
    book = NotesBook(tmp_path / "notes.txt", max_chars=50)
    add, read, delete = notes_tools(book)
    assert [t.name for t in (add, read, delete)] == ["add_note", "read_notes", "delete_notes"]
    assert delete.metadata["risky"] is True
    assert not add.metadata["risky"] and not read.metadata["risky"]
    assert "no notes" in call(read, {}).content.lower()

    assert call(add, {"text": "water the plants"}).content == "Saved note 1."
    call(add, {"text": "feed the cat"})
    out = call(read, {"last": 1})
    assert out.status == "success" and out.content.endswith("feed the cat") and "plants" not in out.content

    # bad input comes back as a readable tool error, not an exception
    empty = call(add, {"text": ""})
    assert empty.status == "error" and "empty" in empty.content
    too_long = call(add, {"text": "z" * 51})
    assert too_long.status == "error" and "limit is 50" in too_long.content
    bad = call(read, {"last": 0})
    assert bad.status == "error" and "last" in bad.content and "greater than or equal to 1" in bad.content
    assert book.count() == 2

    assert call(delete, {}).content == "Deleted 2 notes."
    assert book.count() == 0


# --- timers ------------------------------------------------------------------------------


def test_a_timer_fires_once_in_the_background(tmp_path: Path) -> None:
    fired: list[TimerInfo] = []
    done = threading.Event()

    def on_fire(info: TimerInfo) -> None:
        fired.append(info)
        done.set()

    with TimerBoard(on_fire=on_fire) as board:
        info = board.set(0.05, "tea\nnow")
        assert info.id == "t1" and info.label == "tea now" and not info.fired
        assert [t.id for t in board.list()] == ["t1"]
        assert done.wait(5.0)
        time.sleep(0.1)  # would catch a second firing
        assert len(fired) == 1
        assert fired[0].id == "t1" and fired[0].fired and fired[0].label == "tea now"
        assert board.list() == []  # a fired timer is no longer running


def test_cancel_and_close_stop_timers() -> None:
    fired: list[TimerInfo] = []
    board = TimerBoard(on_fire=fired.append)
    a = board.set(0.05, "a")
    board.set(0.05, "b")
    board.set(60, "c")
    assert board.cancel(a.id) is True
    assert board.cancel(a.id) is False
    assert board.cancel("t99") is False
    time.sleep(0.25)
    assert [t.label for t in fired] == ["b"]
    board.close()
    assert board.list() == []
    with pytest.raises(ActionError, match="closed"):
        board.set(1, "late")
    time.sleep(0.05)
    assert [t.label for t in fired] == ["b"]


@pytest.mark.parametrize("seconds", [0, -5, float("nan"), float("inf"), 24 * 3600 + 1])
def test_timer_durations_are_validated(seconds: float) -> None:
    with TimerBoard() as board, pytest.raises(ActionError, match="above 0 and at most 86400"):
        board.set(seconds, "x")


def test_timer_count_is_limited() -> None:
    with TimerBoard(max_timers=2) as board:
        board.set(60, "a")
        board.set(60, "b")
        with pytest.raises(ActionError, match="limit is 2"):
            board.set(60, "c")


def test_list_shows_remaining_seconds_on_the_board_clock() -> None:
    clock = FakeClock()
    with TimerBoard(clock=clock) as board:
        board.set(300, "pasta")
        board.set(60, "eggs")
        clock.now += 20
        timers = board.list()
        assert [(t.label, t.remaining) for t in timers] == [("eggs", 40.0), ("pasta", 280.0)]
        assert timers[0].due_at == 1060.0


def test_timer_tools() -> None:
    clock = FakeClock()
    with TimerBoard(clock=clock) as board:
        set_timer, list_timers, cancel_timer, change_timer = timer_tools(board)
        assert [t.name for t in (set_timer, list_timers, cancel_timer, change_timer)] == [
            "set_timer", "list_timers", "cancel_timer", "change_timer"]
        assert call(list_timers, {}).content == "No timers are running."
        assert call(set_timer, {"seconds": 90, "label": "bread"}).content == "Timer t1 'bread' set for 90 s."
        clock.now += 30
        assert call(list_timers, {}).content == "t1 'bread': 60 s left of 90 s"

        negative = call(set_timer, {"seconds": -1})
        assert negative.status == "error" and "seconds" in negative.content and "greater than or equal to 0" in negative.content
        empty = call(set_timer, {"label": "tea"})
        assert empty.status == "error" and "hours, minutes or seconds" in empty.content
        too_long = call(set_timer, {"hours": 20, "minutes": 300})
        assert too_long.status == "error" and "24 hours" in too_long.content
        assert len(board.list()) == 1  # refused calls start nothing
        unknown = call(cancel_timer, {"timer_id": "t7"})
        assert unknown.status == "error" and "'t7'" in unknown.content and "running timers: t1" in unknown.content
        assert call(change_timer, {"timer_id": "t1", "seconds": 300}).content == "Timer t1 'bread' now rings in 300 s."
        clock.now += 100
        assert call(list_timers, {}).content == "t1 'bread': 200 s left of 300 s"
        missing = call(change_timer, {"timer_id": "t9", "seconds": 60})
        assert missing.status == "error" and "running timers: t1" in missing.content
        assert call(cancel_timer, {"timer_id": "t1"}).content == "Cancelled timer t1."
        assert board.list() == []


def test_timer_duration_in_the_units_said() -> None:
    """The model may copy the number it heard: hours, minutes and seconds add up."""
    clock = FakeClock()
    with TimerBoard(clock=clock) as board:
        set_timer, _, _, change_timer = timer_tools(board)
        assert call(set_timer, {"minutes": 40, "label": "cookies"}).content == "Timer t1 'cookies' set for 2400 s."
        assert call(set_timer, {"hours": 1, "minutes": 10}).content == "Timer t2 'timer' set for 4200 s."
        assert call(set_timer, {"minutes": 2, "seconds": 30}).content == "Timer t3 'timer' set for 150 s."
        assert call(set_timer, {"hours": 0.5}).content == "Timer t4 'timer' set for 1800 s."
        assert call(change_timer, {"timer_id": "t1", "minutes": 15}).content == "Timer t1 'cookies' now rings in 900 s."
        assert [(t.id, t.seconds) for t in board.list()] == [("t3", 150.0), ("t1", 900.0), ("t4", 1800.0), ("t2", 4200.0)]


# --- webhook -----------------------------------------------------------------------------


class Hook:
    """A local HTTP server that records each request and answers with ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.delay_s = 0.0
        self.location: str | None = None
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
                time.sleep(hook.delay_s)
                self.send_response(hook.status)
                if hook.location:
                    self.send_header("Location", hook.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                hook.requests.append({"method": "GET", "path": self.path})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/salmonn?key=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def test_webhook_posts_json_to_exactly_the_configured_url(hook: Hook) -> None:
    tool = webhook_tool(hook.url)
    assert tool.name == "send_webhook"
    assert set(tool.args) == {"event", "details"}  # the model cannot choose the address
    out = call(tool, {"event": "doorbell", "details": "rang twice"})
    assert out.status == "success" and "HTTP 200" in out.content
    assert len(hook.requests) == 1
    (request,) = hook.requests
    assert request["path"] == "/hooks/salmonn?key=abc"
    assert request["headers"]["Content-Type"] == "application/json"
    body = json.loads(request["body"])
    assert set(body) == {"event", "details", "sent_at"}
    assert body["event"] == "doorbell" and body["details"] == "rang twice"
    assert datetime.fromisoformat(body["sent_at"]).tzinfo is not None

    sneaky = call(tool, {"event": "x", "url": "http://127.0.0.1:1/evil"})
    assert sneaky.status == "error" and "url" in sneaky.content
    assert len(hook.requests) == 1


def test_webhook_errors_are_readable_tool_errors(hook: Hook) -> None:
    tool = webhook_tool(hook.url, name="notify", timeout_s=0.3)
    assert tool.name == "notify"
    hook.status = 500
    failed = call(tool, {"event": "e"})
    assert failed.status == "error" and "HTTP 500" in failed.content

    # a redirect is not followed: the data goes nowhere but the configured URL
    hook.status, hook.location = 302, "/elsewhere"
    redirected = call(tool, {"event": "e"})
    assert redirected.status == "error" and "HTTP 302" in redirected.content
    assert [r["path"] for r in hook.requests] == ["/hooks/salmonn?key=abc"] * 2

    hook.status, hook.location, hook.delay_s = 200, None, 1.0
    start = time.monotonic()
    slow = call(tool, {"event": "e"})
    assert time.monotonic() - start < 0.9
    assert slow.status == "error" and "Could not reach" in slow.content


def test_webhook_connection_failure_is_a_tool_error() -> None:
    # a port nothing listens on: bind one, then close it
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    out = call(webhook_tool(f"http://127.0.0.1:{port}/x", timeout_s=1.0), {"event": "e"})
    assert out.status == "error" and "Could not reach the webhook at 127.0.0.1" in out.content


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "example.com/hook", "http:///nohost", ""])
def test_webhook_url_must_be_http_or_https(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        webhook_tool(url)
    with pytest.raises(ValidationError, match="http:// or https://"):
        ActionsConfig(notes_path="n.txt", webhook_url=url)


# --- events and the builder ----------------------------------------------------------------


def test_event_tool_calls_the_callback() -> None:
    events: list[ActionEvent] = []
    tool = event_tool(events.append)
    out = call(tool, {"event": "baby_crying", "details": "heard in window w3"})
    assert out.status == "success" and "baby_crying" in out.content
    (event,) = events
    assert event.event == "baby_crying" and event.details == "heard in window w3"
    assert event.time.tzinfo is not None

    assert call(tool, {"event": ""}).status == "error"  # empty event name refused by the schema
    assert len(events) == 1

    def broken(event: ActionEvent) -> None:
        raise RuntimeError("display offline")

    failed = call(event_tool(broken, name="show"), {"event": "x"})
    assert failed.status == "error" and "display offline" in failed.content


def test_build_actions(tmp_path: Path, hook: Hook) -> None:
    config = ActionsConfig(notes_path=tmp_path / "notes.txt")
    assert [t.name for t in build_actions(config)] == [
        "add_note", "read_notes", "delete_notes", "set_timer", "list_timers", "cancel_timer", "change_timer",
    ]
    fired = threading.Event()
    events: list[ActionEvent] = []
    config = ActionsConfig(notes_path=tmp_path / "notes.txt", webhook_url=hook.url, timers=False)
    tools = {t.name: t for t in build_actions(config, on_event=events.append, on_timer=lambda i: fired.set())}
    assert list(tools) == ["add_note", "read_notes", "delete_notes", "send_webhook", "emit_event"]
    call(tools["add_note"], {"text": "built"})
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8").endswith(" built\n")

    with TimerBoard(on_fire=lambda i: fired.set()) as board:
        tools = {t.name: t for t in build_actions(ActionsConfig(notes_path=tmp_path / "n2.txt"), board=board)}
        call(tools["set_timer"], {"seconds": 0.05, "label": "x"})
        assert fired.wait(5.0)
    with pytest.raises(ValidationError, match="unknown_option"):
        ActionsConfig(notes_path=tmp_path / "n.txt", unknown_option=1)
