"""The official prompts JSON: task → instruction templates with ``<SpeechHere>`` (and ``{}`` for Q).

As upstream, templates without ``<SpeechHere>`` are dropped and the model's prompt template
(``USER: {}\\nASSISTANT:``) is applied once at load time; a template with ``{}`` receives the
sample's question ``Q``. The template of a sample is drawn from a generator seeded by
(seed, epoch, sample index), so data order and prompts replay exactly on resume.
"""

from __future__ import annotations

import random
from pathlib import Path

from salmonn_agent.config import AUDIO_PLACEHOLDER, AUDIO_WRAPPER, read_data_file
from salmonn_agent.errors import ConfigError

DEFAULT_INSTRUCTIONS = {
    "asr": f"{AUDIO_WRAPPER} Recognize the speech and give me the transcription.",
    "audiocaption": f"{AUDIO_WRAPPER} Please describe the audio.",
    "QA": f"{AUDIO_WRAPPER} {{}}",
}


class PromptBank:
    """Rendered prompts per task: ``choose(task, q, rng)`` returns one full LLM prompt."""

    def __init__(self, templates: dict[str, list[str]], prompt_template: str) -> None:
        self.prompt_template = prompt_template
        self.raw = {task: [t for t in items if AUDIO_PLACEHOLDER in t] for task, items in templates.items()}
        self.rendered = {task: [prompt_template.replace("{}", t, 1) for t in items] for task, items in self.raw.items()}

    @classmethod
    def load(cls, path: str | Path | None, prompt_template: str) -> "PromptBank":
        """Read a prompts JSON (None: a small built-in bank for asr / audiocaption / QA)."""
        if path is None:
            return cls({k: [v] for k, v in DEFAULT_INSTRUCTIONS.items()}, prompt_template)
        raw = read_data_file(path, "json", "fix datasets.prompt_path")
        if isinstance(raw, dict):  # the official test_prompt.json maps a task to one string
            raw = {k: [v] if isinstance(v, str) else v for k, v in raw.items()}
        if not isinstance(raw, dict) or not all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in raw.values()
        ):
            raise ConfigError(f"{str(path)!r} must map each task name to a template or a list of templates.")
        return cls(raw, prompt_template)

    @property
    def tasks(self) -> list[str]:
        return sorted(t for t, items in self.rendered.items() if items)

    def check_tasks(self, tasks: set[str], source: str) -> None:
        """Refuse annotation tasks with no template (upstream would crash mid-training)."""
        missing = sorted(t for t in tasks if not self.rendered.get(t))
        if missing:
            raise ConfigError(
                f"{source} uses tasks {missing} that have no template with {AUDIO_PLACEHOLDER} in the "
                f"prompt file (it has {self.tasks}); add templates for them to datasets.prompt_path."
            )

    def choose(self, task: str, question: str, rng: random.Random) -> str:
        """A random rendered template of ``task`` with ``{}`` filled by ``question``."""
        return _fill(rng.choice(self.rendered[task]), question)

    def first(self, task: str, question: str) -> str:
        """The first template of ``task`` (deterministic prompts for evaluation)."""
        return _fill(self.rendered[task][0], question)


def _fill(prompt: str, question: str) -> str:
    # Only the instruction's own "{}" (the template's was consumed when rendering).
    return prompt.replace("{}", question, 1) if "{}" in prompt else prompt


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator that picks the template of sample ``index`` in data epoch ``epoch``."""
    return random.Random(f"{seed}/{epoch}/{index}")
