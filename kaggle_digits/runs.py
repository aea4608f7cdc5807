"""Scheduled runs for cron: one at a time, never a double submission, never a wasted quota.

A run takes a lock, reconciles the ledger with Kaggle (a run killed mid-upload is settled, not
repeated), fetches the data only when it changed, skips with exit code 10 when there is nothing to
do, and otherwise trains, predicts, submits and waits for the score. Every run writes its own log
under data/logs/ and ends with one summary line on stdout, which is what cron mails.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from . import config, models, pipeline, redact, submission, submit
from .errors import AlreadyRunning, DataError, Skipped, ToolkitError
from .helpers import alive, utc_now
from .kaggle_api import Kaggle
from .ledger import Ledger, newest, settle_open_rows

log = logging.getLogger("kaggle_digits")

LOCK_NAME = "run.lock"


@dataclass
class RunOptions:
    message: str = ""
    keep_alive_days: float = config.KEEP_ALIVE_DAYS
    dry_run: bool = False
    competition: str | None = None
    wait_timeout: float = config.SCORING_WAIT_SECONDS
    refit: bool = False  # train again on every row after the validation training (see pipeline.fit_for_submission)


class RunLock:
    """An OS-level lock (filelock over flock): released by the kernel when its holder dies, so a lock
    left by a killed run never blocks the next one. A side file names the holder for the message."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / LOCK_NAME
        self.info = folder / (LOCK_NAME + ".json")
        self.lock = FileLock(str(self.path), timeout=0)

    def __enter__(self) -> RunLock:
        try:
            self.lock.acquire()
        except Timeout:
            holder = self._holder()
            raise AlreadyRunning(
                f"another run is in progress ({holder}); this one did nothing. "
                f"Fix: wait for it (its log is under {config.LOGS_DIR}/), or schedule runs further apart"
            ) from None
        stale = self._holder_record()
        if stale and not alive(stale.get("pid")):
            log.info(
                "run: took over the lock left by pid %s (started %s), which is no longer running",
                stale.get("pid"),
                stale.get("started"),
            )
        self.info.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": utc_now()}))
        return self

    def __exit__(self, *exc) -> None:
        self.info.unlink(missing_ok=True)
        self.lock.release()

    def _holder_record(self) -> dict | None:
        try:
            return json.loads(self.info.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def _holder(self) -> str:
        record = self._holder_record()
        return f"pid {record['pid']} since {record['started']}" if record else "pid unknown"


def _last_scored(ledger: Ledger, task_name: str) -> dict | None:
    return newest(row for row in ledger.rows(task_name) if row["status"] == "COMPLETE")


def _last_on_kaggle(ledger: Ledger, task_name: str) -> dict | None:
    """The newest submission Kaggle holds and did not refuse: scored, or still being scored (PENDING with a ref).
    A rerun right after a submission whose score has not come yet has nothing new to send either."""
    return newest(
        row
        for row in ledger.rows(task_name)
        if row["status"] == "COMPLETE" or (row["status"] == "PENDING" and row["kaggle_ref"])
    )


def _unchanged_since(last: dict, settings: pipeline.Settings, data_checksum: str) -> bool:
    """Same data, model, hyperparameters and seed as the last scored submission.

    From the row's config hash (it is also in the description on Kaggle, so a ledger rebuilt from
    Kaggle's list has it); rows written before there was one are compared through their sidecar.
    """
    if last.get("config"):
        return last["config"] == settings.configuration(data_checksum)
    sidecar = submission.read_sidecar(config.SUBMISSIONS_DIR / last["file"])
    if not sidecar:
        return False
    return (
        sidecar.get("data_checksum") == data_checksum
        and sidecar.get("model") == settings.model
        and sidecar.get("seed") == settings.seed
        and sidecar.get("requested_params", sidecar.get("params")) == models.params_dict(settings.params())
    )


def _age(stamp: str) -> timedelta:
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc) - when


def scheduled_run(settings: pipeline.Settings, options: RunOptions) -> str:
    """The whole run; returns the summary line. Raises Skipped (exit 10) when there is nothing to do.

    The guards are submit's own (submit.require_quota, refuse_identical, upload_and_wait): the quota
    is asked once before training too, so a day without submissions left costs no training.
    """
    submit.require_submissions(
        settings.task, "Nothing to schedule. Fix: use 'make evaluate TASK={task}' to score the model on it"
    )
    kaggle = Kaggle(settings.task, competition=options.competition)
    ledger = Ledger()
    # Which credential a scheduled run used goes in its log (cron and systemd do not see the shell's exports).
    log.info(
        "run: %s '%s' at %s%s (credentials: %s), model %s",
        settings.task.source,
        kaggle.name,
        kaggle.endpoint,
        kaggle.account(),
        kaggle.credentials.source,
        settings.model,
    )
    settle_open_rows(ledger, kaggle, settings.task.name)  # restores a lost ledger from Kaggle's list too
    submit.require_quota(kaggle, "nothing trained")
    if options.dry_run:
        return _dry_run(settings, options, kaggle, ledger)
    settings = settings.with_data(submit.fetch(settings, kaggle=kaggle)[0])
    dataset = pipeline.load_data(settings)
    last = _last_on_kaggle(ledger, settings.task.name)
    keep_alive_due = False
    if last and _unchanged_since(last, settings, dataset.checksum):
        age = _age(last["time"])
        if age < timedelta(days=options.keep_alive_days) or last["status"] != "COMPLETE":
            score = f"public {last['public_score']}" if last["status"] == "COMPLETE" else "still being scored"
            raise Skipped(
                f"nothing changed since {last['file']} (ref {last['kaggle_ref']}, {score}), "
                f"submitted {age.days} d {age.seconds // 3600} h ago; keep-alive resubmission after "
                f"{options.keep_alive_days:g} d"
            )
        kept_alive = _keepalive(settings, options, kaggle, last, age, dataset)
        if kept_alive:
            return kept_alive
        keep_alive_due = True  # the file is gone (a new machine): the new one goes up even if identical
    pipeline.fit_for_submission(settings, dataset, options.refit)
    path = pipeline.predict(settings, dataset)
    # submit refuses predictions identical to a submitted file (exit 10), unless the keep-alive is due.
    options_submit = submit.SubmitOptions(
        file=path,
        message=options.message,
        wait_timeout=options.wait_timeout,
        competition=options.competition,
        force=keep_alive_due,
    )
    outcome = submit.submit(settings, options_submit, kaggle=kaggle)
    return (
        f"submitted {outcome.file.name} (ref {outcome.ref}): public score {outcome.public_score}, holdout "
        f"{outcome.holdout_accuracy:.4f}"
        if outcome.holdout_accuracy is not None
        else f"submitted {outcome.file.name}"
    )


def _keepalive(
    settings: pipeline.Settings, options: RunOptions, kaggle, last: dict, age: timedelta, dataset
) -> str | None:
    """Re-upload the last scored file, unchanged and without training, so the team stays on a rolling
    leaderboard. None when that file is gone or no longer matches the ledger (then the run retrains)."""
    path = config.SUBMISSIONS_DIR / last["file"]
    try:
        submission.check_submission(path, settings.task, dataset.test_ids)
        # A row rebuilt from Kaggle's list knows the checksum's first 16 digits only.
        intact = bool(last["checksum"]) and submission.file_checksum(path).startswith(last["checksum"])
    except DataError:
        intact = False
    if not intact:
        log.warning(
            "run: keep-alive: %s is missing or changed since it was submitted; training a new file instead", path
        )
        return None
    log.info(
        "run: keep-alive: nothing changed, but %s (ref %s) is %d days old: uploading it again, without training",
        last["file"],
        last["kaggle_ref"],
        age.days,
    )
    message = f"keep-alive of ref {last['kaggle_ref']}" + (f" - {options.message}" if options.message else "")
    outcome = submit.submit(
        settings,
        submit.SubmitOptions(
            file=path, force=True, message=message, wait_timeout=options.wait_timeout, competition=options.competition
        ),
        kaggle=kaggle,
    )
    return (
        f"keep-alive: uploaded {path.name} again after {age.days} d (ref {outcome.ref}, was {last['kaggle_ref']}): "
        f"public score {outcome.public_score}"
    )


def _dry_run(settings, options, kaggle, ledger) -> str:
    response = kaggle.open_download()
    etag = response.headers.get("ETag")
    response.close()  # the headers say whether the data changed; the body is not downloaded
    marker = config.RAW_DIR / (settings.task.archive_name + ".json")
    try:
        recorded = json.loads(marker.read_text()).get("etag")
    except (OSError, ValueError, AttributeError):  # missing or damaged: the next fetch downloads and rewrites it
        recorded = None
    fetch = "would download the data (changed on Kaggle)" if etag != recorded else "data unchanged: would not download"
    last = _last_scored(ledger, settings.task.name)
    last_text = (
        f"last scored submission {last['file']} ({_age(last['time']).days} d old)"
        if last
        else "no scored submission yet"
    )
    return (
        f"dry run: {fetch}; {last_text}; would train '{settings.model}' and submit unless the predictions "
        f"match a submitted file or nothing changed within {options.keep_alive_days:g} d"
    )


@contextlib.contextmanager
def run_log(quiet: bool) -> Iterator[tuple[Path, logging.Handler]]:
    """data/logs/<UTC time>-<pid>-run.log gets every line, timestamped; stdout keeps only the summary when quiet.
    The file handler and the quieted console last for this run only: nothing leaks into the next one."""
    config.LOGS_DIR.mkdir(parents=True, exist_ok=True)
    # Microseconds in the name: two runs in one process and one second (a notebook, the tests) get a log each.
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    path = config.LOGS_DIR / f"{stamp}-{os.getpid()}-run.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    handler.setLevel(logging.INFO)
    redact.install(handler)
    toolkit = logging.getLogger("kaggle_digits")
    toolkit_level = toolkit.level
    toolkit.addHandler(handler)
    toolkit.setLevel(logging.INFO)
    console = logging.getLogger().handlers
    console_levels = [existing.level for existing in console]
    if quiet:
        for existing in console:
            existing.setLevel(logging.CRITICAL)  # the console stays quiet; the file keeps everything
    try:
        yield path, handler
    finally:
        toolkit.removeHandler(handler)
        toolkit.setLevel(toolkit_level)
        handler.close()
        for existing, level in zip(console, console_levels, strict=True):
            existing.setLevel(level)


def run_command(settings: pipeline.Settings, options: RunOptions, quiet: bool) -> None:
    """Lock, log, run. One summary line, which cron mails, ends every run: printed here when the run
    submitted; carried by the error (Skipped: exit 10, and the rest) for the CLI to print otherwise."""
    with run_log(quiet) as (log_path, log_file):
        _logged_run(settings, options, log_path, log_file)


def _logged_run(settings: pipeline.Settings, options: RunOptions, log_path: Path, log_file: logging.Handler) -> None:
    started = time.perf_counter()

    def summary(word: str, code: int, text: str) -> str:
        line = redact.scrub(
            f"kaggle-digits run {word} (exit {code}, {time.perf_counter() - started:.0f} s): {text} [log: {log_path}]"
        )
        log_file.handle(
            log.makeRecord(log.name, logging.INFO, __file__, 0, "run: %s", (line,), None)
        )  # the file gets it too
        return line

    try:
        with RunLock(config.DATA_DIR):
            text = scheduled_run(settings, options)
    except ToolkitError as error:
        word = (
            "skipped"
            if isinstance(error, Skipped)
            else "not started"
            if isinstance(error, AlreadyRunning)
            else "failed"
        )
        error.summary = summary(word, error.exit_code, str(error))
        raise
    except KeyboardInterrupt:
        summary("failed", 130, "interrupted")
        raise
    print(summary("ok", 0, text), flush=True)
