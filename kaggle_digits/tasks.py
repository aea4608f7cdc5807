"""Look up a task: a built-in one, a task file (TOML) a user wrote, or one in ./tasks/.

A task file describes a 28x28 CSV task without touching the code, e.g. tasks/my-task.toml:

    name = "my-task"
    source = "competition"          # or "dataset" (then ref is owner/slug)
    ref = "my-competition"
    test_id_column = "id"           # omit when rows are numbered ImageId 1..N
    submission_columns = ["id", "label"]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

from . import config
from .config import Task
from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TASK_FOLDER = "tasks"
# Kaggle's slug shape (digit-recognizer, Kannada-MNIST; a data set's owner/slug): names from outside go into
# paths, URLs and a pushed kernel, so anything else (a "/..", a space, a newline) is refused where it comes in.
SLUG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,98}[A-Za-z0-9])?")


def slug_problem(name: str, dataset: bool = False) -> str | None:
    """What is wrong with a Kaggle name, or None when it has the slug shape (owner/slug for a data set)."""
    parts = name.split("/") if dataset else [name]
    if (dataset and len(parts) != 2) or not all(SLUG.fullmatch(part) for part in parts):
        shape = "owner/data-set" if dataset else "letters, digits and dashes, e.g. digit-recognizer"
        return f"{name!r} is not a Kaggle name ({shape})"
    return None


def competition_name(value: str) -> str:
    """argparse type for --competition: a competition's slug, or a data set's owner/slug."""
    problem = slug_problem(value, dataset="/" in value)
    if problem:
        raise argparse.ArgumentTypeError(f"{problem}. Fix: copy it from the competition's address on kaggle.com")
    return value


def task_folders() -> list[Path]:
    """Where task files are looked up by name: ./tasks/ (the current folder's, as the docs say), then the home's
    tasks/ when KAGGLE_DIGITS_HOME is elsewhere (the serve-local recipe sets it: ./tasks/ still counts)."""
    here, home = Path(TASK_FOLDER), config.HOME / TASK_FOLDER
    return [here] if here.resolve() == home.resolve() else [here, home]


def user_task_files() -> list[Path]:
    return [path for folder in task_folders() if folder.is_dir() for path in sorted(folder.glob("*.toml"))]


def all_tasks() -> dict[str, Task]:
    tasks = dict(config.BUILTIN_TASKS)
    for path in reversed(user_task_files()):  # the first folder's file wins a name both have
        task = load_task_file(path)
        tasks[task.name] = task
    return tasks


def get_task(name_or_path: str) -> Task:
    if name_or_path in config.BUILTIN_TASKS:
        return config.BUILTIN_TASKS[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UsageError(f"{path}: no such task file. Fix: check the path, or see 'kaggle-digits tasks'")
        return load_task_file(path)
    for folder in task_folders():
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return load_task_file(candidate)
    known = ", ".join(all_tasks())
    raise UsageError(
        f"unknown task '{name_or_path}'. Fix: choose one of {known}, or pass a task file (--task my-task.toml)"
    )


def load_task_file(path: Path) -> Task:
    """Read and check a task file; every mistake is one line naming the file, the key and the fix."""
    try:
        content = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UsageError(
            f"{path}: not valid TOML ({error}). Fix: see the example in docs/reference.md (Tasks)"
        ) from None
    fields = {field.name: field for field in dataclasses.fields(Task)}
    unknown = sorted(set(content) - set(fields))
    if unknown:
        raise UsageError(f"{path}: unknown key '{unknown[0]}'. Fix: use only {', '.join(fields)}")
    for required in ("name", "source", "ref"):
        if required not in content:
            raise UsageError(f"{path}: '{required}' is missing. Fix: add {required} = \"...\"")
    if content["source"] not in ("competition", "dataset"):
        raise UsageError(f'{path}: source = \'{content["source"]}\'. Fix: source must be "competition" or "dataset"')
    if content["source"] == "dataset" and "/" not in str(content["ref"]):
        raise UsageError(
            f"{path}: ref = '{content['ref']}' is not owner/dataset. Fix: write it as on the data set's page"
        )
    for key, dataset in (("name", False), ("ref", content["source"] == "dataset")):
        problem = slug_problem(str(content[key]), dataset)
        if problem:
            raise UsageError(f"{path}: {key} = {problem}. Fix: write it as on its page on kaggle.com")
    values = {}
    defaults = Task(name="", source="competition", ref="")
    for key, value in content.items():
        default = getattr(defaults, key)
        expected = type(default) if default is not None else (tuple if key == "submission_columns" else str)
        if expected is tuple:
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise UsageError(f'{path}: \'{key}\' must be a list of strings, e.g. {key} = ["id", "label"]')
            value = tuple(value)
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise UsageError(f"{path}: '{key}' must be {expected.__name__}, found {type(value).__name__} ({value!r})")
        values[key] = value
    task = Task(**values)
    if task.submission_columns is not None and len(task.submission_columns) != 2:
        raise UsageError(
            f'{path}: submission_columns must name two columns (id, label). Fix: e.g. ["ImageId", "Label"]'
        )
    if task.test_labeled and task.submission_columns and "submission_columns" in content:
        raise UsageError(
            f"{path}: a task with a labeled test file has no submissions. Fix: drop submission_columns or test_labeled"
        )
    if task.test_labeled and "submission_columns" not in content:
        task = dataclasses.replace(task, submission_columns=None, sample_submission_file=None)
    if len(task.class_names) != config.NUM_CLASSES:
        raise UsageError(
            f"{path}: class_names lists {len(task.class_names)} classes; the models predict {config.NUM_CLASSES}. "
            f"Fix: name exactly {config.NUM_CLASSES} classes, for labels 0..{config.NUM_CLASSES - 1}"
        )
    return task
