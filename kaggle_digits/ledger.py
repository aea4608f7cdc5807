"""The ledger (submissions/ledger.csv) and the guards that read it: one row per submission attempt.

Every process of a checkout shares it (cron beside a terminal): each change happens under one OS-level
lock, and a row whose outcome on Kaggle is open is settled from Kaggle's own list before anything else,
so a file that is (or may be) on Kaggle never goes up twice. It reads Kaggle's answers (SubmissionState)
and never talks to Kaggle itself: the callers hand it a client.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import config
from .errors import DataError, Skipped
from .helpers import exclusive, write_atomically
from .submission import file_checksum
from .submission_state import SubmissionState

log = logging.getLogger("kaggle_digits")

# Rows whose outcome on Kaggle is not settled yet: the file may be there, so it never goes up again
# until Kaggle's list says otherwise (see settle_open_rows below).
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
    "estimate_from",  # which training holdout_accuracy speaks for: this very model, or a validation on file
    "tuning",  # the tuning study and trial the parameters came from ("study#trial"), if any
]
# A ledger written before the config, trained_on, accelerator, competition, estimate_from and tuning columns is
# still read.
LATER_COLUMNS = ("config", "trained_on", "accelerator", "competition", "estimate_from", "tuning")
REQUIRED_COLUMNS = [column for column in LEDGER_COLUMNS if column not in LATER_COLUMNS]
STATUSES = {"UPLOADING", "UNKNOWN", "PENDING", "COMPLETE", "ERROR", "FAILED"}
SHORT_CHECKSUM = 16  # hex digits of the file's SHA-256 carried in the description on Kaggle

# "kaggle-digits <run id>: <model>, holdout 0.9875 [file <sha256 prefix> config <hash>] - <message>"
_DESCRIPTION = re.compile(
    r"^kaggle-digits (?P<run_id>\S+): (?P<model>[^,\[]+?)(?:, holdout (?P<holdout>[0-9.]+))?"
    r"(?: \[file (?P<file>[0-9a-f]+)(?: config (?P<config>[0-9a-f]+))?\])?(?: - (?P<message>.*))?$",
    re.S,
)


def description(run_id: str, model: str, accuracy: float | None, checksum: str, config: str, message: str) -> str:
    """The submission's description on Kaggle: the run id and what the guards need, so a lost ledger can
    be rebuilt from Kaggle's own list."""
    text = f"kaggle-digits {run_id}: {model}" + (f", holdout {accuracy:.4f}" if accuracy is not None else "")
    text += f" [file {checksum[:SHORT_CHECKSUM]}" + (f" config {config}]" if config else "]")
    return text + (f" - {message}" if message else "")


def parse_description(text: str) -> dict[str, str] | None:
    match = _DESCRIPTION.match(text or "")
    return {key: value or "" for key, value in match.groupdict().items()} if match else None


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
        """Every row (one task's, when given); [] when there is no ledger. A damaged one is an error, never empty."""
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
                if (
                    task is None or (row.get("task") or config.DEFAULT_TASK) == task
                ):  # rows before the task column: digits
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
        """Add a row for each of the toolkit's submissions on Kaggle's list that the ledger lacks (by ref), or settle
        the open row of its run id in place; returns how many rows were added or settled."""
        if not any(parse_description(item.description) for item in remote):
            return 0  # nothing of the toolkit's on Kaggle: nothing to write (a dry run creates no folder)
        with self.locked():
            return self._restore(remote, task, competition)

    def _restore(self, remote: list[SubmissionState], task: str, competition: str) -> int:
        rows = self.rows()
        known = {row["kaggle_ref"] for row in rows if row["kaggle_ref"]}
        # A row whose upload's answer was lost has no ref yet: its run id (in every description) finds it on the
        # list, and it is settled in place, never added a second time.
        unsettled = {row["run_id"]: row for row in rows if not row["kaggle_ref"] and row["task"] in ("", task)}
        added, settled = [], 0
        for item in sorted(remote, key=lambda item: (item.date, item.ref)):  # oldest first, as written
            parsed = parse_description(item.description)
            if parsed is None or str(item.ref) in known:
                continue
            open_row = unsettled.pop(parsed["run_id"], None)
            if open_row is not None:
                open_row.update(
                    kaggle_ref=str(item.ref),
                    status=item.status,
                    public_score=item.public_score,
                    private_score=item.private_score,
                )
                settled += 1
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
        if added or settled:
            # In submission order, as a reader expects (though none relies on it: see `newest`).
            self._write(sorted(rows + added, key=lambda row: row["time"]))
        return len(added) + settled

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

    def find_submitted(self, task: str, checksum: str, refused: bool = False) -> dict[str, str] | None:
        """The newest row of a file that is (or may be) on Kaggle for this task with these bytes.

        Never-created (FAILED) files do not count: they may go up again; nor do files Kaggle could not score
        (ERROR), unless `refused` asks for those too. A row rebuilt from Kaggle's list knows only the checksum's
        first digits: a prefix match counts.
        """
        return newest(
            row
            for row in self.rows(task)
            if row["checksum"]
            and checksum.startswith(row["checksum"])
            and (
                (row["kaggle_ref"] and (refused or row["status"] != "ERROR"))
                or row["status"] in OPEN_STATUSES
                or (refused and row["status"] == "ERROR")
            )
        )

    def find_configuration(self, task: str, competition: str, config_hash: str) -> dict[str, str] | None:
        """The newest row of this configuration that Kaggle holds on `competition`, scored or being scored, or
        whose upload's outcome is still open (it may be there). ERROR and FAILED rows do not count."""
        return newest(
            row
            for row in self.rows(task)
            if config_hash
            and row.get("config") == config_hash
            and (row.get("competition") or competition) == competition
            and (row["status"] == "COMPLETE" or row["status"] in OPEN_STATUSES)
        )


def newest(rows: Iterable[dict[str, str]]) -> dict[str, str] | None:
    """The row submitted last, by its time (never by its place in the file: a rebuilt ledger's rows come back in
    any order); the later line wins a tie."""
    found = None
    for row in rows:
        if found is None or row["time"] >= found["time"]:
            found = row
    return found


# --- The guards that read it: `submit` and the scheduled run (runs.py) both go through these ----------


def refuse_identical(ledger: Ledger, task_name: str, path: Path, force: bool) -> None:
    """A file identical to one already on Kaggle (or maybe on it: an open upload) is not uploaded again."""
    earlier = ledger.find_submitted(task_name, file_checksum(path))
    if not earlier or force:
        return
    if not earlier["kaggle_ref"]:
        raise Skipped(
            f"{path.name} may already be on Kaggle: its upload of {earlier['time']} is {earlier['status']} in the "
            f"ledger; "
            f"not uploaded again. Fix: run 'make status' to settle it, or --force (FORCE=1) to submit it anyway"
        )
    raise Skipped(
        f"{path.name} is identical to {earlier['file']}, submitted {earlier['time']} (ref {earlier['kaggle_ref']}, "
        f"public score {earlier['public_score'] or 'pending'}); not uploaded. Fix: --force (FORCE=1) to submit it "
        f"anyway"
    )


def refuse_same_configuration(
    ledger: Ledger, task_name: str, competition: str, config_hash: str, model: str, force: bool
) -> None:
    """A training whose configuration (model, parameters as trained, seed, data) Kaggle already holds would spend
    a submission on nothing new, even if its bytes differ (a model trained on every row instead of 90%): refused,
    before any training, unless forced. An open upload of it counts: it may be on Kaggle."""
    earlier = ledger.find_configuration(task_name, competition, config_hash)
    if not earlier or force:
        return
    if earlier["status"] == "COMPLETE":
        held = f"scored, public {earlier['public_score'] or '?'}"
    elif earlier["kaggle_ref"]:
        held = "still being scored"
    else:
        held = f"its upload of {earlier['time']} is {earlier['status']}: it may be there; settled from Kaggle's list"
    ref = f"ref {earlier['kaggle_ref']}, " if earlier["kaggle_ref"] else ""
    raise Skipped(
        f"Kaggle already has this configuration of '{model}' (the same settings, data and seed; config {config_hash}): "
        f"{earlier['file']} ({ref}{held}); nothing trained or uploaded. Fix: change a setting (-p, --seed), or "
        f"--force (FORCE=1) to submit it again"
    )


def settle_open_rows(ledger: Ledger, kaggle, task_name: str, listed: list[SubmissionState] | None = None) -> None:
    """Settle ledger rows left UPLOADING, UNKNOWN or PENDING (a killed run, a lost answer) from Kaggle's list.

    A row whose ref or run id (it is in every description) is on Kaggle's list was created there:
    record its ref and status; it is never uploaded again. A row with no ref that this competition's full
    list (all pages) does not have, once the grace period after its upload has passed (Kaggle's list can
    lag behind a create), was never created: FAILED, so its file may go up again. With no ledger at all
    (a new machine, an expired cache) it is restored from that list, so the guards still work. All of it
    under the ledger's lock: an upload in flight holds that lock, so its row is never taken for a dead one.
    """
    if not ledger.path.exists():
        restore_ledger(ledger, listed if listed is not None else kaggle.submissions(), task_name, kaggle.name)
        return
    with ledger.locked():
        open_rows = [
            row
            for row in ledger.rows(task_name)
            if row["status"] in OPEN_STATUSES and (row.get("competition") or kaggle.name) == kaggle.name
        ]
        if not open_rows:
            return
        remote = listed if listed is not None else kaggle.submissions()
        for row in open_rows:
            match = next(
                (
                    item
                    for item in remote
                    if (row["kaggle_ref"] and str(item.ref) == row["kaggle_ref"])
                    or f"kaggle-digits {row['run_id']}:" in item.description
                ),
                None,
            )
            if match:
                ledger.update(
                    row["run_id"],
                    kaggle_ref=match.ref,
                    status=match.status,
                    public_score=match.public_score,
                    private_score=match.private_score,
                )
                log.info(
                    "submit: ledger row %s settled from Kaggle's list: ref %s, %s",
                    row["run_id"],
                    match.ref,
                    match.status,
                )
            elif not row["kaggle_ref"] and _seconds_since(row["time"]) >= config.SETTLE_GRACE_SECONDS:
                ledger.update(row["run_id"], status="FAILED")
                log.info(
                    "submit: ledger row %s (%s) is not on Kaggle's list: it never reached Kaggle, marked FAILED",
                    row["run_id"],
                    row["status"],
                )
            elif not row["kaggle_ref"]:
                log.info(
                    "submit: ledger row %s (%s) is not on Kaggle's list yet; it is settled once %.0f s have passed "
                    "since its upload "
                    "(Kaggle's list can lag)",
                    row["run_id"],
                    row["status"],
                    config.SETTLE_GRACE_SECONDS,
                )


def _seconds_since(stamp: str) -> float:
    """Seconds since a ledger time (UTC, "2026-01-01T00:00:00Z"); an unreadable one counts as long ago."""
    try:
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return float("inf")
    return (datetime.now(timezone.utc) - when).total_seconds()


def restore_ledger(ledger: Ledger, remote: list[SubmissionState], task_name: str, competition: str = "") -> int:
    """Rows for the toolkit's submissions on Kaggle's list that the ledger lacks (a new machine, an expired cache)."""
    added = ledger.restore(remote, task_name, competition)
    if added:
        log.info(
            "ledger: restored %d submission%s from Kaggle's list into %s", added, "" if added == 1 else "s", ledger.path
        )
    return added
