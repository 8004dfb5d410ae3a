"""The audio front-end: microphone, file or array → VAD → windows SALMONN hears.

"Stream" here is the stream of audio samples coming in; the stream of tokens of a chat
reply is :mod:`salmonn_agent.chat.streaming`'s business.

    from salmonn_agent.stream import Listener, FileSource, MicrophoneSource, SegmenterConfig

    with Listener(FileSource("meeting.wav"), SegmenterConfig(hangover_ms=500)) as listener:
        for window in listener:       # AudioWindow: samples, start/end, kind, metrics
            print(window.kind, window.start, window.end)

Nothing here imports webrtcvad, sounddevice or torch at import time: a machine without
PortAudio can import the package and use files; the microphone reports what is missing.
"""

from salmonn_agent.stream.config import SegmenterConfig
from salmonn_agent.stream.errors import FrontendError
from salmonn_agent.stream.listener import FrontendStats, Listener
from salmonn_agent.stream.sources import (
    ArraySource,
    AudioChunk,
    FileSource,
    InputDevice,
    IteratorSource,
    MicrophoneSource,
    Source,
    list_input_devices,
)
from salmonn_agent.stream.segmenter import Segmenter, SegmenterStats, segment
from salmonn_agent.stream.windows import AudioWindow, WindowKind, WindowMetrics

__all__ = [
    "ArraySource",
    "AudioChunk",
    "AudioWindow",
    "FileSource",
    "FrontendError",
    "FrontendStats",
    "InputDevice",
    "IteratorSource",
    "Listener",
    "MicrophoneSource",
    "Segmenter",
    "SegmenterConfig",
    "SegmenterStats",
    "Source",
    "WindowKind",
    "WindowMetrics",
    "list_input_devices",
    "segment",
]
