"""What the local Kaggle serves: competitions made from labeled Kaggle-layout data, and their scoring.

A competition is made from any labeled Kaggle-layout zip: part of its train.csv becomes the hidden
test set; test.csv and sample_submission.csv are generated from it.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from .. import config, data, layout
from ..config import Task


@dataclass
class Submission:
    ref: int
    competition: str
    file_name: str
    description: str
    content: bytes
    date: datetime  # naive UTC, as Kaggle's JSON carries it
    status: str = "PENDING"
    public_score: str = ""
    private_score: str = ""
    error_description: str = ""
    visible_at: float = 0.0  # GetSubmission answers 404 until then (monotonic clock)
    ready_at: float = 0.0  # scored from then on


@dataclass
class Competition:
    """One served competition (or data set): the files users download and the hidden answers."""

    name: str
    task: Task
    files: dict[str, bytes]  # name -> bytes, what the download zip holds
    hidden_labels: np.ndarray | None = None  # the answers, in test.csv order
    hidden_ids: np.ndarray | None = None
    public_mask: np.ndarray | None = None
    rules_accepted: bool = True
    is_dataset: bool = False

    @property
    def archive(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in self.files.items():
                # A fixed timestamp: the same competition is the same bytes (and ETag) on every start.
                archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), content, zipfile.ZIP_DEFLATED)
        return buffer.getvalue()

    def file(self, name: str) -> bytes | None:
        """A file as storage serves it: the whole download (`<name>.zip`) or one of its files."""
        if name == f"{self.name}.zip" and name not in self.files:
            return self.archive
        return self.files.get(name)


def competition_from_labeled(
    source: Path, task: Task | None = None, name: str | None = None, test_fraction: float = 0.2, seed: int = 0, max_rows: int | None = None
) -> Competition:
    """Make a competition from a labeled Kaggle-layout zip or folder: hold part of train.csv back as the test set."""
    task = task or config.BUILTIN_TASKS[config.DEFAULT_TASK]
    labeled = data.load(source, task, use_cache=False)
    images, labels = labeled.train_images, labeled.train_labels
    if max_rows and len(labels) > max_rows:
        images, labels = images[:max_rows], labels[:max_rows]
    return competition_from_arrays(task, images, labels, name=name, test_fraction=test_fraction, seed=seed)


def competition_from_arrays(
    task: Task, images: np.ndarray, labels: np.ndarray, name: str | None = None, test_fraction: float = 0.2, seed: int = 0
) -> Competition:
    train, test = layout.split_holdout(labels, int(round(len(labels) * test_fraction)), seed)
    files = layout.task_files(task, images[train], labels[train], images[test], labels[test])
    rng = np.random.default_rng(seed + 1)
    public = np.zeros(len(test), dtype=bool)
    public[rng.choice(len(test), max(1, len(test) // 4), replace=False)] = True  # Kaggle's 25% public split
    hidden_ids = np.arange(1, len(test) + 1) if not task.test_id_column else np.arange(len(test))
    return Competition(
        name=name or task.ref.split("/")[-1],  # a data set is served under its slug
        task=task,
        files=files,
        hidden_labels=labels[test],
        hidden_ids=hidden_ids,
        public_mask=public,
        is_dataset=task.source == "dataset",
    )


def builtin_competitions(source: Path | None = None) -> list[Competition]:
    """What `serve-local` and the demo serve: every built-in task.

    digit-recognizer is made from the embedded sample (or `source`). The real Fashion-MNIST and
    Kannada-MNIST data are not in the repository, so their competitions are stand-ins: the same
    sample's digits written in each task's exact file layout, so the whole flow runs offline.
    """
    digits = config.BUILTIN_TASKS["digit-recognizer"]
    sample = data.load(Path(source or config.SAMPLE_ZIP), digits, use_cache=False)
    return [competition_from_arrays(task, sample.train_images, sample.train_labels) for task in config.BUILTIN_TASKS.values()]


def score(submission: Submission, competition: Competition) -> None:
    """Categorization accuracy, as Kaggle scores this competition; a malformed file becomes ERROR."""
    id_column, label_column = competition.task.submission_header
    hidden_labels, hidden_ids, public_mask = competition.hidden_labels, competition.hidden_ids, competition.public_mask
    assert hidden_labels is not None and hidden_ids is not None and public_mask is not None, "a submitting competition keeps its answers"
    lines = submission.content.decode("utf-8", errors="replace").strip().splitlines()
    expected = len(hidden_labels)

    def fail(reason: str) -> None:
        submission.status, submission.error_description = "ERROR", reason

    if not lines or lines[0].strip() != f"{id_column},{label_column}":
        return fail(f"Submission must have the header '{id_column},{label_column}'")
    try:
        rows = np.array([[int(value) for value in line.split(",")] for line in lines[1:]])
    except ValueError:
        return fail("Submission contains values that are not integers")
    if rows.ndim != 2 or rows.shape != (expected, 2):
        return fail(f"Submission must have {expected} rows (found {len(lines) - 1})")
    order = {image_id: index for index, image_id in enumerate(hidden_ids.tolist())}
    if set(rows[:, 0].tolist()) != set(order):
        return fail(f"Submission has {id_column} values that are not in the test set, or duplicates")
    positions = np.array([order[image_id] for image_id in rows[:, 0]])
    correct = hidden_labels[positions] == rows[:, 1]
    public = public_mask[positions]
    submission.public_score = f"{correct[public].mean():.5f}"
    submission.private_score = f"{correct[~public].mean():.5f}"
    submission.status = "COMPLETE"
