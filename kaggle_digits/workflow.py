"""The pipeline's stages composed: validate, train, predict. The CLI and scheduled runs both call these."""

from __future__ import annotations

import logging
import shutil
import time
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from . import config, data, models, plots, submission, training
from .config import Task
from .errors import DataError, KaggleError, KaggleUnavailable, Skipped, SubmissionOutcomeUnknown, ToolkitError, UsageError
from .helpers import artifact_dir, exclusive, utc_now, versions, write_folder_atomically
from .kaggle_api import Kaggle, Limits, SubmissionState

log = logging.getLogger("kaggle_digits")


@dataclass(frozen=True)
class Settings:
    """What one command line asks for; defaults are the README's. A stage that settles a field (the
    folder the data was fetched into) derives a new Settings (`with_data`), never changes this one."""

    task: Task = field(default_factory=lambda: config.BUILTIN_TASKS[config.DEFAULT_TASK])
    data_dir: Path | None = None
    model: str = config.DEFAULT_MODEL
    overrides: dict[str, str] = field(default_factory=dict)
    seed: int = config.DEFAULT_SEED
    holdout: float = config.DEFAULT_HOLDOUT
    folds: int = 0
    verbose: bool = True

    @property
    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir else config.RAW_DIR / self.task.name

    def params(self):
        return models.params_for(self.model, self.overrides)

    def with_data(self, folder: Path) -> Settings:
        return replace(self, data_dir=folder)


def load_data(settings: Settings) -> data.Dataset:
    start = time.perf_counter()
    dataset = data.load(settings.resolved_data_dir, settings.task)
    origin = "cache" if dataset.from_cache else "CSV, validated"
    log.info(
        "data: %d train rows, %d test rows from %s (%s, %.2f s)",
        len(dataset.train_labels),
        len(dataset.test_images),
        settings.resolved_data_dir,
        origin,
        time.perf_counter() - start,
    )
    return dataset


def validate(settings: Settings, dataset: data.Dataset | None = None) -> tuple[training.ValidationResult, dict[str, Path]]:
    """Estimate accuracy; write metrics.json and the plots into data/reports/<model>/."""
    dataset = dataset or load_data(settings)
    scheme = f"{settings.folds}-fold" if settings.folds > 1 else f"{settings.holdout:.0%} holdout"
    log.info("validate: model %s, %s, seed %d", settings.model, scheme, settings.seed)
    result, _ = training.validate_and_keep(
        dataset, settings.model, settings.params(), settings.seed, settings.holdout, settings.folds, settings.verbose
    )
    folder = artifact_dir(config.REPORTS_DIR, settings.model, settings.task.name)
    return result, write_report(settings, result, dataset.train_images, folder)


def write_report(settings: Settings, result: training.ValidationResult, images, folder: Path) -> dict[str, Path]:
    """metrics.json, learning curves, confusion matrix and misclassified digits, in `folder`."""
    files = {"metrics": training.write_metrics(result, folder)}
    title = f"{settings.model} on {settings.task.name} ({result.scheme})"
    curve = plots.learning_curves(result.curves, result.best_epoch, title, folder / "learning_curves.png")
    if curve:
        files["learning_curves"] = curve
    files["confusion_matrix"] = plots.confusion_matrix(
        result.confusion_matrix, settings.task.class_names, title, folder / "confusion_matrix.png"
    )
    grid = plots.misclassified(images, result.misclassified, settings.task.class_names, title, folder / "misclassified.png")
    if grid:
        files["misclassified"] = grid
    return files


def evaluate(settings: Settings, dataset: data.Dataset | None = None) -> tuple[training.ValidationResult, dict[str, Path]]:
    """Tasks with a labeled test file (Fashion-MNIST): fit on the train file, score on the test file.

    The test file is passed to Keras only to draw the learning curves; early stopping is off, so
    nothing about the model is chosen by looking at it.
    """
    if dataset is None and settings.data_dir is None:
        settings = settings.with_data(fetch(settings)[0])  # like submit: fetch first (nothing is downloaded when unchanged)
    dataset = dataset or load_data(settings)
    if dataset.test_labels is None:
        raise UsageError(
            f"task '{settings.task.name}' has no labeled test file to evaluate on. Fix: use 'make validate' "
            f"(a holdout of {settings.task.train_file}) or 'make submit' for it"
        )
    params = settings.params()
    if hasattr(params, "patience"):
        params = replace(params, patience=0)
    log.info(
        "evaluate: model %s, trained on %d rows of %s, scored on %d rows of %s",
        settings.model,
        len(dataset.train_labels),
        settings.task.train_file,
        len(dataset.test_labels),
        settings.task.test_file,
    )
    model = models.create(settings.model, params, settings.seed)
    start = time.perf_counter()
    history = model.fit(
        dataset.train_images, dataset.train_labels, validation=(dataset.test_images, dataset.test_labels), verbose=settings.verbose
    )
    seconds = time.perf_counter() - start
    result_score = training.score(model, dataset.test_images, dataset.test_labels)
    result = training.ValidationResult(
        model=settings.model,
        params=models.params_dict(params),
        seed=settings.seed,
        scheme=f"test file {settings.task.test_file}",
        accuracy=result_score.accuracy,
        accuracy_std=None,
        per_class_accuracy=result_score.per_class_accuracy,
        confusion_matrix=result_score.confusion.tolist(),
        best_epoch=None,
        curves=history.curves,
        fit_seconds=round(seconds, 2),
        train_rows=int(len(dataset.train_labels)),
        validation_rows=int(len(dataset.test_labels)),
        data_checksum=dataset.checksum,
        misclassified=result_score.misclassified,
    )
    # Its own folder: validate's metrics.json (which `train` reads for the epochs) stays untouched.
    folder = artifact_dir(config.REPORTS_DIR, settings.model, settings.task.name, variant="evaluate")
    return result, write_report(settings, result, dataset.test_images, folder)


def train(settings: Settings, dataset: data.Dataset | None = None) -> tuple[Path, dict[str, Any]]:
    """Fit on the full train.csv and save the model with its config (data/models/<model>/)."""
    dataset = dataset or load_data(settings)
    metrics = training.read_metrics(artifact_dir(config.REPORTS_DIR, settings.model, settings.task.name))
    params, epochs_note = training.final_epochs(settings.params(), metrics, dataset)
    log.info("train: model %s on all %d rows (%s)", settings.model, len(dataset.train_labels), epochs_note)
    model, history, seconds = training.train_final(dataset, settings.model, params, settings.seed, settings.verbose)
    estimate, scheme = None, None
    if history.out_of_fold_accuracy is not None:  # the ensemble: its members' out-of-fold accuracy, same training
        estimate, scheme = history.out_of_fold_accuracy, f"{model.params.members}-fold out-of-fold (members)"
        log.info("train: members' out-of-fold accuracy %.4f over %d rows", estimate, history.out_of_fold_rows)
    elif training.matching_estimate(metrics, settings.params(), settings.seed, dataset):
        estimate, scheme = metrics["accuracy"], metrics.get("scheme")
    meta = model_meta(settings, params, dataset, estimate, scheme, len(dataset.train_labels), seconds)
    folder = artifact_dir(config.MODELS_DIR, settings.model, settings.task.name)
    training.save_model(model, folder, meta)
    log.info("train: done in %.1f s, saved %s", seconds, folder)
    return folder, meta


def model_meta(
    settings: Settings, params, dataset: data.Dataset, estimate: float | None, scheme: str | None, rows: int, seconds: float
) -> dict[str, Any]:
    return {
        "model": settings.model,
        "task": settings.task.name,
        "params": models.params_dict(params),
        # What was asked for, before validation picked the epochs: what "nothing changed" compares.
        "requested_params": models.params_dict(settings.params()),
        "seed": settings.seed,
        "holdout_accuracy": estimate,
        "validation_scheme": scheme,
        "data_checksum": dataset.checksum,
        "train_rows": int(rows),
        "train_seconds": round(seconds, 2),
        "trained_at": utc_now(),
        "versions": versions(),
    }


def fit_for_submission(settings: Settings, dataset: data.Dataset, refit: bool = False) -> dict[str, Any]:
    """One training for one submission file, with an accuracy estimate from that same training.

    - the ensemble estimates itself (members on different folds): it trains once, on every row;
    - a validation of exactly these settings, data and seed is on file (make validate, an earlier
      run): its figure stands, and the model trains once, on every row;
    - otherwise the holdout validation trains once and that very model predicts test.csv (it saw 90%
      of the rows); `refit` asks for the second training, on every row, after it.
    Returns the saved model's config.
    """
    if models.model_class(settings.model).estimates_itself:
        return train(settings, dataset)[1]
    metrics = training.read_metrics(artifact_dir(config.REPORTS_DIR, settings.model, settings.task.name))
    if training.matching_estimate(metrics, settings.params(), settings.seed, dataset):
        log.info(
            "submit: validation of these settings and data on file (%s %.4f): one training, on every row",
            metrics.get("scheme"),
            metrics["accuracy"],
        )
        return train(settings, dataset)[1]
    params = settings.params()
    log.info("validate: model %s, %.0f%% holdout, seed %d", settings.model, settings.holdout * 100, settings.seed)
    result, model = training.validate_and_keep(dataset, settings.model, params, settings.seed, settings.holdout, 0, settings.verbose)
    write_report(settings, result, dataset.train_images, artifact_dir(config.REPORTS_DIR, settings.model, settings.task.name))
    log.info("validate: %s accuracy %.4f", result.scheme, result.accuracy)
    if refit:
        return train(settings, dataset)[1]
    meta = model_meta(settings, params, dataset, result.accuracy, result.scheme, result.train_rows, result.fit_seconds)
    folder = artifact_dir(config.MODELS_DIR, settings.model, settings.task.name)
    training.save_model(model, folder, meta)
    log.info(
        "train: the validated model (%d rows) is the submission's; saved %s (--refit: train again on all %d rows)",
        result.train_rows,
        folder,
        len(dataset.train_labels),
    )
    return meta


def predict(settings: Settings, dataset: data.Dataset | None = None, output: Path | None = None) -> Path:
    """Predict test.csv with the trained model; write submissions/<UTC time>-<model>.csv and its sidecar."""
    dataset = dataset or load_data(settings)
    folder = artifact_dir(config.MODELS_DIR, settings.model, settings.task.name)
    model, meta = training.load_model(folder)
    if meta.get("data_checksum") != dataset.checksum:
        log.warning("predict: the model was trained on other data than %s; run 'make train' to refresh it", settings.resolved_data_dir)
    start = time.perf_counter()
    labels = model.predict(dataset.test_images)
    seconds = time.perf_counter() - start
    path = output or submission.submission_path(settings.model, settings.task)
    sidecar = {
        "task": settings.task.name,
        "model": meta["model"],
        "params": meta["params"],
        "requested_params": meta.get("requested_params", meta["params"]),
        "seed": meta["seed"],
        "holdout_accuracy": meta.get("holdout_accuracy"),
        "validation_scheme": meta.get("validation_scheme"),
        "data_checksum": dataset.checksum,
        "model_data_checksum": meta.get("data_checksum"),
        # What "nothing changed" compares; it also goes into the description on Kaggle (see submit).
        "config": submission.config_hash(
            settings.task.name,
            meta["model"],
            meta.get("requested_params", meta["params"]),
            meta["seed"],
            meta.get("data_checksum") or dataset.checksum,
        ),
        "versions": versions(),
        **({"trained_on": meta["trained_on"]} if meta.get("trained_on") else {}),  # a Kaggle kernel (--remote kaggle)
        **({"accelerator": meta["accelerator"]} if meta.get("accelerator") else {}),  # which one (Kaggle's machineShape)
        "durations": {"train_seconds": meta.get("train_seconds"), "predict_seconds": round(seconds, 3)},
        "written_at": utc_now(),
    }
    submission.write_submission(path, dataset.test_ids, labels, settings.task, sidecar)
    log.info("predict: %d rows in %.2f s, checked", len(labels), seconds)
    return path


# --- Kaggle-facing stages: the client is imported only when these run ----------------------------


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
    # Two fetches at once (cron beside a terminal) would share one <zip>.part: the second waits, then finds it up to date.
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
    log.info("fetch: %d train and %d test rows checked, extracted to %s", len(dataset.train_labels), len(dataset.test_images), folder)
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
) -> Path:
    """fetch -> one training with its estimate (see fit_for_submission) -> predict: the file `submit` uploads.

    With `remote`, the training and the prediction run in a Kaggle kernel; the data is still fetched
    here, so the file that comes back is checked against this test.csv.
    """
    if settings.data_dir is None:
        kaggle = kaggle or (kaggle_client(settings, competition) if remote else None)
        settings = settings.with_data(fetch(settings, force=force_fetch, competition=competition, kaggle=kaggle)[0])
    dataset = load_data(settings)
    if remote is not None:
        return remote.train(settings, kaggle or kaggle_client(settings, competition), dataset)
    ready = None if refit else unsubmitted_prediction(settings, dataset)
    if ready is not None:
        return ready
    fit_for_submission(settings, dataset, refit)
    return predict(settings, dataset)


def unsubmitted_prediction(settings: Settings, dataset: data.Dataset) -> Path | None:
    """The newest file `make predict` wrote for this model, when it was made with exactly these settings and
    this data and has not been uploaded: `make train predict` then `make submit` uploads it, not a new training.
    When there is such a file but it does not qualify, the log says why and submit trains as usual."""
    prefix = "" if settings.task.name == config.DEFAULT_TASK else f"{settings.task.name}-"
    files = sorted(config.SUBMISSIONS_DIR.glob(f"*-{prefix}{settings.model}.csv"))
    if not files:
        return None
    path, sidecar = files[-1], submission.read_sidecar(files[-1])
    expected = submission.config_hash(
        settings.task.name, settings.model, models.params_dict(settings.params()), settings.seed, dataset.checksum
    )
    checksum = submission.file_checksum(path)
    if submission.Ledger().find_submitted(settings.task.name, checksum):
        return None  # already up (or on its way): a new submission needs a new file
    reason = ""
    if sidecar.get("config") != expected or sidecar.get("data_checksum") != dataset.checksum:
        reason = "it was made with other settings (model parameters, seed) or other data"
    elif sidecar.get("checksum") != checksum:
        reason = "it changed since it was written"
    else:
        try:
            submission.check_submission(path, settings.task, dataset.test_ids)
        except DataError as error:
            reason = str(error)
    if reason:
        log.info("submit: not uploading %s, the newest prediction of '%s': %s; training anew", path.name, settings.model, reason)
        return None
    log.info("submit: %s was predicted with exactly these settings and data and never uploaded: uploading it, no training", path.name)
    return path


def submit(settings: Settings, options: SubmitOptions, kaggle: Kaggle | None = None) -> SubmitResult:
    """Produce (or take) a submission, refuse what should not go up, upload it and wait for the score."""
    require_submissions(settings.task, "Fix: use 'make evaluate TASK={task}' to score the model on it")
    ledger = submission.Ledger()
    if options.file:  # a bad file is refused before anything goes over the network
        path = Path(options.file)
        expected_ids = None
        if settings.resolved_data_dir.exists():  # with the data at hand, check the rows against test.csv too
            expected_ids = load_data(settings).test_ids
        rows = submission.check_submission(path, settings.task, expected_ids)
        if expected_ids is None:  # say what could not be checked, rather than pass it as checked
            log.warning(
                "submit: no %s at hand (%s), so %s was checked for its header, labels and unique ids only: not that its "
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
        path = produce_submission(
            settings, kaggle, force_fetch=False, competition=options.competition, refit=options.refit, remote=options.remote
        )
    sidecar = submission.read_sidecar(path)
    result = SubmitResult(file=path, holdout_accuracy=sidecar.get("holdout_accuracy"), run_id=path.stem)
    if not options.upload or kaggle is None:
        return result
    # One critical section per checkout, from "is this file already up?" to the row that says what became of
    # its upload: a second process (cron beside a terminal) waits here, then sees this upload in the ledger.
    with ledger.locked():
        refuse_identical(ledger, settings.task.name, path, options.force)
        require_quota(kaggle, f"{path.name} is kept. Fix: submit it after the daily reset (00:00 UTC) with --file {path}")
        ref = upload(settings, kaggle, ledger, path, sidecar, options, result)
    return wait_for_score(kaggle, ledger, path, ref, options, result)


# --- The guards: `submit` and the scheduled run (runs.py) both go through these ------------------


def require_submissions(task: Task, fix: str) -> None:
    """Tasks whose test file is labeled (Fashion-MNIST) have nothing to submit."""
    if not task.submits:
        raise UsageError(f"task '{task.name}' has no submissions (its test file is labeled). {fix.format(task=task.name)}")


def refuse_identical(ledger: submission.Ledger, task_name: str, path: Path, force: bool) -> None:
    """A file identical to one already on Kaggle (or maybe on it: an open upload) is not uploaded again."""
    earlier = ledger.find_submitted(task_name, submission.file_checksum(path))
    if not earlier or force:
        return
    if not earlier["kaggle_ref"]:
        raise Skipped(
            f"{path.name} may already be on Kaggle: its upload of {earlier['time']} is {earlier['status']} in the ledger; "
            f"not uploaded again. Fix: run 'make status' to settle it, or --force (FORCE=1) to submit it anyway"
        )
    raise Skipped(
        f"{path.name} is identical to {earlier['file']}, submitted {earlier['time']} (ref {earlier['kaggle_ref']}, "
        f"public score {earlier['public_score'] or 'pending'}); not uploaded. Fix: --force (FORCE=1) to submit it anyway"
    )


def require_quota(kaggle: Kaggle, consequence: str) -> Limits:
    """Kaggle's own count decides (numAllowedNow); with none left the run stops before it spends anything."""
    limits = kaggle.limits()
    log.info(
        "submit: submissions used today: %d, left now: %d (in all on this competition: %d)", limits.today, limits.allowed_now, limits.total
    )
    if limits.allowed_now <= 0:
        raise Skipped(f"no submissions left today on '{kaggle.name}' ({limits.today} used today); {consequence}")
    return limits


def upload(
    settings: Settings,
    kaggle: Kaggle,
    ledger: submission.Ledger,
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
    )
    result.run_id = row["run_id"]
    message = submission.description(result.run_id, model, accuracy, checksum, config_hash, options.message)
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
    kaggle: Kaggle, ledger: submission.Ledger, path: Path, ref: int, options: SubmitOptions, result: SubmitResult
) -> SubmitResult:
    """Outside the ledger's lock: the row has its ref, so nothing another process does can mistake it."""
    state: SubmissionState = kaggle.wait(ref, timeout=options.wait_timeout)
    ledger.update(result.run_id, status=state.status, public_score=state.public_score, private_score=state.private_score)
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


def settle_open_rows(ledger: submission.Ledger, kaggle, task_name: str) -> None:
    """Settle ledger rows left UPLOADING, UNKNOWN or PENDING (a killed run, a lost answer) from Kaggle's list.

    A row whose ref or run id (it is in every description) is on Kaggle's list was created there:
    record its ref and status; it is never uploaded again. A row with no ref that this competition's full
    list (all pages) does not have, once the grace period after its upload has passed (Kaggle's list can
    lag behind a create), was never created: FAILED, so its file may go up again. With no ledger at all
    (a new machine, an expired cache) it is restored from that list, so the guards still work. All of it
    under the ledger's lock: an upload in flight holds that lock, so its row is never taken for a dead one.
    """
    if not ledger.path.exists():
        restore_ledger(ledger, kaggle.submissions(), task_name, kaggle.name)  # under the lock when it has rows to add
        return
    with ledger.locked():
        open_rows = [
            row
            for row in ledger.rows(task_name)
            if row["status"] in submission.OPEN_STATUSES and (row.get("competition") or kaggle.name) == kaggle.name
        ]
        if not open_rows:
            return
        remote = kaggle.submissions()
        for row in open_rows:
            match = next(
                (
                    item
                    for item in remote
                    if (row["kaggle_ref"] and str(item.ref) == row["kaggle_ref"]) or f"kaggle-digits {row['run_id']}:" in item.description
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
                log.info("submit: ledger row %s settled from Kaggle's list: ref %s, %s", row["run_id"], match.ref, match.status)
            elif not row["kaggle_ref"] and _seconds_since(row["time"]) >= config.SETTLE_GRACE_SECONDS:
                ledger.update(row["run_id"], status="FAILED")
                log.info(
                    "submit: ledger row %s (%s) is not on Kaggle's list: it never reached Kaggle, marked FAILED",
                    row["run_id"],
                    row["status"],
                )
            elif not row["kaggle_ref"]:
                log.info(
                    "submit: ledger row %s (%s) is not on Kaggle's list yet; it is settled once %.0f s have passed since its upload "
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


def restore_ledger(ledger: submission.Ledger, remote: list[SubmissionState], task_name: str, competition: str = "") -> int:
    """Rows for the toolkit's submissions on Kaggle's list that the ledger lacks (a new machine, an expired cache)."""
    added = ledger.restore(remote, task_name, competition)
    if added:
        log.info("ledger: restored %d submission%s from Kaggle's list into %s", added, "" if added == 1 else "s", ledger.path)
    return added


def rebuild_ledger(settings: Settings, competition: str | None = None, kaggle=None) -> tuple[int, Path | None]:
    """`kaggle-digits ledger --rebuild`: a damaged ledger is kept aside, then rows come back from Kaggle's list."""
    kaggle = kaggle or kaggle_client(settings, competition)
    remote = kaggle.submissions()  # first: if Kaggle cannot be reached, nothing is moved
    ledger = submission.Ledger()
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
    ledger = submission.Ledger()
    if not ledger.path.exists():
        restore_ledger(ledger, listed, settings.task.name)
    rows = []
    for row in ledger.rows(settings.task.name):
        item = remote.pop(row["kaggle_ref"], None) if row["kaggle_ref"] else None
        if item and (item.status != row["status"] or item.public_score != row["public_score"]):
            ledger.update(row["run_id"], status=item.status, public_score=item.public_score, private_score=item.private_score)
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
