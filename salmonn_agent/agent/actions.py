"""Real, safe actions an agent can take: notes, timers, a webhook and a Python event.

Each action is a small class that does the work (:class:`NotesBook`, :class:`TimerBoard`) and a
builder that turns it into LangChain tools with pydantic argument schemas::

    book = NotesBook("notes.txt")
    board = TimerBoard(on_fire=lambda timer: print("ring", timer.label))
    tools = notes_tools(book) + timer_tools(board) + [webhook_tool("http://127.0.0.1:8080/hook")]

Nothing here runs a shell command or lets the model choose where data goes: the notes file and
the webhook URL are fixed when the tools are built. Tools report bad arguments and failures as
a :class:`~langchain_core.tools.ToolException` handled into the tool's answer
(``handle_tool_error=True``), so an agent reads the reason instead of crashing. Tools that
destroy data carry ``tool.metadata["risky"] = True``; :class:`~salmonn_agent.agent.policy.ActionGate`
asks for confirmation before running them.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import Self

from salmonn_agent.agent.heard import HeardKind
from salmonn_agent.errors import ConfigError, SalmonnError, format_validation_error

logger = logging.getLogger(__name__)

MAX_NOTE_CHARS = 2000
"""Longest note :class:`NotesBook` accepts by default (longer ones are refused, not cut)."""
MAX_TIMER_SECONDS = 24 * 3600.0
"""Longest timer :class:`TimerBoard` accepts."""
MAX_EVENT_CHARS = 200
MAX_DETAILS_CHARS = 2000


class ActionError(SalmonnError, ValueError):
    """An action that cannot be done as asked (empty note, bad timer, unknown timer id...).

    The message names the problem and what to do instead; the tools turn it into the tool's
    error answer so the agent can read it.
    """


def _one_line(text: str) -> str:
    """``text`` with its line breaks collapsed to single spaces and its ends stripped."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _now() -> datetime:
    """The local wall-clock time, timezone-aware, to the second."""
    return datetime.now().astimezone().replace(microsecond=0)


def _invalid_arguments(error: ValidationError) -> str:
    problems = format_validation_error(error, unnamed="arguments")
    return f"Invalid arguments: {problems}. Fix them and call the tool again."


def _tool(
    func: Callable[..., str],
    *,
    name: str,
    description: str,
    args_schema: type[BaseModel],
    kind: str,
    risky: bool = False,
    flow: str | None = None,
    heard_args: dict[str, HeardKind] | None = None,
) -> StructuredTool:
    """A StructuredTool whose ActionErrors come back as the tool's error answer; ``heard_args``:
    the arguments that must have been said (see :mod:`salmonn_agent.agent.heard`)."""

    def run(**kwargs: Any) -> str:
        try:
            return func(**kwargs)
        except ActionError as exc:
            raise ToolException(str(exc)) from exc

    return StructuredTool.from_function(
        func=run,
        name=name,
        description=description,
        args_schema=args_schema,
        handle_tool_error=True,
        handle_validation_error=_invalid_arguments,
        metadata={"risky": risky, "kind": kind, **({"data_flow": flow} if flow else {}),
                  **({"heard_args": heard_args} if heard_args else {})},
    )


class _Args(BaseModel):
    """Base of the tools' argument schemas: unknown arguments are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


# --- notes -------------------------------------------------------------------------------


class NotesBook:
    """A plain UTF-8 notes file: one note a line, ``<ISO timestamp> <text>``.

    Notes are appended (the file is opened in append mode, written in one call and flushed), so
    an existing file is never rewritten except by :meth:`clear`. Line breaks inside a note are
    collapsed to spaces; empty notes and notes over ``max_chars`` are refused with
    :class:`ActionError` (never truncated). Safe to share between threads.
    """

    def __init__(self, path: str | Path, *, max_chars: int = MAX_NOTE_CHARS) -> None:
        if max_chars < 1:
            raise ConfigError(f"max_chars must be at least 1, got {max_chars}.")
        self.path = Path(path).expanduser()
        self.max_chars = max_chars
        self._lock = threading.Lock()

    def _lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def append(self, text: str) -> int:
        """Add a note and return its number (1 for the first note in the file)."""
        note = _one_line(text)
        if not note:
            raise ActionError("The note is empty: give the text to write down.")
        if len(note) > self.max_chars:
            raise ActionError(
                f"The note is {len(note)} characters long; the limit is {self.max_chars}. "
                "Shorten it or split it into several notes."
            )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            count = len(self._lines())
            with self.path.open("a", encoding="utf-8") as file:
                file.write(f"{_now().isoformat()} {note}\n")
                file.flush()
            return count + 1

    def read(self, last: int = 10) -> list[str]:
        """The ``last`` most recent notes (oldest first), each ``<timestamp> <text>``."""
        if last < 1:
            raise ActionError(f"last must be at least 1, got {last}.")
        with self._lock:
            return self._lines()[-last:]

    def count(self) -> int:
        """How many notes the file holds."""
        with self._lock:
            return len(self._lines())

    def clear(self) -> int:
        """Delete every note (the file is emptied) and return how many there were."""
        with self._lock:
            count = len(self._lines())
            if self.path.exists():
                self.path.write_text("", encoding="utf-8")
            return count


class AddNoteArgs(_Args):
    """Arguments of ``add_note``."""

    text: str = Field(
        description="What to remember, in plain words.",
    )


class ReadNotesArgs(_Args):
    """Arguments of ``read_notes``."""

    last: int = Field(10, ge=1, le=100, description="How many recent notes to read.")


class NoArgs(_Args):
    """A tool without arguments."""


def notes_tools(book: NotesBook) -> list[BaseTool]:
    """``add_note(text)``, ``read_notes(last)`` and ``delete_notes()`` (risky) on ``book``."""

    def add_note(text: str) -> str:
        number = book.append(text)
        return f"Saved note {number}."

    def read_notes(last: int = 10) -> str:
        notes = book.read(last)
        if not notes:
            return "There are no notes."
        return "\n".join(notes)

    def delete_notes() -> str:
        count = book.clear()
        return f"Deleted {count} note{'s' if count != 1 else ''}."

    return [
        _tool(add_note, name="add_note", args_schema=AddNoteArgs, kind="notes", heard_args={"text": "words"},
              description="Write down a note for the user."),
        _tool(read_notes, name="read_notes", args_schema=ReadNotesArgs, kind="notes", flow="reads_private",
              description="Read the user's latest notes."),
        _tool(delete_notes, name="delete_notes", args_schema=NoArgs, kind="notes", risky=True,
              description="Delete ALL notes in the user's notes file. Cannot be undone."),
    ]


# --- timers ------------------------------------------------------------------------------


class TimerInfo(BaseModel):
    """A timer: ``due_at`` is a reading of the board's clock; ``remaining`` is as of when this
    info was made (``TimerBoard.list`` makes fresh ones)."""

    model_config = ConfigDict(frozen=True)

    id: str
    label: str
    seconds: float
    due_at: float
    fired: bool = False
    remaining: float = 0.0


class TimerBoard:
    """Timers that fire in the background and call ``on_fire(TimerInfo)`` once each.

    Each timer is a daemon :class:`threading.Timer`; ``clock`` (``time.monotonic`` by
    default) only dates the timers (``due_at``, ``remaining``), so tests can inject one. Seconds
    must be in (0, 24 h]; at most ``max_timers`` run at once. ``close()`` cancels every timer;
    the board is also a context manager.
    """

    def __init__(
        self,
        on_fire: Callable[[TimerInfo], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_timers: int = 20,
    ) -> None:
        self.on_fire = on_fire
        self.clock = clock
        self.max_timers = max_timers
        self._lock = threading.Lock()
        self._timers: dict[str, tuple[TimerInfo, threading.Timer]] = {}
        self._ids = itertools.count(1)
        self._closed = False

    def set(self, seconds: float, label: str) -> TimerInfo:
        """Start a timer of ``seconds`` called ``label`` and return it."""
        _check_timer_seconds(seconds)
        name = _one_line(label) or "timer"
        if len(name) > 200:
            raise ActionError(f"The timer label is {len(name)} characters long; keep it under 200.")
        with self._lock:
            if self._closed:
                raise ActionError("The timer board is closed; no new timers can be set.")
            if len(self._timers) >= self.max_timers:
                raise ActionError(
                    f"{len(self._timers)} timers are already running (the limit is "
                    f"{self.max_timers}); cancel one first."
                )
            info = TimerInfo(
                id=f"t{next(self._ids)}", label=name, seconds=float(seconds),
                due_at=self.clock() + seconds, remaining=float(seconds),
            )
            thread = threading.Timer(seconds, self._fire, args=(info.id,))
            thread.daemon = True
            self._timers[info.id] = (info, thread)
            thread.start()
        return info

    def change(self, timer_id: str, seconds: float) -> TimerInfo:
        """Restart the running timer ``timer_id`` so that it rings ``seconds`` from now (same id
        and label); returns it. "Make it fifteen minutes" after "set a timer for ten"."""
        _check_timer_seconds(seconds)
        with self._lock:
            entry = self._timers.get(timer_id)
            if entry is None:
                running = ", ".join(self._timers) or "none"
                raise ActionError(f"No running timer has the id {timer_id!r}; running timers: {running}.")
            entry[1].cancel()
            info = entry[0].model_copy(update={
                "seconds": float(seconds), "due_at": self.clock() + seconds, "remaining": float(seconds),
            })
            thread = threading.Timer(seconds, self._fire, args=(info.id,))
            thread.daemon = True
            self._timers[info.id] = (info, thread)
            thread.start()
        return info

    def _fire(self, timer_id: str) -> None:
        with self._lock:
            entry = self._timers.pop(timer_id, None)
        if entry is None:  # cancelled just before firing
            return
        info = entry[0].model_copy(update={"fired": True, "remaining": 0.0})
        if self.on_fire is not None:
            try:
                self.on_fire(info)
            except Exception:
                logger.exception("on_fire callback failed for timer %s (%s)", info.id, info.label)

    def list(self) -> list[TimerInfo]:
        """The running timers, soonest first, with their ``remaining`` seconds."""
        now = self.clock()
        with self._lock:
            infos = [info for info, _ in self._timers.values()]
        return sorted(
            (info.model_copy(update={"remaining": max(0.0, info.due_at - now)}) for info in infos),
            key=lambda info: info.due_at,
        )

    def cancel(self, timer_id: str) -> bool:
        """Stop a running timer; False when no running timer has that id."""
        with self._lock:
            entry = self._timers.pop(timer_id, None)
        if entry is None:
            return False
        entry[1].cancel()
        return True

    def close(self) -> None:
        """Cancel every timer and refuse new ones."""
        with self._lock:
            self._closed = True
            entries = list(self._timers.values())
            self._timers.clear()
        for _, thread in entries:
            thread.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_timer_seconds(seconds: float) -> None:
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMER_SECONDS:
        raise ActionError(
            f"A timer needs a duration above 0 and at most {MAX_TIMER_SECONDS:.0f} seconds (24 hours), "
            f"given as hours, minutes or seconds that add up; got {seconds:g} s"
        )


class _Duration(_Args):
    """A timer's duration in the units the speaker used: ``hours``, ``minutes`` and ``seconds`` add
    up, so "forty minutes" is ``{"minutes": 40}`` and "an hour and ten minutes" is ``{"hours": 1,
    "minutes": 10}``; a model copies the number it heard instead of converting it."""

    # No descriptions: the names say it, and every tool's schema is part of each prompt.
    hours: float = Field(0, ge=0, le=24)
    minutes: float = Field(0, ge=0, le=24 * 60)
    seconds: float = Field(0, ge=0, le=MAX_TIMER_SECONDS)

    @model_validator(mode="after")
    def _positive_total(self) -> Self:
        _check_timer_seconds(self.total_seconds)
        return self

    @property
    def total_seconds(self) -> float:
        """The whole duration in seconds."""
        return duration_seconds(self.hours, self.minutes, self.seconds)


def duration_seconds(hours: float = 0, minutes: float = 0, seconds: float = 0) -> float:
    """``hours``, ``minutes`` and ``seconds`` added up, in seconds."""
    return hours * 3600 + minutes * 60 + seconds


_HEARD_DURATION: dict[str, HeardKind] = {"hours": "number", "minutes": "number", "seconds": "number"}
"""A duration's parts must have been said (a timer nobody asked for is refused)."""


class SetTimerArgs(_Duration):
    """Arguments of ``set_timer``: the duration (:class:`_Duration`) and a label."""

    label: str = Field("timer", description="A short name, e.g. 'tea'.")


class CancelTimerArgs(_Args):
    """Arguments of ``cancel_timer``."""

    timer_id: str = Field(description="The timer's id, e.g. 't1'.")


class ChangeTimerArgs(_Duration):
    """Arguments of ``change_timer``: the timer's id and its new duration from now."""

    timer_id: str = Field(description="The timer's id, e.g. 't1'.")


def _describe_timer(info: TimerInfo) -> str:
    return f"{info.id} '{info.label}': {info.remaining:.0f} s left of {info.seconds:g} s"


def timer_tools(board: TimerBoard) -> list[BaseTool]:
    """``set_timer(hours, minutes, seconds, label)``, ``list_timers()``, ``cancel_timer(timer_id)``
    and ``change_timer(timer_id, hours, minutes, seconds)`` on ``board`` (the duration's parts add
    up; see :class:`SetTimerArgs`)."""

    def set_timer(hours: float = 0, minutes: float = 0, seconds: float = 0, label: str = "timer") -> str:
        info = board.set(duration_seconds(hours, minutes, seconds), label)
        return f"Timer {info.id} '{info.label}' set for {info.seconds:g} s."

    def list_timers() -> str:
        timers = board.list()
        if not timers:
            return "No timers are running."
        return "\n".join(_describe_timer(info) for info in timers)

    def cancel_timer(timer_id: str) -> str:
        if board.cancel(timer_id.strip()):
            return f"Cancelled timer {timer_id.strip()}."
        running = ", ".join(info.id for info in board.list()) or "none"
        raise ActionError(f"No running timer has the id {timer_id!r}; running timers: {running}.")

    def change_timer(timer_id: str, hours: float = 0, minutes: float = 0, seconds: float = 0) -> str:
        info = board.change(timer_id.strip(), duration_seconds(hours, minutes, seconds))
        return f"Timer {info.id} '{info.label}' now rings in {info.seconds:g} s."

    return [
        _tool(set_timer, name="set_timer", args_schema=SetTimerArgs, kind="timer",
              # Not the label: Whisper tiny mishears names the model heard right ("cookies" as
              # "clock keys"), and a wrong label is harmless where a made-up timer is not.
              heard_args=_HEARD_DURATION,
              description="Start a countdown timer; its hours, minutes and seconds add up."),
        _tool(list_timers, name="list_timers", args_schema=NoArgs, kind="timer",
              description="List the running timers and the time left."),
        _tool(cancel_timer, name="cancel_timer", args_schema=CancelTimerArgs, kind="timer",
              description="Stop a running timer by its id."),
        _tool(change_timer, name="change_timer", args_schema=ChangeTimerArgs, kind="timer",
              heard_args=_HEARD_DURATION,
              description="Make a running timer, by its id, ring after a new duration from now."),
    ]


# --- webhook and events ------------------------------------------------------------------


class EventArgs(_Args):
    """Arguments of ``send_webhook`` and ``emit_event``."""

    event: str = Field(
        min_length=1, max_length=MAX_EVENT_CHARS,
        description="A short name for what happened or what to do, e.g. 'doorbell' or 'lights_on'.",
    )
    details: str = Field(
        "", max_length=MAX_DETAILS_CHARS,
        description="Optional details in plain words, e.g. what was heard and when.",
    )


def check_webhook_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host, else :class:`ConfigError`."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"Webhook URL {url!r} is not usable: give an absolute http:// or https:// URL with a "
            "host, e.g. 'https://example.com/hook'."
        )
    return url.strip()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Turns redirects into errors: the POST goes to exactly the configured URL, nowhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def webhook_tool(url: str, *, name: str = "send_webhook", timeout_s: float = 5.0) -> BaseTool:
    """A tool that POSTs ``{"event", "details", "sent_at"}`` as JSON to the fixed ``url``.

    The model chooses only the event and details, never the address. Non-2xx answers,
    redirects, timeouts and connection failures come back as the tool's error answer.
    """
    target = check_webhook_url(url)
    if not timeout_s > 0:
        raise ConfigError(f"timeout_s must be above 0 seconds, got {timeout_s}.")
    host = urllib.parse.urlsplit(target).netloc
    opener = urllib.request.build_opener(_NoRedirects)

    def send_webhook(event: str, details: str = "") -> str:
        body = json.dumps(
            {"event": event, "details": details, "sent_at": datetime.now(timezone.utc).isoformat()}
        ).encode("utf-8")
        request = urllib.request.Request(
            target, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "salmonn-agent"},
        )
        try:
            with opener.open(request, timeout=timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise ActionError(
                f"The webhook at {host} answered HTTP {exc.code} {exc.reason}; the event was not "
                "accepted. Tell the user the webhook failed."
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise ActionError(
                f"Could not reach the webhook at {host} ({reason}) within {timeout_s:g} s; the event "
                "was not sent. Tell the user the webhook is unreachable."
            ) from exc
        return f"Sent event {event!r} to the webhook (HTTP {status})."

    return _tool(
        send_webhook, name=name, args_schema=EventArgs, kind="webhook", flow="sends_out",
        description="Notify the user's configured web service (webhook) that something happened.",
    )


class ActionEvent(BaseModel):
    """An event an agent emitted with ``emit_event``."""

    model_config = ConfigDict(frozen=True)

    event: str
    details: str = ""
    time: datetime


def event_tool(callback: Callable[[ActionEvent], Any], *, name: str = "emit_event") -> BaseTool:
    """A tool that calls ``callback(ActionEvent(event, details, time))`` in the caller's thread."""

    def emit_event(event: str, details: str = "") -> str:
        action = ActionEvent(event=event, details=details, time=_now())
        try:
            callback(action)
        except Exception as exc:
            raise ActionError(f"The event handler failed: {type(exc).__name__}: {exc}") from exc
        return f"Emitted event {event!r}."

    return _tool(
        emit_event, name=name, args_schema=EventArgs, kind="event",
        description="Signal the host application that something happened (e.g. a sound was heard).",
    )


# --- configuration -----------------------------------------------------------------------


def _default_notes_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("salmonn-agent")) / "notes.txt"


class ActionsConfig(BaseModel):
    """Which actions :func:`build_actions` makes, and where they write."""

    model_config = ConfigDict(extra="forbid")

    notes_path: Path = Field(default_factory=_default_notes_path, description="The notes file.")
    notes_max_chars: int = Field(MAX_NOTE_CHARS, ge=1, description="Longest note accepted.")
    timers: bool = Field(True, description="Offer set_timer, list_timers, cancel_timer and change_timer.")
    max_timers: int = Field(20, ge=1, description="Most timers running at once.")
    webhook_url: str | None = Field(None, description="http(s) URL send_webhook POSTs to (None: no webhook tool).")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Webhook request timeout.")

    @field_validator("webhook_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else check_webhook_url(value)


def build_actions(
    config: ActionsConfig,
    *,
    on_event: Callable[[ActionEvent], Any] | None = None,
    on_timer: Callable[[TimerInfo], None] | None = None,
    board: TimerBoard | None = None,
) -> list[BaseTool]:
    """The tools ``config`` asks for: notes, timers, the webhook (with a URL), events (with ``on_event``).

    Pass your own ``board`` to be able to close its timers; otherwise one is made with
    ``on_fire=on_timer`` (its daemon threads end with the process).
    """
    tools = notes_tools(NotesBook(config.notes_path, max_chars=config.notes_max_chars))
    if config.timers:
        tools += timer_tools(board or TimerBoard(on_fire=on_timer, max_timers=config.max_timers))
    if config.webhook_url is not None:
        tools.append(webhook_tool(config.webhook_url, timeout_s=config.webhook_timeout_s))
    if on_event is not None:
        tools.append(event_tool(on_event))
    return tools
