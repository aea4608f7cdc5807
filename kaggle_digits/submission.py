"""Write and check submission files, and keep the ledger of what was submitted and how it scored."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import config
from .config import Task
from .errors import DataError
from .helpers import exclusive, write_atomically

if TYPE_CHECKING:  # the ledger reads Kaggle's answers; it does not talk to Kaggle
    from .kaggle_api import SubmissionState

# Rows whose outcome on Kaggle is not settled yet: the file may be there, so it never goes up again
# until Kaggle's list says otherwise (see workflow.settle_open_rows).
OPEN_STATUSES = ("UPLOADING", "UNKNOWN", "PENDING")

LEDGER_COLUMNS = [
    "run_id",
    "time",
    "task",
    "file",
    "checksum",
    "model",
    "holdout_accuracy",
    "kaggle_ref",
    "status",
    "public_score",
    "private_score",
    "message",
    "config",
    "trained_on",
    "accelerator",  # --remote kaggle: the machineShape the kernel asked for (or CPU); empty for a local run
    "competition",  # where it went: open rows are settled from that competition's list only
]
# A ledger written before the config, trained_on, accelerator and competition columns is still read.
REQUIRED_COLUMNS = [column for column in LEDGER_COLUMNS if column not in ("config", "trained_on", "accelerator", "competition")]
STATUSES = {"UPLOADING", "UNKNOWN", "PENDING", "COMPLETE", "ERROR", "FAILED"}
SHORT_CHECKSUM = 16  # hex digits of the file's SHA-256 carried in the description on Kaggle

# "kaggle-digits <run id>: <model>, holdout 0.9875 [file <sha256 prefix> config <hash>] - <message>"
_DESCRIPTION = re.compile(
    r"^kaggle-digits (?P<run_id>\S+): (?P<model>[^,\[]+?)(?:, holdout (?P<holdout>[0-9.]+))?"
    r"(?: \[file (?P<file>[0-9a-f]+)(?: config (?P<config>[0-9a-f]+))?\])?(?: - (?P<message>.*))?$",
    re.S,
)


def config_hash(task: str, model: str, requested_params: dict[str, Any], seed: int, data_checksum: str) -> str:
    """What "nothing changed" compares: task, model, the hyperparameters asked for, seed and training data."""
    text = json.dumps({"task": task, "model": model, "params": requested_params, "seed": seed, "data": data_checksum}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def description(run_id: str, model: str, accuracy: float | None, checksum: str, config: str, message: str) -> str:
    """The submission's description on Kaggle: the run id and what the guards need, so a lost ledger can
    be rebuilt from Kaggle's own list."""
    text = f"kaggle-digits {run_id}: {model}" + (f", holdout {accuracy:.4f}" if accuracy is not None else "")
    text += f" [file {checksum[:SHORT_CHECKSUM]}" + (f" config {config}]" if config else "]")
    return text + (f" - {message}" if message else "")


def parse_description(text: str) -> dict[str, str] | None:
    match = _DESCRIPTION.match(text or "")
    return {key: value or "" for key, value in match.groupdict().items()} if match else None


def submission_path(model_name: str, task: Task, folder: Path | None = None) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")[:-4] + "Z"  # 1/100 s: two runs never clash
    prefix = "" if task.name == config.DEFAULT_TASK else f"{task.name}-"
    return Path(folder or config.SUBMISSIONS_DIR) / f"{stamp}-{prefix}{model_name}.csv"


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
        raise DataError(f"{path} line 1: header is '{found}', expected '{id_column},{label_column}'. Fix: write it with 'make predict'")
    ids, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split(",")
        if len(parts) != 2 or not all(part.strip().lstrip("-").isdigit() for part in parts):
            raise DataError(
                f"{path} line {number}: '{line}' is not two integers '{id_column},{label_column}'. Fix: write it with 'make predict'"
            )
        ids.append(int(parts[0]))
        labels.append(int(parts[1]))
    ids_array, labels_array = np.array(ids), np.array(labels)
    if expected_ids is None:
        expected_ids = np.arange(1, len(ids) + 1) if task.test_id_column is None else np.sort(ids_array)
    if len(ids) != len(expected_ids):
        raise DataError(
            f"{path}: {len(ids)} rows, expected {len(expected_ids)} (one per test image). Fix: predict again on the full test file"
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
            f"{path} line {bad[0] + 2}: {label_column} {labels_array[bad[0]]} is not 0..{len(task.class_names) - 1}. Fix: predict again"
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


class Ledger:
    """submissions/ledger.csv: one row per submission attempt, updated in place as scores arrive.

    Every process of a checkout shares it (cron beside a terminal): each change reads, changes and
    rewrites the file whole under one OS-level lock (`locked()`, reentrant in a process), and a caller
    holds that lock across a whole check-then-write (submit: from "is this file already up?" to the row
    that says it went up)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path or config.LEDGER_PATH)

    @contextlib.contextmanager
    def locked(self) -> Iterator[Ledger]:
        """Hold the ledger's lock (.ledger.csv.lock beside it); when another process holds it, say so and wait."""
        with exclusive(self.path.with_name(f".{self.path.name}.lock"), f"ledger {self.path}"):
            yield self

    def rows(self, task: str | None = None) -> list[dict[str, str]]:
        """Every row (of one task's, when given); [] when there is no ledger. A damaged one is an error, never read as empty."""
        if not self.path.exists():
            return []
        try:
            text = self.path.read_bytes().decode("utf-8")
            reader = csv.DictReader(io.StringIO(text, newline=""))
            if not reader.fieldnames or not set(REQUIRED_COLUMNS) <= set(reader.fieldnames):
                raise self.damaged("its first line is not the ledger's header")
            rows = []
            for row in reader:
                if None in row or None in row.values() or row["status"] not in STATUSES:
                    raise self.damaged(f"line {reader.line_num} is not a ledger row")
                row.setdefault("config", "")
                if task is None or (row.get("task") or config.DEFAULT_TASK) == task:  # rows before the task column: digits
                    rows.append(row)
        except UnicodeDecodeError:
            raise self.damaged("not UTF-8 text") from None
        except csv.Error as error:
            raise self.damaged(str(error)) from None
        return rows

    def damaged(self, reason: str) -> DataError:
        return DataError(
            f"{self.path} is damaged ({reason}); nothing was read from it or written to it. Fix: look at it, then run "
            f"'kaggle-digits ledger --rebuild' to restore it from Kaggle's list (the damaged file is kept beside it)"
        )

    def set_aside(self) -> Path:
        """Move a damaged ledger out of the way, keeping it for the user: ledger.csv.damaged-<UTC time>."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        kept = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        self.path.rename(kept)
        return kept

    def restore(self, remote: list[SubmissionState], task: str, competition: str = "") -> int:
        """Add a row for each of the toolkit's submissions on Kaggle's list that the ledger lacks (by ref)."""
        if not any(parse_description(item.description) for item in remote):
            return 0  # nothing of the toolkit's on Kaggle: nothing to write (a dry run creates no folder)
        with self.locked():
            return self._restore(remote, task, competition)

    def _restore(self, remote: list[SubmissionState], task: str, competition: str) -> int:
        rows = self.rows()
        known = {row["kaggle_ref"] for row in rows if row["kaggle_ref"]}
        added = []
        for item in sorted(remote, key=lambda item: (item.date, item.ref)):  # oldest first, as written
            parsed = parse_description(item.description)
            if parsed is None or str(item.ref) in known:
                continue
            added.append(
                {
                    "run_id": parsed["run_id"],
                    "time": item.date,
                    "task": task,
                    "file": item.file_name,
                    "checksum": parsed["file"],
                    "model": parsed["model"],
                    "holdout_accuracy": parsed["holdout"],
                    "kaggle_ref": str(item.ref),
                    "status": item.status,
                    "public_score": item.public_score,
                    "private_score": item.private_score,
                    "message": item.description,
                    "config": parsed["config"],
                    "competition": competition,
                }
            )
        if added:
            self._write(rows + added)
        return len(added)

    def _write(self, rows: list[dict[str, str]]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LEDGER_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row.get(column, "") for column in LEDGER_COLUMNS})
        data = buffer.getvalue().encode()
        write_atomically(self.path, lambda handle: handle.write(data))

    def add(self, **fields: Any) -> dict[str, str]:
        """A new row; `run_id` is made unique here (the file's stem, then -2, -3...), under the lock."""
        with self.locked():
            rows = self.rows()
            row = {column: "" if fields.get(column) is None else str(fields.get(column)) for column in LEDGER_COLUMNS}
            row["run_id"] = self._unique_run_id(row["run_id"], {existing["run_id"] for existing in rows})
            self._write(rows + [row])
        return row

    @staticmethod
    def _unique_run_id(stem: str, taken: set[str]) -> str:
        """It is in the submission's description on Kaggle, which is how an unsettled row is found there."""
        run_id, number = stem, 1
        while run_id in taken:
            number += 1
            run_id = f"{stem}-{number}"
        return run_id

    def update(self, run_id: str, **fields: Any) -> None:
        with self.locked():
            rows = self.rows()
            for row in rows:
                if row["run_id"] == run_id:
                    row.update({key: "" if value is None else str(value) for key, value in fields.items()})
            self._write(rows)

    def find_submitted(self, task: str, checksum: str) -> dict[str, str] | None:
        """The newest row of a file that is (or may be) on Kaggle for this task with these bytes.

        Refused (ERROR) and never-created (FAILED) files do not count: they may go up again. A row rebuilt
        from Kaggle's list knows only the checksum's first digits: a prefix match counts.
        """
        found = None
        for row in self.rows(task):
            if (
                row["checksum"]
                and checksum.startswith(row["checksum"])
                and ((row["kaggle_ref"] and row["status"] != "ERROR") or row["status"] in OPEN_STATUSES)
            ):
                found = row
        return found
