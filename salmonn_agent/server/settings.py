"""What ``salmonn-agent serve`` is configured with (also the Ray Serve deployment's options)."""

from __future__ import annotations

import ipaddress
import threading

from pydantic import BaseModel, ConfigDict, Field, SecretStr

API_KEY_ENV = "SALMONN_AGENT_API_KEY"
"""Environment variable holding the server's API key (and the client's, for ``ask --server``)."""
SERVER_ENV = "SALMONN_AGENT_SERVER"
"""Environment variable naming the server ``salmonn-agent ask`` sends questions to."""


class ServerSettings(BaseModel):
    """Limits and access of the HTTP server."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = None
    """Clients must send ``Authorization: Bearer <api_key>`` when it is set."""
    insecure: bool = False
    """Allow a non-loopback address without an API key."""
    max_body_bytes: int = Field(25_000_000, ge=1)
    """Largest request body; bigger ones get 413."""
    max_in_flight: int = Field(32, ge=1)
    """Requests running or queued at once; more get 503 with ``Retry-After``."""
    retry_after_s: int = Field(1, ge=0)
    """The ``Retry-After`` a client is told when the server is busy."""
    request_timeout_s: float | None = Field(300.0, gt=0)
    """Longest a request may take (queueing and generation) before it stops with 504."""
    max_sessions: int = Field(4, ge=1)
    """Live sessions (browser tabs on ``/v1/live``) at once; more are refused."""
    max_frame_bytes: int = Field(32_000, ge=2)
    """Largest binary audio frame of a live session (32,000 bytes: 1 s of 16 kHz 16-bit audio)."""
    max_frames_per_s: int = Field(50, ge=1)
    """Most audio frames a live session may send in any second."""
    max_session_audio_s: float = Field(3600.0, gt=0)
    """Most audio one live session may stream, in seconds; then it is closed."""


class Slots:
    """A thread-safe count of what is open (requests in flight, live sessions) against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.open = limit, 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Count one in, unless ``limit`` are already open."""
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        """Count one out."""
        with self._lock:
            self.open -= 1


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: ServerSettings) -> None:
    """Refuse to listen on a network address without an API key, unless ``insecure`` is set."""
    from salmonn_agent.errors import ConfigError

    if not is_loopback(settings.host) and settings.api_key is None and not settings.insecure:
        raise ConfigError(
            f"Refusing to listen on {settings.host} without an API key: anyone who can reach it could use "
            f"the model. Give --api-key KEY (or set ${API_KEY_ENV}), or --insecure if the network is yours."
        )
