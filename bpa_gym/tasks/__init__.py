"""Tasks: item sources with scorers.  ``make_task("gsm8k", data_dir=...)`` builds one by name."""

from __future__ import annotations

import os

from bpa_gym.errors import ConfigError
from bpa_gym.tasks.base import Task

#: Task name -> "module:Class" (imported lazily).
TASKS: dict[str, str] = {
    "gsm8k": "bpa_gym.tasks.gsm8k:GSM8KTask",
    "humaneval": "bpa_gym.tasks.humaneval:HumanEvalTask",
}


def make_task(task: str | Task, data_dir: str | os.PathLike | None = None) -> Task:
    """A task object from its name (``"gsm8k"``), or ``task`` itself if it already is one.

    Args:
        task: A name from :data:`TASKS` or an object implementing :class:`Task`.
        data_dir: Folder holding ``gsm8k/``, ``humaneval/`` (etc.) as in the project's shared
            data; ``None`` uses ``$BPA_DATA_DIR`` and then the Hugging Face hub.
    """
    if not isinstance(task, str):
        if isinstance(task, Task):
            return task
        raise ConfigError(f"task must be a name from {sorted(TASKS)} or a Task object, got {type(task).__name__}")
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}")
    import importlib

    module, cls = TASKS[task].split(":")
    return getattr(importlib.import_module(module), cls)(data_dir=data_dir)


__all__ = ["TASKS", "Task", "make_task"]
