"""salmonn-agent: ears for conversational agents.

The public API, from the model up to the voice assistant:

    from salmonn_agent import ChatSALMONN, load_model

    model = load_model()            # salmonn-mini, $SALMONN_AGENT_MODEL or a model directory
    chat = ChatSALMONN()            # the same model as a LangChain chat model

Each name loads its module on first use, so ``import salmonn_agent`` imports neither PyTorch
nor LangChain; the CLI and the front-end start without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from salmonn_agent._lazy import lazy_exports

if TYPE_CHECKING:
    from salmonn_agent.agent.audio_refs import AudioResolver
    from salmonn_agent.agent.hearing import HearingTools
    from salmonn_agent.agent.policy import ActionGate, ActionPolicy
    from salmonn_agent.agent.runtime import AgentConfig, VoiceAgent
    from salmonn_agent.agent.watch import SoundWatch
    from salmonn_agent.audio import load_audio
    from salmonn_agent.chat.errors import ContentBlockError
    from salmonn_agent.chat.messages import audio_message
    from salmonn_agent.chat_model import ChatSALMONN
    from salmonn_agent.errors import (
        AudioError,
        CheckpointError,
        ConfigError,
        ModelNotAvailableError,
        SalmonnError,
    )
    from salmonn_agent.registry import load_model
    from salmonn_agent.model.salmonn import SALMONN
    from salmonn_agent.stream.config import SegmenterConfig
    from salmonn_agent.stream.errors import FrontendError
    from salmonn_agent.stream.listener import Listener
    from salmonn_agent.stream.sources import ArraySource, FileSource, MicrophoneSource
    from salmonn_agent.stream.windows import AudioWindow

_EXPORTS = {
    # the model
    "SALMONN": "salmonn_agent.model.salmonn",
    "load_model": "salmonn_agent.registry",
    "load_audio": "salmonn_agent.audio",
    # LangChain
    "ChatSALMONN": "salmonn_agent.chat_model",
    "audio_message": "salmonn_agent.chat.messages",
    # the streaming front-end
    "Listener": "salmonn_agent.stream.listener",
    "SegmenterConfig": "salmonn_agent.stream.config",
    "MicrophoneSource": "salmonn_agent.stream.sources",
    "FileSource": "salmonn_agent.stream.sources",
    "ArraySource": "salmonn_agent.stream.sources",
    "AudioWindow": "salmonn_agent.stream.windows",
    # agents
    "HearingTools": "salmonn_agent.agent.hearing",
    "AudioResolver": "salmonn_agent.agent.audio_refs",
    "VoiceAgent": "salmonn_agent.agent.runtime",
    "AgentConfig": "salmonn_agent.agent.runtime",
    "ActionGate": "salmonn_agent.agent.policy",
    "ActionPolicy": "salmonn_agent.agent.policy",
    "SoundWatch": "salmonn_agent.agent.watch",
    # errors
    "SalmonnError": "salmonn_agent.errors",
    "AudioError": "salmonn_agent.errors",
    "ConfigError": "salmonn_agent.errors",
    "CheckpointError": "salmonn_agent.errors",
    "ModelNotAvailableError": "salmonn_agent.errors",
    "FrontendError": "salmonn_agent.stream.errors",
    "ContentBlockError": "salmonn_agent.chat.errors",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
