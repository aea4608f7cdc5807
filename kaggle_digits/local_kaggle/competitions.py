"""What the local Kaggle serves: competitions made from labeled Kaggle-layout data, and their scoring.

A competition is made from any labeled Kaggle-layout zip: part of its train.csv becomes the hidden
test set; test.csv and sample_submission.csv are generated from it.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
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
    team: str = ""  # the submitting user's team (here: the user name), as the leaderboard shows it
    status: str = "PENDING"
    public_score: str = ""
    private_score: str = ""
    error_description: str = ""
    visible_at: float = 0.0  # GetSubmission answers 404 until then (monotonic clock)
    listed_at: float = 0.0  # ListSubmissions leaves it out until then
    ready_at: float = 0.0  # scored from then on


@dataclass(frozen=True)
class Team:
    """A team on the public leaderboard: its best public score (as Kaggle writes it) and when it was made."""

    team_id: int
    name: str
    score: str
    date: datetime  # naive UTC


# Digit Recognizer's public leaderboard has about 1,400 teams; its public score is the accuracy on 7,000
# of the 28,000 test images (25%), so every score is a multiple of 1/7,000 and ties are common.
LEADERBOARD_TEAMS = 1_400
PUBLIC_ROWS = 7_000


def synthetic_rivals(teams: int = LEADERBOARD_TEAMS, seed: int = 2026, now: datetime | None = None) -> list[Team]:
    """Teams shaped like Digit Recognizer's board: a leak plateau on top, the honest top at 0.99757, a long tail.

    About 6% score 1.00000 and 2% 0.999x (MNIST's own test labels); one team holds the best published honest
    score (0.99757, a committee of 15 CNNs); the rest spread down from 0.9975 as the real board does. Every score
    is a count of 7,000 public rows; submission dates fall within the rolling window (the last 60 days).
    """
    rng = np.random.default_rng(seed)
    now = now or datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    perfect, near = round(teams * 0.06), round(teams * 0.02)
    rest = teams - perfect - near - 1
    bands = [(0.990, 0.9975, 0.33), (0.975, 0.990, 0.35), (0.90, 0.975, 0.22), (0.10, 0.90, 0.10)]
    counts = rng.multinomial(rest, [share for _, _, share in bands])
    honest = np.concatenate(
        [rng.uniform(low, high, count) for (low, high, _), count in zip(bands, counts, strict=True)]
    )
    accuracies = np.concatenate([np.ones(perfect), rng.uniform(0.9990, 0.99996, near), [0.99757], honest])
    correct = np.minimum(np.round(accuracies * PUBLIC_ROWS), PUBLIC_ROWS)
    correct[perfect + near] = round(0.99757 * PUBLIC_ROWS)  # 6983 of 7,000: 0.99757
    ages = rng.uniform(0, 60 * 24 * 3600, teams)
    order = rng.permutation(teams)  # team names say nothing about rank
    return [
        Team(
            team_id=10_000 + int(order[index]),
            name=f"synthetic-team-{int(order[index]) + 1:04d}",
            score=f"{value / PUBLIC_ROWS:.5f}",
            date=now - timedelta(seconds=int(ages[index])),
        )
        for index, value in enumerate(correct)
    ]


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
    # The other teams on the public leaderboard (synthetic); the users' own best scores join them when served.
    # Empty: the competition has no leaderboard to show.
    rivals: list[Team] = field(default_factory=list)

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
    source: Path,
    task: Task | None = None,
    name: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_rows: int | None = None,
) -> Competition:
    """Make a competition from a labeled Kaggle-layout zip or folder: hold part of train.csv back as the test set."""
    task = task or config.BUILTIN_TASKS[config.DEFAULT_TASK]
    labeled = data.load(source, task, use_cache=False)
    images, labels = labeled.train_images, labeled.train_labels
    if max_rows and len(labels) > max_rows:
        images, labels = images[:max_rows], labels[:max_rows]
    return competition_from_arrays(task, images, labels, name=name, test_fraction=test_fraction, seed=seed)


def competition_from_arrays(
    task: Task,
    images: np.ndarray,
    labels: np.ndarray,
    name: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
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
    competitions = [
        competition_from_arrays(task, sample.train_images, sample.train_labels)
        for task in config.BUILTIN_TASKS.values()
    ]
    for competition in competitions:
        if competition.name == "digit-recognizer":  # the others are stand-ins: no leaderboard to show
            competition.rivals = synthetic_rivals()
    return competitions


def score(submission: Submission, competition: Competition) -> None:
    """Categorization accuracy, as Kaggle scores this competition; a malformed file becomes ERROR."""
    id_column, label_column = competition.task.submission_header
    hidden_labels, hidden_ids, public_mask = competition.hidden_labels, competition.hidden_ids, competition.public_mask
    assert hidden_labels is not None and hidden_ids is not None and public_mask is not None, (
        "a submitting competition keeps its answers"
    )
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


def leaderboard(competition: Competition, submissions: list[Submission]) -> list[Team]:
    """The public leaderboard as kaggle.com ranks it: each team's best public score, highest first, ties to the
    earlier submission. The users' own teams join the rivals with their best scored submission."""
    if not competition.rivals:
        return []
    best: dict[str, Submission] = {}
    for item in submissions:
        if item.competition != competition.name or item.status != "COMPLETE" or not item.public_score:
            continue
        held = best.get(item.team)
        if held is None or float(item.public_score) > float(held.public_score):
            best[item.team] = item
    own = [
        Team(team_id=zlib.crc32(team.encode()) % 10_000, name=team, score=item.public_score, date=item.date)
        for team, item in best.items()
    ]
    return sorted([*competition.rivals, *own], key=lambda team: (-float(team.score), team.date))
