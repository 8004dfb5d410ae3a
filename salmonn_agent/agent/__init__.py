"""Agent tools and the voice-assistant runtime: hearing combined with actions, safely.

* :mod:`~salmonn_agent.agent.actions`: real actions (notes file, timers, webhook, Python
  events) as LangChain tools;
* :mod:`~salmonn_agent.agent.policy`: the :class:`ActionGate` every action triggered by heard
  audio goes through (allowlist, argument checks, rate limits, confirmation, audit log).
* :mod:`~salmonn_agent.agent.audio_refs` and :mod:`~salmonn_agent.agent.hearing`: hearing
  tools (transcribe, describe, ask about or listen to audio) for any LangChain agent;
* :mod:`~salmonn_agent.agent.runtime`: :class:`VoiceAgent`, the voice-assistant loop, with
  :mod:`~salmonn_agent.agent.memory` (bounded conversation memory) and
  :mod:`~salmonn_agent.agent.watch` (:class:`SoundWatch`: act once per detected sound event).

The names below load on first use (``salmonn-agent`` starts without importing LangChain).

    from salmonn_agent.agent import ActionGate, ActionPolicy, AuditLog, NotesBook, notes_tools

    gate = ActionGate(ActionPolicy(allow=["add_note"]), AuditLog("audit.jsonl"))
    tools = gate.guard(notes_tools(NotesBook("notes.txt")), context=lambda: {"turn": 1})
"""

from salmonn_agent._lazy import lazy_exports

_EXPORTS = {
    "ActionError": ".actions",
    "ActionEvent": ".actions",
    "ActionsConfig": ".actions",
    "NotesBook": ".actions",
    "TimerBoard": ".actions",
    "TimerInfo": ".actions",
    "build_actions": ".actions",
    "event_tool": ".actions",
    "notes_tools": ".actions",
    "timer_tools": ".actions",
    "webhook_tool": ".actions",
    "ActionDecision": ".policy",
    "ActionGate": ".policy",
    "ActionOutcome": ".policy",
    "ActionPolicy": ".policy",
    "ActionRequest": ".policy",
    "AuditLog": ".policy",
    "AuditRecord": ".policy",
    "DecisionCode": ".policy",
    "GatedTool": ".policy",
    "RateLimit": ".policy",
    "AudioRefError": ".audio_refs",
    "AudioResolver": ".audio_refs",
    "ResolvedAudio": ".audio_refs",
    "WindowStore": ".audio_refs",
    "HearingError": ".hearing",
    "HearingTools": ".hearing",
    "ConversationMemory": ".memory",
    "AgentConfig": ".runtime",
    "TurnMetrics": ".runtime",
    "TurnResult": ".runtime",
    "VoiceAgent": ".runtime",
    "Detection": ".watch",
    "SoundWatch": ".watch",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
