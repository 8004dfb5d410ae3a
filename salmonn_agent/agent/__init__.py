"""Agent tools and the voice-assistant runtime: hearing combined with actions, safely.

* :mod:`~salmonn_agent.agent.actions`: real actions (notes file, timers, webhook, Python
  events) as LangChain tools;
* :mod:`~salmonn_agent.agent.policy`: the :class:`ActionGate` every action triggered by heard
  audio goes through (allowlist, argument checks, rate limits, confirmation, audit log).
* :mod:`~salmonn_agent.agent.audio_refs` and :mod:`~salmonn_agent.agent.hearing`: hearing
  tools (transcribe, describe, ask about or listen to audio) for any LangChain agent;
* :mod:`~salmonn_agent.agent.runtime`: :class:`VoiceAgent`, the voice-assistant loop.

    from salmonn_agent.agent import ActionGate, ActionPolicy, AuditLog, NotesBook, notes_tools

    gate = ActionGate(ActionPolicy(allow=["add_note"]), AuditLog("audit.jsonl"))
    tools = gate.guard(notes_tools(NotesBook("notes.txt")), context=lambda: {"turn": 1})
"""

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
from salmonn_agent.agent.policy import (
    ActionDecision,
    ActionGate,
    ActionOutcome,
    ActionPolicy,
    ActionRequest,
    AuditLog,
    AuditRecord,
    DecisionCode,
    GatedTool,
    RateLimit,
)

__all__ = [
    "ActionDecision",
    "ActionError",
    "ActionEvent",
    "ActionGate",
    "ActionOutcome",
    "ActionPolicy",
    "ActionRequest",
    "ActionsConfig",
    "AuditLog",
    "AuditRecord",
    "DecisionCode",
    "GatedTool",
    "NotesBook",
    "RateLimit",
    "TimerBoard",
    "TimerInfo",
    "build_actions",
    "event_tool",
    "notes_tools",
    "timer_tools",
    "webhook_tool",
]
