"""Training SALMONN: data, prompts, loss, schedule, the accelerate-based loop and its CLI.

Public entry points: :class:`~salmonn_agent.training.config.TrainConfig` (the YAML file),
:func:`~salmonn_agent.training.trainer.train` and :func:`~salmonn_agent.training.trainer.evaluate`.
"""

from salmonn_agent.training.config import TrainConfig, load_train_config

__all__ = ["TrainConfig", "load_train_config"]
