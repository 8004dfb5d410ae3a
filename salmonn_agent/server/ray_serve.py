"""Scale-out on Ray Serve: the server's app in N replicas behind Ray's HTTP proxy.

Each replica is the whole ``salmonn-agent serve`` app (:func:`salmonn_agent.server.app.create_app`)
with its own loaded model, batching engine and limits; Ray Serve's proxy spreads requests over
the replicas and its autoscaler adds or removes them. On one machine or a Ray cluster::

    pip install -e ".[ray]"
    serve run salmonn_agent.server.ray_serve:build_app replicas=2
    serve run salmonn_agent.server.ray_serve:build_app model=/models/salmonn-7b num_gpus=0.5 \\
        min_replicas=1 max_replicas=4

``build_app`` is a Ray Serve application builder: ``serve run`` passes the ``key=value`` pairs
as a dict (see :class:`RayServeOptions` for the keys).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from salmonn_agent.errors import ConfigError, format_validation_error
from salmonn_agent.server.settings import API_KEY_ENV, ServerSettings


class RayServeOptions(BaseModel):
    """What ``serve run salmonn_agent.server.ray_serve:build_app key=value ...`` accepts."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """Model directory or hub id (default ``$SALMONN_AGENT_MODEL``, else salmonn-mini)."""
    config: str | None = None
    """An official SALMONN ``decode_config.yaml`` instead of ``model``."""
    device: str = "auto"
    dtype: str = "auto"
    quantize: str | None = None
    """The LLM's weights in ``int8`` or ``int4`` (as the CLI's ``--quantize``)."""
    name: str = "salmonn"
    """The Ray Serve deployment's name."""
    replicas: int = Field(1, ge=1)
    """Fixed replica count (ignored when ``max_replicas`` turns autoscaling on)."""
    min_replicas: int = Field(1, ge=0)
    max_replicas: int | None = Field(None, ge=1)
    """Set to autoscale between ``min_replicas`` and this, on requests in flight per replica."""
    target_ongoing_requests: float = Field(4.0, gt=0)
    """The autoscaler's target of requests in flight per replica."""
    num_cpus: float = Field(1.0, ge=0)
    """CPUs Ray reserves per replica."""
    num_gpus: float = Field(0.0, ge=0)
    """GPUs (or a fraction) Ray reserves per replica."""
    max_batch_size: int = Field(16, ge=1)
    max_in_flight: int = Field(32, ge=1)
    max_body_mb: float = Field(25.0, gt=0)
    api_key: str | None = None
    """Clients' Bearer key (default ``$SALMONN_AGENT_API_KEY`` of the process that runs ``serve run``)."""

    @model_validator(mode="after")
    def _one_source(self) -> RayServeOptions:
        if self.model and self.config:
            raise ValueError("give model or config, not both")
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be at least min_replicas")
        return self

    def settings(self) -> ServerSettings:
        """The limits each replica's app enforces."""
        return ServerSettings(api_key=self.api_key, max_body_bytes=int(self.max_body_mb * 1e6),
                              max_in_flight=self.max_in_flight)

    def deployment_options(self) -> dict[str, Any]:
        """``serve.deployment`` options: replicas or autoscaling, resources, the in-flight bound."""
        options: dict[str, Any] = {
            "name": self.name,
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "max_ongoing_requests": self.max_in_flight,
        }
        if self.max_replicas is not None:
            options["autoscaling_config"] = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                                             "target_ongoing_requests": self.target_ongoing_requests}
        else:
            options["num_replicas"] = self.replicas
        return options


class SalmonnReplica:
    """One Ray Serve replica: builds the server app (which loads the model in the background)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = RayServeOptions.model_validate(options)

    def __serve_build_asgi_app__(self) -> Any:  # noqa: PLW3201 - Ray Serve's hook name
        from salmonn_agent.chat_model import ChatSALMONN
        from salmonn_agent.model.salmonn import SALMONN
        from salmonn_agent.registry import load_model, resolve_model_name
        from salmonn_agent.server.app import create_app

        options = self.options
        name = os.path.basename(os.path.normpath(options.config or resolve_model_name(options.model)))

        def load() -> ChatSALMONN:
            if options.config:
                client = SALMONN.from_official(options.config, device=options.device, dtype=options.dtype,
                                               quantize=options.quantize)
            else:
                client = load_model(options.model, device=options.device, dtype=options.dtype,
                                    quantize=options.quantize)
            return ChatSALMONN(client=client, model=name, max_batch_size=options.max_batch_size,
                               local_audio=False, allow_remote_audio=False)

        return create_app(options.settings(), load)


def build_app(args: dict[str, Any]) -> Any:
    """The Ray Serve application (``serve run salmonn_agent.server.ray_serve:build_app k=v ...``)."""
    try:
        from ray import serve
    except ImportError:
        raise ConfigError('Ray Serve is not installed; install it with pip install -e ".[ray]"') from None
    values = dict(args)
    values.setdefault("api_key", os.environ.get(API_KEY_ENV) or None)
    try:
        options = RayServeOptions.model_validate(values)
    except ValidationError as err:
        raise ConfigError(f"Ray Serve options: {format_validation_error(err)}") from None
    deployment = serve.deployment(**options.deployment_options())(serve.ingress()(SalmonnReplica))
    return deployment.bind(options.model_dump())
