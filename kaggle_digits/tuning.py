"""`kaggle-digits tune`: a search over a model's parameters, as an Optuna study.

Optuna does the searching (TPE), the pruning (median by default: a Keras model reports its validation accuracy
each epoch through optuna-integration's callback) and the sharing: every worker, of this machine or of many, asks
the study's storage for its next trial. Nothing of ours coordinates workers. The storage:
- by default a journal file under data/tuning/ (Optuna's advice for processes of one machine; SQLite is not, for
  parallel workers);
- `--storage postgresql://...` (or mysql://) for many machines, each running the same command.

Every trial of a study trains with the study's seed on the study's split (holdout or k-fold) of the same data, so
the differences between trials are paired; a run that asks for another model, task, seed, split or data is refused.
The best trial's figure was chosen on that split: it is optimistic, and `submit --study NAME --trial N` says so.

A worker killed with kill -9 leaves its trial RUNNING. On a database, Optuna's heartbeat fails it once it has been
silent for TUNE_STALE_SECONDS; the journal file has no heartbeat, so a RUNNING trial whose worker process is gone
from this machine is failed by the next use of the study (a run, or --show).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from . import config, lazy, models, pipeline, plots, training
from .data import Dataset
from .errors import StudyStorageError, ToolkitError, UsageError
from .models.keras_models import KerasModel
from .redact import MASK, register

log = logging.getLogger("kaggle_digits")

JOURNAL_NAME = "studies.journal"
PRUNERS = ("median", "hyperband", "none")
# The study's identity: a trial is comparable with the others only when all of these agree.
IDENTITY = ("task", "model", "seed", "scheme", "data_checksum")


@dataclass
class TuneOptions:
    trials: int | None = None  # trials this run adds (all its workers together); None with a timeout: until then
    timeout: float | None = None  # seconds, per worker
    study: str | None = None  # default: <task>-<model>
    storage: str | None = None  # an RDB URL or journal:PATH; default: the journal file under data/tuning/
    jobs: int = 1  # worker processes on this machine
    pruner: str = "median"
    json: bool = False
    worker: bool = False  # one of a run's --jobs processes: trials only, no summary
    remote: Any = None  # remote.RemoteOptions: each trial's training in a Kaggle kernel


@dataclass
class Summary:
    study: str
    storage: str
    model: str
    task: str
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    scheme: str
    seed: int
    submit_command: str | None
    plots: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items()}


# --- storage -----------------------------------------------------------------------------------------------------


def default_journal() -> Path:
    return config.TUNING_DIR / JOURNAL_NAME


def storage_label(url: str | None) -> str:
    """The storage as lines and --json show it: a database URL's password masked."""
    if not url:
        return f"journal:{default_journal()}"
    if url.startswith("journal:"):
        return url
    try:
        return _url(url).render_as_string(hide_password=True)
    except UsageError:
        return url


def _url(url: str):
    try:
        parsed = lazy.make_url()(url)
    except Exception:  # sqlalchemy's ArgumentError (and anything else it raises for a garbled URL)
        raise UsageError(
            f"--storage {storage_label_safe(url)}: not a database URL. Fix: postgresql://user:password@host/db, "
            f"mysql://..., sqlite:///file.db or journal:path/to/file"
        ) from None
    register(parsed.password)
    return parsed


def storage_label_safe(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", rf"\g<1>{MASK}@", url)


def open_storage(url: str | None):
    """Optuna's storage for `url`: the default journal file, journal:PATH, or a database (RDB with a heartbeat)."""
    optuna = lazy.optuna()
    journal = optuna.storages.journal
    if not url or url.startswith("journal:"):
        path = Path(url[len("journal:") :]) if url else default_journal()
        if not str(path):
            raise UsageError("--storage journal: names no file. Fix: journal:path/to/studies.journal")
        path.parent.mkdir(parents=True, exist_ok=True)
        # OpenLock (O_EXCL on a lock file) rather than the default symlink lock: it works where symlinks do not.
        backend = journal.JournalFileBackend(str(path), lock_obj=journal.JournalFileOpenLock(str(path)))
        return journal.JournalStorage(backend)
    parsed = _url(url)
    backend_name = parsed.get_backend_name()
    if backend_name not in ("postgresql", "mysql", "sqlite"):
        raise UsageError(
            f"--storage {storage_label(url)}: unknown storage scheme '{parsed.drivername}'. Fix: postgresql://..., "
            f"mysql://..., sqlite:///file.db, or journal:path (default: {default_journal()})"
        )
    connect_args = {} if backend_name == "sqlite" else {"connect_timeout": config.TUNE_CONNECT_TIMEOUT_SECONDS}
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"connect_args": connect_args},
            heartbeat_interval=config.TUNE_HEARTBEAT_SECONDS,
            grace_period=config.TUNE_STALE_SECONDS,
        )
    except ImportError as error:  # Optuna's own ImportError over the driver's ModuleNotFoundError
        missing = getattr(error.__cause__, "name", None) or getattr(error, "name", None) or "its driver"
        driver = {"postgresql": "'psycopg[binary]'", "mysql": "PyMySQL"}.get(backend_name, missing)
        raise UsageError(
            f"--storage {storage_label(url)}: the database driver is not installed (no module '{missing}'). "
            f"Fix: pip install {driver} (or: pip install 'kaggle-digits[{backend_name}]')"
        ) from None
    except Exception as error:  # sqlalchemy's OperationalError and kin: unreachable, refused, bad password
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise StudyStorageError(
            f"--storage {storage_label(url)}: cannot use the database ({type(error).__name__}: {reason}). "
            f"Fix: check that the server runs and takes connections from here, and the URL's user and password"
        ) from None


# --- the study ---------------------------------------------------------------------------------------------------


def default_study_name(settings: pipeline.Settings) -> str:
    return f"{settings.task.name}-{settings.model_file_name}"


def scheme_of(settings: pipeline.Settings) -> str:
    return f"{settings.folds}-fold" if settings.folds > 1 else f"holdout {settings.holdout:g}"


def identity(settings: pipeline.Settings, dataset: Dataset) -> dict[str, Any]:
    return {
        "task": settings.task.name,
        "model": models.display_name(settings.model),
        "seed": settings.seed,
        "scheme": scheme_of(settings),
        "data_checksum": dataset.checksum,
    }


def _pruner(name: str):
    optuna = lazy.optuna()
    if name == "median":
        # Four finished trials before any is pruned, and never on the first epoch (the warm-up's): a trial is
        # stopped only when its accuracy at an epoch is below the median of the others' at that epoch.
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def open_study(name: str, storage_url: str | None, create: bool, pruner: str = "median", sampler=None):
    """The study, created when `create` (and absent); a RUNNING trial whose worker is gone is failed first."""
    optuna = lazy.optuna()
    storage = open_storage(storage_url)
    if create:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            pruner=_pruner(pruner),
            sampler=sampler,
        )
    else:
        try:
            study = optuna.load_study(study_name=name, storage=storage, pruner=_pruner(pruner), sampler=sampler)
        except KeyError:
            names = sorted(summary.study_name for summary in optuna.get_all_study_summaries(storage))
            raise UsageError(
                f"no study '{name}' in {storage_label(storage_url)}. Fix: one of: {', '.join(names) or 'none yet'}"
                + ("" if storage_url else " (another storage: add --storage URL)")
            ) from None
    fail_gone_workers(study, storage)
    return study


def worker_mark() -> str:
    """This process, as a RUNNING trial names its worker: host, pid and the process's start time (a pid reused by
    another process after a reboot or a wrap-around is not taken for it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def _started(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""  # not Linux: the pid alone says whether it lives


def _gone(mark: str) -> bool:
    host, _, rest = mark.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's worker: only a database's heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return bool(started) and _started(int(pid)) != started


def fail_gone_workers(study, storage) -> None:
    optuna = lazy.optuna()
    if isinstance(storage, optuna.storages.RDBStorage):
        optuna.storages.fail_stale_trials(study)  # the heartbeat's verdict (silent for TUNE_STALE_SECONDS)
        return
    running = optuna.trial.TrialState.RUNNING
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(running,)):
        mark = trial.user_attrs.get("worker")
        age = time.time() - trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        if (mark and _gone(mark)) or (not mark and age > config.TUNE_STALE_SECONDS):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(trial_id, "failed_because", "its worker process was gone")
            if storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL):
                log.warning(
                    "tune: trial %d of study %s failed: its worker (%s) is gone",
                    trial.number,
                    study.study_name,
                    mark or "unknown",
                )


def check_identity(study, wanted: dict[str, Any], name: str) -> None:
    """A study is one model, task, seed, split and data: trials are compared pairwise, so a mismatch is refused."""
    held = study.user_attrs.get("kaggle_digits")
    if held is None:
        if study.trials:
            raise UsageError(f"study '{name}' was not made by kaggle-digits tune. Fix: --study ANOTHER_NAME")
        study.set_user_attr("kaggle_digits", wanted)
        return
    for key in IDENTITY:
        if held.get(key) != wanted.get(key):
            what = "data (another train.csv)" if key == "data_checksum" else f"{key} {held.get(key)!r}"
            raise UsageError(
                f"study '{name}' was created for {what}, not {wanted.get(key)!r}: its trials would not be comparable. "
                f"Fix: --study ANOTHER_NAME for a new study"
                + ("" if key == "data_checksum" else f" (or the study's own --{key.replace('_', '-')})")
            )


# --- the search space --------------------------------------------------------------------------------------------


def search_space(model: str) -> Callable[[Any], dict[str, Any] | None]:
    model_class = models.model_class(model)
    if model_class.search_space.__func__ is models.Model.search_space.__func__:  # type: ignore[attr-defined]
        raise UsageError(
            f"model '{models.display_name(model)}' declares no search space. Fix: define search_space(trial) beside "
            f"it, returning its parameters from trial.suggest_* (see docs/tuning.md)"
        )
    return model_class.search_space


def drawn_distributions(model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the space once against an in-memory study: Optuna's own record of what it draws, and what it returns."""
    optuna = lazy.optuna()
    trial = optuna.create_study(direction="maximize").ask()
    values = models.model_class(model).search_space(trial) or {}
    return dict(trial.distributions), values


def describe(name: str, distribution) -> str:
    optuna = lazy.optuna()
    distributions = optuna.distributions
    if isinstance(distribution, distributions.CategoricalDistribution):
        return f"{name}: one of {', '.join(map(str, distribution.choices))}"
    kind = "int" if isinstance(distribution, distributions.IntDistribution) else "float"
    text = f"{name}: {kind} in [{distribution.low:g}, {distribution.high:g}]"
    if distribution.log:
        text += ", log scale"
    elif distribution.step not in (None, 1):
        text += f", step {distribution.step:g}"
    return text


def _text(value: Any) -> str:
    """A drawn value as a -p string that parse_overrides reads back to the same value."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)


@dataclass
class Space:
    """The model's space, with the user's -p values fixed: a drawn name through Optuna's PartialFixedSampler, a
    parameter the space computes (the cnn's rotation from its augmentation) by replacing what it returns."""

    model: str
    fixed_draws: dict[str, Any]
    fixed_params: dict[str, str]
    distributions: dict[str, Any]
    returned: tuple[str, ...]

    def params(self, values: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        """The model's params for a trial's drawn `values`, and the -p strings that give them."""
        overrides = {key: _text(value) for key, value in values.items()}
        overrides.update(self.fixed_params)
        try:
            return models.params_for(self.model, overrides), overrides
        except models.UserCodeError:
            raise
        except UsageError as error:
            raise UsageError(f"the search space of '{models.display_name(self.model)}': {error}") from None


def build_space(model: str, fixed: dict[str, str]) -> Space:
    search_space(model)
    distributions, returned = drawn_distributions(model)
    draws, params = {}, {}
    for key, raw in fixed.items():
        name = key.replace("-", "_")
        if name in distributions:
            draws[name] = _typed(name, raw, distributions[name])
        else:
            params[key] = raw
    models.params_for(model, params)  # a -p the model lacks is refused here, before any trial
    space = Space(model, draws, params, distributions, tuple(returned))
    space.params(returned)  # a space that names a parameter the model lacks is refused before any trial too
    return space


def _typed(name: str, raw: str, distribution) -> Any:
    optuna = lazy.optuna()
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        for choice in distribution.choices:
            if str(choice) == raw:
                return choice
        raise UsageError(f"-p {name}={raw}: not one of its choices ({', '.join(map(str, distribution.choices))})")
    try:
        return int(raw) if isinstance(distribution, optuna.distributions.IntDistribution) else float(raw)
    except ValueError:
        raise UsageError(f"-p {name}={raw}: expected a number (its range: {describe(name, distribution)})") from None


def show_space(settings: pipeline.Settings) -> str:
    space = build_space(settings.model, settings.overrides)
    lines = [f"search space of {models.display_name(settings.model)} (Optuna, define-by-run):"]
    for name, distribution in space.distributions.items():
        fixed = space.fixed_draws.get(name)
        lines.append(f"  {describe(name, distribution)}" + (f"  (fixed by -p: {fixed})" if fixed is not None else ""))
    computed = [key for key in space.returned if key not in space.distributions]
    if computed:
        lines.append(f"  computed from those: {', '.join(computed)}")
    for key, value in space.fixed_params.items():
        lines.append(f"  {key} = {value}  (fixed by -p)")
    return "\n".join(lines)


# --- running trials ----------------------------------------------------------------------------------------------


def _objective(settings: pipeline.Settings, dataset: Dataset, space: Space, keras_model: bool):
    optuna = lazy.optuna()

    def objective(trial) -> float:
        trial.set_user_attr("worker", worker_mark())
        values = models.model_class(settings.model).search_space(trial) or {}
        params, overrides = space.params(values)
        trial.set_user_attr("params", overrides)
        callbacks: tuple = ()
        after_fold = None
        if settings.folds > 1:

            def after_fold(fold: int, mean: float) -> None:
                trial.report(mean, step=fold)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {fold}")

        elif keras_model:
            callbacks = (lazy.keras_pruning_callback()(trial, "val_accuracy"),)
        start = time.perf_counter()
        try:
            result, _ = training.validate_and_keep(
                dataset,
                settings.model,
                params,
                settings.seed,
                settings.holdout,
                settings.folds,
                verbose=False,
                epoch_callbacks=callbacks,
                after_fold=after_fold,
            )
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 2))
        trial.set_user_attr("scheme", result.scheme)
        return result.accuracy

    return objective


def _progress(total: int | None):
    optuna = lazy.optuna()
    state = optuna.trial.TrialState

    def callback(study, trial) -> None:
        seconds = trial.user_attrs.get("seconds", 0)
        params = " ".join(f"{key}={value}" for key, value in trial.params.items())
        if trial.state == state.COMPLETE:
            what = f"{trial.value:.4f}"
        elif trial.state == state.PRUNED:
            unit = (
                "fold" if str(study.user_attrs.get("kaggle_digits", {}).get("scheme", "")).endswith("fold") else "epoch"
            )
            what = f"pruned after {unit} {trial.last_step + 1 if trial.last_step is not None else '?'}"
        else:
            what = "failed"
        try:
            best = f"; best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            best = ""
        log.info("tune: trial %d %s in %.0f s (%s)%s", trial.number, what, seconds, params, best)

    return callback


def _shares(trials: int | None, jobs: int) -> list[int | None]:
    if trials is None:
        return [None] * jobs
    return [trials // jobs + (1 if index < trials % jobs else 0) for index in range(jobs)]


def tune(
    settings: pipeline.Settings, options: TuneOptions, argv_for_worker: Callable[[int | None], list[str]]
) -> Summary:
    """Run the study's trials (this process, or --jobs worker processes), then sum it up (plots too)."""
    if options.trials is not None and options.trials < 1:
        raise UsageError(f"--trials {options.trials}: must be at least 1")
    if options.timeout is not None and not (math.isfinite(options.timeout) and options.timeout > 0):
        raise UsageError(f"--timeout {options.timeout:g}: must be a positive number of seconds")
    if options.jobs < 1:
        raise UsageError(f"--jobs {options.jobs}: must be at least 1")
    if options.trials is None and options.timeout is None:
        options = replace(options, trials=config.TUNE_TRIALS)
    if options.trials is not None and options.jobs > options.trials:
        options = replace(options, jobs=options.trials)
    name = options.study or default_study_name(settings)
    space = build_space(settings.model, settings.overrides)  # a bad space or -p: one line before any data is read
    dataset = pipeline.load_data(settings)
    study = open_study(name, options.storage, create=True, pruner=options.pruner, sampler=_sampler(space))
    check_identity(study, identity(settings, dataset), name)
    if not options.worker:
        log.info(
            "tune: study %s in %s: %s%s on %s, %s, seed %d%s",
            name,
            storage_label(options.storage),
            f"{options.trials} trials" if options.trials else "trials",
            f" within {options.timeout:g} s" if options.timeout else "",
            models.display_name(settings.model),
            scheme_of(settings),
            settings.seed,
            f", {options.jobs} workers" if options.jobs > 1 else "",
        )
    interrupted = False
    try:
        if options.remote is not None:
            _run_remote(settings, study, space, options, dataset)
        elif options.jobs > 1:
            _run_workers(_shares(options.trials, options.jobs), argv_for_worker, options.storage)
        else:
            keras_model = issubclass(models.model_class(settings.model), KerasModel)
            study.optimize(
                _objective(settings, dataset, space, keras_model),
                n_trials=options.trials,
                timeout=options.timeout,
                callbacks=[_progress(options.trials)],
                catch=(),
                gc_after_trial=True,
            )
    except KeyboardInterrupt:
        if options.worker:
            raise
        interrupted = True
    if options.worker:
        return summarize(study, settings, options.storage, draw=False)
    summary = summarize(study, settings, options.storage, draw=True)
    summary.interrupted = interrupted
    return summary


class RemoteTrials(Protocol):
    """Validation somewhere else (remote.RemoteOptions: Kaggle kernels): each set of -p values' accuracy."""

    sessions: int
    machine: str

    def validate(self, settings: pipeline.Settings, overrides: list[dict[str, str]], dataset: Dataset) -> list: ...


def _run_remote(settings: pipeline.Settings, study, space: Space, options: TuneOptions, dataset: Dataset) -> None:
    """`--remote kaggle`: ask the study for as many trials as kernels may run at once, validate them there, tell
    the study their results; again until --trials or --timeout. No per-epoch pruning: a kernel reports at its end."""
    optuna = lazy.optuna()
    remote: RemoteTrials = options.remote
    progress = _progress(options.trials)
    start, done = time.monotonic(), 0
    while options.trials is None or done < options.trials:
        if options.timeout is not None and time.monotonic() - start >= options.timeout:
            break
        batch = (
            max(1, remote.sessions) if options.trials is None else min(max(1, remote.sessions), options.trials - done)
        )
        asked = []
        for _ in range(batch):
            trial = study.ask()
            trial.set_user_attr("worker", worker_mark())
            trial.set_user_attr("trained_on", f"kaggle kernel ({remote.machine})")
            values = models.model_class(settings.model).search_space(trial) or {}
            _, overrides = space.params(values)
            trial.set_user_attr("params", overrides)
            asked.append((trial, overrides))
        began = time.perf_counter()
        try:
            accuracies = remote.validate(settings, [overrides for _, overrides in asked], dataset)
        except BaseException:
            for trial, _ in asked:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        for (trial, _), accuracy in zip(asked, accuracies, strict=True):
            trial.set_user_attr("seconds", round(time.perf_counter() - began, 2))
            frozen = study.tell(trial, accuracy)
            progress(study, frozen)
        done += batch


def _sampler(space: Space):
    optuna = lazy.optuna()
    base = optuna.samplers.TPESampler()  # unseeded: workers seeded alike would draw the same first points
    return optuna.samplers.PartialFixedSampler(space.fixed_draws, base) if space.fixed_draws else base


def _run_workers(
    shares: list[int | None], argv_for_worker: Callable[[int | None], list[str]], storage: str | None
) -> None:
    """--jobs N: N processes of this command, each with its share of the trials, on the same study; the storage
    hands out the trials. Their lines go to this terminal; Ctrl-C reaches them too (one process group). The storage
    URL (it may hold a password) travels in their environment, never on a command line that `ps` shows."""
    env = {**os.environ, **({config.STORAGE_VARIABLE: storage} if storage else {})}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "kaggle_digits", *argv_for_worker(share)], stdin=subprocess.DEVNULL, env=env
        )
        for share in shares
    ]
    try:
        codes = [worker.wait() for worker in workers]
    except KeyboardInterrupt:
        for worker in workers:
            try:
                worker.wait(timeout=60)  # each ends its trial (FAIL) and stops; finished trials are kept
            except subprocess.TimeoutExpired:
                worker.kill()
        raise
    failed = [code for code in codes if code not in (0, 130)]
    if failed:
        raise ToolkitError(
            f"{len(failed)} of {len(workers)} tune workers failed (exit {', '.join(map(str, failed))}); their "
            f"lines are above. The study keeps every finished trial"
        )


# --- results -----------------------------------------------------------------------------------------------------


def summarize(study, settings: pipeline.Settings | None, storage_url: str | None, draw: bool) -> Summary:
    optuna = lazy.optuna()
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    held = study.user_attrs.get("kaggle_digits", {})
    count = {kind: sum(1 for trial in trials if trial.state == kind) for kind in state}
    complete = [trial for trial in trials if trial.state == state.COMPLETE]
    best = max(complete, key=lambda trial: (trial.value, -trial.number)) if complete else None
    best_params = dict(best.user_attrs.get("params", best.params)) if best else {}
    model = held.get("model", settings.model if settings else "")
    reference = settings.model if settings else model
    command = None
    if best is not None:
        words = ["kaggle-digits", "submit", "--model", reference]
        if held.get("task", config.DEFAULT_TASK) != config.DEFAULT_TASK:
            words += ["--task", held["task"]]
        for key, value in best_params.items():
            words += ["-p", f"{key}={value}"]
        words += ["--seed", str(held.get("seed", config.DEFAULT_SEED)), "--study", study.study_name]
        words += ["--trial", str(best.number)]
        if storage_url:
            words += ["--storage", storage_label(storage_url)]
        command = shlex.join(words)
    pictures: dict[str, str] = {}
    if draw and complete:
        folder = study_folder(study.study_name)
        for kind, path in plots.tuning(study, folder).items():
            pictures[kind] = str(path)
    return Summary(
        study=study.study_name,
        storage=storage_label(storage_url),
        model=model,
        task=held.get("task", ""),
        complete=count[state.COMPLETE],
        pruned=count[state.PRUNED],
        failed=count[state.FAIL],
        running=count[state.RUNNING],
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        best_params=best_params,
        scheme=held.get("scheme", ""),
        seed=held.get("seed", config.DEFAULT_SEED),
        submit_command=command,
        plots=pictures,
    )


def study_folder(name: str) -> Path:
    return config.TUNING_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")


def show(name: str, storage_url: str | None) -> Summary:
    study = open_study(name, storage_url, create=False)
    return summarize(study, None, storage_url, draw=True)


def format_summary(summary: Summary) -> str:
    lines = [
        f"study {summary.study} ({summary.storage}): {summary.model} on {summary.task}, {summary.scheme}, seed "
        f"{summary.seed}: {summary.complete} complete, {summary.pruned} pruned, {summary.failed} failed"
        + (f", {summary.running} running" if summary.running else "")
    ]
    if summary.best_value is None:
        lines.append("no complete trial yet")
        return "\n".join(lines)
    lines.append(
        f"best: {summary.best_value:.4f} (trial {summary.best_trial}; chosen on this {summary.scheme}, so optimistic)"
    )
    lines.append("  " + " ".join(f"{key}={value}" for key, value in summary.best_params.items()))
    lines.append(f"submit it: {summary.submit_command}")
    for kind, path in summary.plots.items():
        lines.append(f"{kind}: {path}")
    return "\n".join(lines)


# --- submitting a trial ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TunedTrial:
    study: str
    number: int
    value: float
    overrides: dict[str, str]
    seed: int
    scheme: str

    @property
    def label(self) -> str:
        return f"{self.study}#{self.number}"


def tuned_trial(settings: pipeline.Settings, name: str, number: int, storage_url: str | None) -> TunedTrial:
    """`submit --study NAME --trial N`: the trial, checked against the command line (model, task, seed, -p)."""
    optuna = lazy.optuna()
    study = open_study(name, storage_url, create=False)
    held = study.user_attrs.get("kaggle_digits", {})
    if held.get("model") != models.display_name(settings.model) or held.get("task") != settings.task.name:
        raise UsageError(
            f"study '{name}' tuned {held.get('model')} on {held.get('task')}, not "
            f"{models.display_name(settings.model)} on {settings.task.name}. Fix: the command 'kaggle-digits tune "
            f"--show {name}' prints"
        )
    trials = [trial for trial in study.get_trials(deepcopy=False) if trial.number == number]
    if not trials or trials[0].state != optuna.trial.TrialState.COMPLETE:
        state = trials[0].state.name if trials else "no such trial"
        raise UsageError(
            f"study '{name}' trial {number}: {state}, not a complete trial. Fix: 'kaggle-digits tune "
            f"--show {name}' names the best"
        )
    trial = trials[0]
    overrides = dict(trial.user_attrs.get("params", {}))
    if overrides != dict(settings.overrides) or held.get("seed") != settings.seed:
        raise UsageError(
            f"the -p values and --seed differ from study '{name}' trial {number}'s. Fix: run the command that "
            f"'kaggle-digits tune --show {name}' prints, unchanged"
        )
    return TunedTrial(name, number, float(trial.value), overrides, settings.seed, held.get("scheme", ""))


def write_json(summary: Summary) -> None:
    sys.stdout.write(json.dumps(summary.as_json()) + "\n")
