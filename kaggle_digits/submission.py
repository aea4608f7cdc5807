"""Write and check submission files, and keep the ledger of what was submitted and how it scored."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import config
from .config import Task
from .errors import DataError
from .helpers import write_atomically


def config_hash(
    task: str, model: str, requested_params: dict[str, Any], seed: int, data_checksum: str, source: str = ""
) -> str:
    """What "nothing changed" compares: task, model, the hyperparameters asked for, seed and training data, and for
    a user's model the SHA-256 of its source (an edited model is a new configuration; a library upgrade is not)."""
    fields = {"task": task, "model": model, "params": requested_params, "seed": seed, "data": data_checksum}
    if source:  # only a user's model has one: a built-in's hash stays what it always was
        fields["source"] = source
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def submission_path(model_name: str, task: Task, folder: Path | None = None) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")[:-4] + "Z"  # 1/100 s: two runs never clash
    prefix = "" if task.name == config.DEFAULT_TASK else f"{task.name}-"
    return Path(folder or config.SUBMISSIONS_DIR) / f"{stamp}-{prefix}{model_name}.csv"


def submission_files(model_name: str, task: Task, folder: Path | None = None) -> list[Path]:
    """The files submission_path wrote for this model and task, oldest first. Exactly those: for the default task,
    "*-cnn.csv" alone would take "<time>-kannada-mnist-cnn.csv" too (the time stamp holds no dash)."""
    prefix = "" if task.name == config.DEFAULT_TASK else f"{task.name}-"
    name = f"{prefix}{model_name}.csv"
    found = Path(folder or config.SUBMISSIONS_DIR).glob(f"*-{name}")
    return sorted(path for path in found if path.name.split("-", 1)[1] == name)


def write_submission(path: Path, ids: np.ndarray, labels: np.ndarray, task: Task, sidecar: dict[str, Any]) -> Path:
    """Write the CSV and its JSON sidecar atomically, then check the CSV as Kaggle would."""
    id_column, label_column = task.submission_header
    text = io.StringIO()
    text.write(f"{id_column},{label_column}\n")
    np.savetxt(text, np.column_stack([ids, labels]), fmt="%d", delimiter=",")
    content = text.getvalue().encode()
    write_atomically(path, lambda handle: handle.write(content))
    try:
        check_submission(path, task, ids)
    except DataError:
        path.unlink(missing_ok=True)
        raise
    sidecar = {**sidecar, "file": path.name, "checksum": file_checksum(path)}
    write_atomically(path.with_suffix(".json"), lambda handle: handle.write(json.dumps(sidecar, indent=2).encode()))
    return path


def check_submission(path: Path, task: Task, expected_ids: np.ndarray | None = None) -> int:
    """Header, one row per test image, ids as expected and unique, labels in range; returns the row count."""
    id_column, label_column = task.submission_header
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such submission file. Fix: check the path, or run 'make predict' to write one")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV. Fix: submit the CSV that 'make predict' wrote") from None
    if not lines or lines[0].strip() != f"{id_column},{label_column}":
        found = lines[0].strip() if lines else "(empty file)"
        raise DataError(
            f"{path} line 1: header is '{found}', expected '{id_column},{label_column}'. Fix: write it with 'make "
            f"predict'"
        )
    ids, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split(",")
        if len(parts) != 2 or not all(part.strip().lstrip("-").isdigit() for part in parts):
            raise DataError(
                f"{path} line {number}: '{line}' is not two integers '{id_column},{label_column}'. Fix: write it with "
                f"'make predict'"
            )
        ids.append(int(parts[0]))
        labels.append(int(parts[1]))
    ids_array, labels_array = np.array(ids), np.array(labels)
    if expected_ids is None:
        expected_ids = np.arange(1, len(ids) + 1) if task.test_id_column is None else np.sort(ids_array)
    if len(ids) != len(expected_ids):
        raise DataError(
            f"{path}: {len(ids)} rows, expected {len(expected_ids)} (one per test image). Fix: predict again on the "
            f"full test file"
        )
    if len(set(ids)) != len(ids):
        duplicate = int(ids_array[np.flatnonzero(np.diff(np.sort(ids_array)) == 0)[0]])
        raise DataError(f"{path}: {id_column} {duplicate} appears more than once. Fix: predict again")
    if not np.array_equal(np.sort(ids_array), np.sort(expected_ids)):
        missing = sorted(set(expected_ids.tolist()) - set(ids))[:3]
        raise DataError(f"{path}: {id_column}s do not match the test file (missing e.g. {missing}). Fix: predict again")
    bad = np.flatnonzero((labels_array < 0) | (labels_array >= len(task.class_names)))
    if len(bad):
        raise DataError(
            f"{path} line {bad[0] + 2}: {label_column} {labels_array[bad[0]]} is not 0..{len(task.class_names) - 1}. "
            f"Fix: predict again"
        )
    return len(ids)


def file_checksum(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_sidecar(path: Path) -> dict[str, Any]:
    """The submission's .json sidecar; {} when there is none (a file made elsewhere)."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.exists():
        return {}
    try:
        content = json.loads(sidecar.read_text())
        if not isinstance(content, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise DataError(
            f"{sidecar} is damaged ({type(error).__name__}). Fix: delete it (the submission then counts as made "
            f"elsewhere: a scheduled run trains anew) or predict again with 'make predict'"
        ) from None
    return content
