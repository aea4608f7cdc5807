"""The submission round: fetch, produce one checked file, the guards, upload, wait for the score, status.

It composes the offline pipeline (`pipeline.py`) with Kaggle's API (`kaggle_api`), and keeps the ledger's
promises (`ledger.py`): a file that is or may be on Kaggle never goes up twice, a day without submissions
left costs no training.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import config, data, submission
from .config import Task
from .errors import (
    DataError,
    KaggleError,
    KaggleUnavailable,
    Skipped,
    SubmissionOutcomeUnknown,
    ToolkitError,
    UsageError,
)
from .helpers import exclusive, utc_now, write_folder_atomically
from .kaggle_api import Kaggle, Limits
from .ledger import (
    Ledger,
    description,
    refuse_identical,
    refuse_same_configuration,
    settle_open_rows,
)
from .pipeline import Settings, fit_for_submission, load_data, predict, tuned_estimate
from .submission_state import SubmissionState

log = logging.getLogger("kaggle_digits")


def kaggle_client(settings: Settings, competition: str | None = None) -> Kaggle:
    return Kaggle(settings.task, competition=competition)


def fetch(settings: Settings, force: bool = False, competition: str | None = None, kaggle=None) -> tuple[Path, bool]:
    """Download the task's zip into data/raw/, validate it, extract it atomically into data/raw/<task>/.

    Returns (folder, changed). An unchanged remote zip (same ETag and size) is not downloaded again.
    """
    kaggle = kaggle or kaggle_client(settings, competition)
    log.info(
        "fetch: %s '%s' from %s%s (credentials: %s)",
        settings.task.source,
        kaggle.name,
        kaggle.endpoint,
        kaggle.account(),
        kaggle.credentials.source,
    )
    archive = config.RAW_DIR / settings.task.archive_name
    # Two fetches at once (cron beside a terminal) would share one <zip>.part: the second waits, then finds it up to
    # date.
    with exclusive(config.LOCKS_DIR / f"fetch-{archive.name}.lock", f"fetch {archive}"):
        return _fetch_locked(settings, kaggle, archive, force)


def _fetch_locked(settings: Settings, kaggle: Kaggle, archive: Path, force: bool) -> tuple[Path, bool]:
    folder = config.RAW_DIR / settings.task.name
    try:
        archive, changed = kaggle.download(archive, force=force, quiet=not settings.verbose)
    except KaggleUnavailable as error:
        # kaggle.com rate-limits DownloadDataFiles hard (429 storms lasting half an hour): with a
        # checked copy on disk, that is a reason to go on with it, not to fail the run.
        if force or not _checked_copy(folder, settings.task):
            raise
        log.warning("warning: %s; going on with the checked local copy in %s", error, folder)
        return folder, False
    if not changed and folder.exists():
        log.info("fetch: %s is up to date (nothing downloaded; --force downloads again)", archive)
        return folder, False
    try:
        dataset = data.load(archive, settings.task)  # the full validation; also fills the cache
    except DataError:
        # A bad download must not pass for data next time: remove it, so the next run fetches again.
        archive.unlink(missing_ok=True)
        archive.with_name(archive.name + ".json").unlink(missing_ok=True)
        raise

    def extract(staging: Path) -> None:
        with zipfile.ZipFile(archive) as source:
            data.check_member_sizes(archive, source)  # bounded, streamed: never a whole member in memory
            for member in source.infolist():
                if not member.is_dir():
                    with source.open(member) as inflated, open(staging / Path(member.filename).name, "wb") as out:
                        shutil.copyfileobj(inflated, out, 1 << 20)

    write_folder_atomically(folder, extract)
    log.info(
        "fetch: %d train and %d test rows checked, extracted to %s",
        len(dataset.train_labels),
        len(dataset.test_images),
        folder,
    )
    return folder, True


def _checked_copy(folder: Path, task: Task) -> bool:
    """True when `folder` holds the task's data and it passes validation (from the cache when unchanged)."""
    if not folder.is_dir():
        return False
    try:
        data.load(folder, task)
    except DataError:
        return False
    return True


class RemoteTraining(Protocol):
    """Training somewhere else (remote.RemoteOptions: a Kaggle kernel) that hands back the checked file."""

    @property
    def gpu(self) -> bool: ...  # whether it trains on a GPU (the presets grow there)

    def train(self, settings: Settings, kaggle: Kaggle, dataset: data.Dataset) -> Path: ...


@dataclass
class SubmitOptions:
    file: Path | None = None  # submit this file instead of training
    upload: bool = True
    force: bool = False  # submit even a file identical to an earlier submission; download again
    message: str = ""
    wait_timeout: float = config.SCORING_WAIT_SECONDS
    competition: str | None = None
    refit: bool = False  # after the validation training, train again on every row (two trainings)
    remote: RemoteTraining | None = None  # train in a Kaggle kernel (--remote kaggle) instead of here


@dataclass
class SubmitResult:
    file: Path
    uploaded: bool = False
    ref: int | None = None
    status: str = ""
    public_score: str = ""
    private_score: str = ""
    holdout_accuracy: float | None = None
    run_id: str = ""


def produce_submission(
    settings: Settings,
    kaggle: Kaggle | None = None,
    force_fetch: bool = False,
    competition: str | None = None,
    refit: bool = False,
    remote: RemoteTraining | None = None,
    before_training: Callable[[Settings, data.Dataset], None] | None = None,
) -> Path:
    """fetch -> one training with its estimate (see fit_for_submission) -> predict: the file `submit` uploads.

    With `remote`, the training and the prediction run in a Kaggle kernel; the data is still fetched
    here, so the file that comes back is checked against this test.csv. `before_training` sees the data
    first (submit's guards: nothing is trained, here or on Kaggle's GPUs, for a refused configuration).
    """
    if settings.data_dir is None:
        kaggle = kaggle or (kaggle_client(settings, competition) if remote else None)
        settings = settings.with_data(fetch(settings, force=force_fetch, competition=competition, kaggle=kaggle)[0])
    dataset = load_data(settings)
    if before_training is not None:
        before_training(settings, dataset)
    gpu = remote.gpu if remote is not None else None
    # A file trained for exactly this (here, or in a kernel whose upload then failed) and never uploaded goes up
    # as it is: a rerun after a failed upload costs no training and no second GPU session.
    ready = None if refit else unsubmitted_prediction(settings, dataset, gpu)
    if ready is not None:
        return ready
    if remote is not None:
        return remote.train(settings, kaggle or kaggle_client(settings, competition), dataset)
    fit_for_submission(settings, dataset, refit)
    return predict(settings, dataset)


def unsubmitted_prediction(settings: Settings, dataset: data.Dataset, gpu: bool | None = None) -> Path | None:
    """The newest file `make predict` (or a kernel of `--remote kaggle`) wrote for this task and model, when it
    was made with exactly this configuration (`gpu`: trained on that device, not here) and this data and has not
    been uploaded: `make train predict` then `make submit` uploads it, not a new training. When there is such a
    file but it does not qualify, the log says why and submit trains as usual."""
    files = submission.submission_files(settings.model_file_name, settings.task)
    if not files:
        return None
    path, sidecar = files[-1], submission.read_sidecar(files[-1])
    expected = settings.configuration(dataset.checksum, gpu)
    checksum = submission.file_checksum(path)
    uploaded = Ledger().find_submitted(settings.task.name, checksum, refused=True)
    if uploaded and uploaded["status"] != "ERROR":
        return None  # already up (or on its way): a new submission needs a new file
    reason = ""
    if uploaded:
        reason = (
            f"it was uploaded {uploaded['time']} and Kaggle could not score it (ref {uploaded['kaggle_ref']}, ERROR)"
        )
    elif sidecar.get("config") != expected or sidecar.get("data_checksum") != dataset.checksum:
        reason = "it was made with other settings (model parameters, seed, device) or other data"
    elif sidecar.get("checksum") != checksum:
        reason = "it changed since it was written"
    else:
        try:
            submission.check_submission(path, settings.task, dataset.test_ids)
        except DataError as error:
            reason = str(error)
    if reason:
        log.info(
            "submit: not uploading %s, the newest prediction of '%s': %s; training anew",
            path.name,
            settings.model,
            reason,
        )
        return None
    log.info(
        "submit: %s was predicted with exactly these settings and data and never uploaded: uploading it, no training",
        path.name,
    )
    return path


def submit(settings: Settings, options: SubmitOptions, kaggle: Kaggle | None = None) -> SubmitResult:
    """Produce (or take) a submission, refuse what should not go up, upload it and wait for the score."""
    require_submissions(settings.task, "Fix: use 'make evaluate TASK={task}' to score the model on it")
    ledger = Ledger()
    if options.file:  # a bad file is refused before anything goes over the network
        path = Path(options.file)
        expected_ids = None
        if settings.resolved_data_dir.exists():  # with the data at hand, check the rows against test.csv too
            expected_ids = load_data(settings).test_ids
        rows = submission.check_submission(path, settings.task, expected_ids)
        if expected_ids is None:  # say what could not be checked, rather than pass it as checked
            log.warning(
                "submit: no %s at hand (%s), so %s was checked for its header, labels and unique ids only: not that "
                "its "
                "%d rows are the test file's. Fix: 'make data' first to check it fully",
                settings.task.test_file,
                settings.resolved_data_dir,
                path.name,
                rows,
            )
    if options.upload:
        kaggle = kaggle or kaggle_client(settings, options.competition)
        # Before any guard (and before training): an earlier upload whose outcome is open is settled
        # from Kaggle's own list, and a lost ledger restored from it, so the guards know what Kaggle has.
        settle_open_rows(ledger, kaggle, settings.task.name)
    if not options.file:

        def refuse_known_configuration(settings: Settings, dataset: data.Dataset) -> None:
            """A configuration Kaggle already has, scored or pending (or maybe: an open upload), is not trained
            again: a rerun after a lost answer must not spend a second submission on a retrained file."""
            if kaggle is not None:
                gpu = options.remote.gpu if options.remote is not None else None
                config_hash = settings.configuration(dataset.checksum, gpu)
                refuse_same_configuration(
                    ledger, settings.task.name, kaggle.name, config_hash, settings.model, options.force
                )

        path = produce_submission(
            settings,
            kaggle,
            force_fetch=False,
            competition=options.competition,
            refit=options.refit,
            remote=options.remote,
            before_training=refuse_known_configuration,
        )
    sidecar = submission.read_sidecar(path)
    result = SubmitResult(file=path, holdout_accuracy=sidecar.get("holdout_accuracy"), run_id=path.stem)
    if not options.upload or kaggle is None:
        return result
    # One critical section per checkout, from "is this file already up?" to the row that says what became of
    # its upload: a second process (cron beside a terminal) waits here, then sees this upload in the ledger.
    with ledger.locked():
        if not options.file:  # again under the lock: a process that trained the same configuration meanwhile
            refuse_same_configuration(  # (cron beside a terminal) may have uploaded it while this one trained
                ledger, settings.task.name, kaggle.name, sidecar.get("config", ""), settings.model, options.force
            )
        refuse_identical(ledger, settings.task.name, path, options.force)
        require_quota(
            kaggle, f"{path.name} is kept. Fix: submit it after the daily reset (00:00 UTC) with --file {path}"
        )
        ref = upload(settings, kaggle, ledger, path, sidecar, options, result)
    return wait_for_score(kaggle, ledger, path, ref, options, result)


def require_submissions(task: Task, fix: str) -> None:
    """Tasks whose test file is labeled (Fashion-MNIST) have nothing to submit."""
    if not task.submits:
        raise UsageError(
            f"task '{task.name}' has no submissions (its test file is labeled). {fix.format(task=task.name)}"
        )


def require_quota(kaggle: Kaggle, consequence: str) -> Limits:
    """Kaggle's own count decides (numAllowedNow); with none left the run stops before it spends anything."""
    limits = kaggle.limits()
    log.info(
        "submit: submissions used today: %d, left now: %d (in all on this competition: %d)",
        limits.today,
        limits.allowed_now,
        limits.total,
    )
    if limits.allowed_now <= 0:
        raise Skipped(f"no submissions left today on '{kaggle.name}' ({limits.today} used today); {consequence}")
    return limits


def upload(
    settings: Settings,
    kaggle: Kaggle,
    ledger: Ledger,
    path: Path,
    sidecar: dict[str, Any],
    options: SubmitOptions,
    result: SubmitResult,
) -> int:
    """Ledger row first (UPLOADING), then the upload: a killed run leaves a row to settle. Returns Kaggle's ref.

    Called with the ledger locked (see submit), so no other process settles this row while it is in flight."""
    checksum = submission.file_checksum(path)
    accuracy = result.holdout_accuracy
    model, config_hash = sidecar.get("model", "file"), sidecar.get("config", "")
    row = ledger.add(
        run_id=path.stem,
        time=utc_now(),
        task=settings.task.name,
        file=path.name,
        checksum=checksum,
        model=sidecar.get("model", ""),
        holdout_accuracy=accuracy,
        status="UPLOADING",
        config=config_hash,
        trained_on=sidecar.get("trained_on", "here" if sidecar else ""),
        accelerator=sidecar.get("accelerator", ""),
        competition=kaggle.name,
        estimate_from=tuned_estimate(sidecar.get("estimate_from"), settings.tuned_by),
        tuning=settings.tuned_by or sidecar.get("tuning"),
    )
    result.run_id = row["run_id"]
    tuned = settings.tuned_by or sidecar.get("tuning")
    text = " ".join(part for part in (options.message, f"(tuned: study {tuned})" if tuned else "") if part)
    message = description(result.run_id, model, accuracy, checksum, config_hash, text)
    ledger.update(result.run_id, message=message)
    try:
        ref = kaggle.submit(path, message)
    except SubmissionOutcomeUnknown:
        ledger.update(result.run_id, status="UNKNOWN")
        raise
    except ToolkitError:
        ledger.update(result.run_id, status="FAILED")  # refused or never sent: nothing is on Kaggle
        raise
    except BaseException:
        ledger.update(result.run_id, status="UNKNOWN")  # interrupted: maybe mid-create; settled next time
        raise
    ledger.update(result.run_id, kaggle_ref=ref, status="PENDING")
    log.info("submit: uploaded %s as ref %d; waiting for the score", path.name, ref)
    return ref


def wait_for_score(
    kaggle: Kaggle, ledger: Ledger, path: Path, ref: int, options: SubmitOptions, result: SubmitResult
) -> SubmitResult:
    """Outside the ledger's lock: the row has its ref, so nothing another process does can mistake it."""
    state: SubmissionState = kaggle.wait(ref, timeout=options.wait_timeout)
    ledger.update(
        result.run_id, status=state.status, public_score=state.public_score, private_score=state.private_score
    )
    result.uploaded, result.ref, result.status = True, ref, state.status
    result.public_score, result.private_score = state.public_score, state.private_score
    if state.status == "ERROR":
        raise KaggleError(f"Kaggle could not score {path.name} (ref {ref}): {state.error or 'no reason given'}")
    if state.status == "PENDING":
        raise KaggleError(
            f"{path.name} (ref {ref}) is still being scored after {options.wait_timeout:.0f} s. "
            f"Fix: run 'make status' later; the ledger is updated then"
        )
    return result


def rebuild_ledger(settings: Settings, competition: str | None = None, kaggle=None) -> tuple[int, Path | None]:
    """`kaggle-digits ledger --rebuild`: a damaged ledger is kept aside, then rows come back from Kaggle's list."""
    kaggle = kaggle or kaggle_client(settings, competition)
    remote = kaggle.submissions()  # first: if Kaggle cannot be reached, nothing is moved
    ledger = Ledger()
    kept = None
    with ledger.locked():
        try:
            ledger.rows()
        except DataError:
            kept = ledger.set_aside()
            log.info("ledger: the damaged ledger is kept as %s", kept)
        return ledger.restore(remote, settings.task.name, kaggle.name), kept


def status(settings: Settings, competition: str | None = None, kaggle=None) -> list[dict[str, str]]:
    """The ledger joined with Kaggle's own submission list; pending rows are brought up to date."""
    require_submissions(settings.task, "Fix: 'make evaluate TASK={task}'")
    kaggle = kaggle or kaggle_client(settings, competition)
    listed = kaggle.submissions()
    remote = {str(item.ref): item for item in listed}
    ledger = Ledger()
    # Rows whose upload's answer was lost (or a killed run's) are settled here too, from the list just read:
    # the messages that say "run 'make status'" for that mean it. A lost ledger is restored from it.
    settle_open_rows(ledger, kaggle, settings.task.name, listed)
    rows = []
    for row in ledger.rows(settings.task.name):
        item = remote.pop(row["kaggle_ref"], None) if row["kaggle_ref"] else None
        if item and (item.status != row["status"] or item.public_score != row["public_score"]):
            ledger.update(
                row["run_id"], status=item.status, public_score=item.public_score, private_score=item.private_score
            )
        rows.append(
            {
                "time": row["time"],
                "file": row["file"],
                "model": row["model"],
                "holdout": row["holdout_accuracy"],
                "ref": row["kaggle_ref"],
                "status": item.status if item else row["status"],
                "public": item.public_score if item else row["public_score"],
            }
        )
    for item in remote.values():  # submitted from elsewhere (the website, another machine)
        rows.append(
            {
                "time": item.date,
                "file": item.file_name,
                "model": "(not in ledger)",
                "holdout": "",
                "ref": str(item.ref),
                "status": item.status,
                "public": item.public_score,
            }
        )
    return rows
