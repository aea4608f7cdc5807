"""Look up a task by name: the built-in ones, or a user's task file."""

from __future__ import annotations

from . import config
from .config import Task
from .errors import UsageError


def get_task(name: str) -> Task:
    if name in config.BUILTIN_TASKS:
        return config.BUILTIN_TASKS[name]
    raise UsageError(f"unknown task '{name}'. Fix: choose one of {', '.join(config.BUILTIN_TASKS)}")
