"""kaggle-digits: the commands. Each subcommand is a small function; its docstring is its help."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from . import (
    bench,
    config,
    demo,
    leaderboard,
    local_kaggle,
    make_sample,
    model_check,
    models,
    pipeline,
    plots,
    redact,
    remote,
    runs,
    submit,
    tuning,
)
from .errors import EXIT_CODES, Skipped, ToolkitError, UsageError
from .helpers import recover_folders
from .kaggle_api import Kaggle
from .tasks import all_tasks, competition_name, get_task


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (e.g. -p epochs=10)")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _common(parser: argparse.ArgumentParser, model: bool = True, data: bool = True) -> None:
    parser.add_argument(
        "--task", default=config.DEFAULT_TASK, help="which Kaggle task (see 'kaggle-digits tasks'); default %(default)s"
    )
    if data:
        parser.add_argument(
            "--data-dir", type=Path, help="folder or zip with the task's CSVs (default data/raw/<task>/)"
        )
    if model:
        parser.add_argument(
            "--model",
            default=config.DEFAULT_MODEL,
            help="a built-in name (see 'kaggle-digits models'), or yours: path/to/file.py:NAME or package.module:NAME "
            "(docs/your-model.md); default %(default)s",
        )
        parser.add_argument(
            "-p",
            "--param",
            action="append",
            type=_key_value,
            default=[],
            metavar="KEY=VALUE",
            help="override a model hyperparameter, e.g. -p epochs=10 (repeatable)",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=config.DEFAULT_SEED,
            help="one seed for splits and training; default %(default)s",
        )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress output (for cron); results and errors only"
    )


def _uploading(parser: argparse.ArgumentParser) -> None:
    """The options submit and the scheduled run share: where, what message, how long to wait, retrain or not."""
    parser.add_argument("--competition", type=competition_name, help="Kaggle competition name; default: the task's")
    parser.add_argument("--message", help="text added to the submission message")
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=config.SCORING_WAIT_SECONDS,
        help="seconds to wait for the score; default %(default)s",
    )
    parser.add_argument(
        "--refit",
        action="store_true",
        help="after the validation training, train again on every row (two trainings; default: one, see README.md: "
        "Against Kaggle)",
    )


def _settings(args) -> pipeline.Settings:
    settings = pipeline.Settings(
        task=get_task(args.task),
        data_dir=getattr(args, "data_dir", None),
        model=getattr(args, "model", config.DEFAULT_MODEL),
        overrides=dict(getattr(args, "param", [])),
        seed=getattr(args, "seed", config.DEFAULT_SEED),
        holdout=getattr(args, "holdout", config.DEFAULT_HOLDOUT),
        folds=getattr(args, "folds", 0),
        verbose=not args.quiet,
    )
    if hasattr(args, "model"):
        settings.params()  # an unknown model or a bad -p value fails here, before any data is read
    return settings


def cmd_validate(args) -> int:
    """Estimate accuracy on a stratified holdout (or k-fold); write metrics.json and plots."""
    settings = _settings(args)
    result, files = pipeline.validate(settings)
    spread = f" ± {result.accuracy_std:.4f}" if result.accuracy_std is not None else ""
    print(
        f"{settings.model}: {result.scheme} accuracy {result.accuracy:.4f}{spread}"
        + (f", best epoch {result.best_epoch}" if result.best_epoch else "")
        + f" ({result.fit_seconds:.0f} s training{f', Keras on {result.backend}' if result.backend else ''})"
    )
    if not args.quiet:
        names = settings.task.class_names
        print(
            "per-class accuracy: "
            + "  ".join(f"{names[i]}:{value:.3f}" for i, value in enumerate(result.per_class_accuracy))
        )
        print("confusion matrix (rows true, columns predicted):")
        for i, row in enumerate(result.confusion_matrix):
            print(f"  {names[i][:11]:>11} " + " ".join(f"{count:5d}" for count in row))
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


def cmd_evaluate(args) -> int:
    """Fit on the task's train file and score its labeled test file (Fashion-MNIST): accuracy per class, plots."""
    settings = _settings(args)
    if settings.data_dir is None:  # like submit: fetch first (nothing is downloaded when unchanged)
        settings = settings.with_data(submit.fetch(settings)[0])
    result, files = pipeline.evaluate(settings)
    print(
        f"{settings.model} on {settings.task.name}: test accuracy {result.accuracy:.4f} "
        f"({result.validation_rows} rows of {settings.task.test_file}; {result.fit_seconds:.0f} s training)"
    )
    if not args.quiet:
        width = max(len(name) for name in settings.task.class_names)
        for name, value in zip(settings.task.class_names, result.per_class_accuracy, strict=True):
            print(f"  {name:>{width}}  {value:.3f}")
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


def cmd_tasks(args) -> int:
    """List the tasks: where each one's data comes from and what it writes."""
    for task in all_tasks().values():
        writes = (
            f"submission {','.join(task.submission_header)}"
            if task.submits
            else "no submission (evaluate on the labeled test file)"
        )
        files = ", ".join(name for name in (task.train_file, task.test_file, task.sample_submission_file) if name)
        print(
            f"{task.name}\n  {task.source} {task.ref}: {files}\n  writes: {writes}\n  classes: "
            f"{', '.join(task.class_names)}"
        )
    return 0


def cmd_train(args) -> int:
    """Fit the final model on the full train.csv (epochs chosen by the last validate) and save it."""
    settings = _settings(args)
    folder, meta = pipeline.train(settings)
    print(f"model: {folder} ({meta['train_seconds']:.0f} s on {meta['train_rows']} rows)")
    return 0


def cmd_predict(args) -> int:
    """Predict test.csv with the trained model; write and check submissions/<UTC time>-<model>.csv."""
    settings = _settings(args)
    if not settings.task.submits:
        raise UsageError(
            f"task '{settings.task.name}' has no submission (its test file is labeled). "
            f"Fix: use 'kaggle-digits evaluate --task {settings.task.name}'"
        )
    path = pipeline.predict(settings)
    print(f"submission: {path}")
    return 0


def cmd_fetch(args) -> int:
    """Download the task's data through the Kaggle API, check it, extract it into data/raw/<task>/."""
    settings = _settings(args)
    folder, changed = submit.fetch(settings, force=args.force, competition=args.competition)
    print(f"data: {folder} ({'downloaded and checked' if changed else 'already up to date'})")
    return 0


def _remote_options(args) -> remote.RemoteOptions | None:
    """--remote and its --remote-* options (submit's and tune's, from _remote_arguments), checked; None without."""
    if not args.remote:
        return None
    if not math.isfinite(args.remote_timeout) or args.remote_timeout <= 0:
        raise UsageError(f"--remote-timeout {args.remote_timeout:g}: must be positive (seconds, e.g. 14400)")
    sessions = getattr(args, "remote_sessions", config.REMOTE_SESSIONS)
    if sessions < 1:
        raise UsageError(f"--remote-sessions {sessions}: must be at least 1")
    if args.remote_cpu and args.remote_accelerator:
        raise UsageError(
            f"--remote-cpu and --remote-accelerator {args.remote_accelerator} contradict each other. Fix: drop one"
        )
    return remote.RemoteOptions(
        timeout=args.remote_timeout,
        accelerator=None if args.remote_cpu else (args.remote_accelerator or config.DEFAULT_ACCELERATOR),
        sessions=sessions,
    )


def cmd_submit(args) -> int:
    """fetch, train once (with its accuracy estimate), predict, then upload and wait for the public score."""
    settings = _settings(args)
    if (args.trial is None) != (args.study is None):
        raise UsageError("--study and --trial go together (the command 'kaggle-digits tune' prints for its best)")
    if args.study:
        tuned = tuning.tuned_trial(settings, args.study, args.trial, args.storage)
        settings = replace(settings, tuned_by=tuned.label)
    if args.remote and (args.file or args.refit):
        raise UsageError(
            "--remote trains in a kernel: it takes neither --file (nothing to train) nor --refit "
            "(the kernel trains once). Fix: drop one of them"
        )
    remote_options = _remote_options(args)
    options = submit.SubmitOptions(
        file=args.file,
        upload=not args.no_upload,
        force=args.force,
        message=args.message or "",
        wait_timeout=args.wait_timeout,
        competition=args.competition,
        refit=args.refit,
        remote=remote_options,
    )
    result = submit.submit(settings, options)
    if not result.uploaded:
        print(f"submission: {result.file} (not uploaded: --no-upload)")
        return 0
    holdout = f", holdout {result.holdout_accuracy:.4f}" if result.holdout_accuracy is not None else ""
    print(f"public score: {result.public_score} (ref {result.ref}{holdout})")
    print(f"submission: {result.file}")
    return 0


def _competition_client(args) -> tuple[pipeline.Settings, Kaggle]:
    """status and leaderboard: a task that submits, and one client for its competition."""
    settings = _settings(args)
    submit.require_submissions(settings.task, "Fix: 'make evaluate TASK={task}'")
    return settings, submit.kaggle_client(settings, args.competition)


def cmd_status(args) -> int:
    """The ledger next to Kaggle's own submission list: holdout accuracy beside public score."""
    settings, kaggle = _competition_client(args)  # one client (one credential check) for the list and the board
    rows = submit.status(settings, kaggle=kaggle)
    if not rows:
        print("no submissions yet: 'make submit' makes the first")
        return 0
    columns = ["time", "ref", "model", "holdout", "public", "status", "file"]
    widths = {column: max(len(column), *(len(str(row[column])) for row in rows)) for column in columns}
    print("  ".join(column.ljust(widths[column]) for column in columns).rstrip())
    for row in rows:
        print("  ".join(str(row[column]).ljust(widths[column]) for column in columns).rstrip())
    chart = plots.score_history(
        rows, f"{settings.task.name}: scored submissions", config.SUBMISSIONS_DIR / "score_history.png"
    )
    if chart:
        print(f"score history: {chart}")
    if any(row["status"] == "COMPLETE" and row["public"] for row in rows):
        try:
            standing, _ = leaderboard.read(kaggle)
        except ToolkitError as error:  # the table above is what status is for; the rank is a bonus
            print(f"leaderboard: not available ({error})", file=sys.stderr)
        else:
            print(f"leaderboard: {leaderboard.summary(standing)[0]}")
            print(f"leaderboard: {leaderboard.summary(standing)[1]}")
    return 0


def cmd_leaderboard(args) -> int:
    """The public leaderboard: your team's best score, its rank among all teams and among honest scores."""
    settings, kaggle = _competition_client(args)
    standing, scores = leaderboard.read(kaggle, threshold=args.threshold, team=args.team)
    picture = plots.leaderboard(scores, standing, config.SUBMISSIONS_DIR / "leaderboard.png")
    if args.json:
        print(json.dumps({**standing.as_json(), "plot": str(picture)}))
        return 0
    print(f"leaderboard: '{standing.competition}', {standing.teams:,} teams on the public leaderboard")
    for line in leaderboard.summary(standing):
        print(line)
    print(f"picture: {picture}")
    return 0


def cmd_ledger(args) -> int:
    """The ledger (submissions/ledger.csv): --rebuild restores it from Kaggle's own list of submissions."""
    if not args.rebuild:
        raise UsageError(
            "ledger: say what to do. Fix: 'kaggle-digits ledger --rebuild' (or see 'kaggle-digits status')"
        )
    settings = _settings(args)
    added, kept = submit.rebuild_ledger(settings, competition=args.competition)
    if kept:
        print(f"ledger: the damaged ledger is kept as {kept}")
    print(
        f"ledger: restored {added} submission{'' if added == 1 else 's'} from Kaggle's list into {config.LEDGER_PATH}"
    )
    return 0


def cmd_remote(args) -> int:
    """The toolkit's kernels on Kaggle: 'remote stop' deletes its running kernels (kaggle-digits-*)."""
    settings = _settings(args)
    stopped = remote.stop_own_kernels(submit.kaggle_client(settings))
    print(
        f"remote: stopped {len(stopped)} running "
        f"kernel{'' if len(stopped) == 1 else 's'}{': ' if stopped else ''}{', '.join(stopped)}"
    )
    return 0


def cmd_serve_local(args) -> int:
    """Run the Kaggle-compatible server on 127.0.0.1 (for offline runs of fetch/submit/status)."""
    kernels = local_kaggle.KernelSettings()
    kernels.python = args.kernel_python or kernels.python  # (KernelSettings reads KAGGLE_DIGITS_KERNEL_PYTHON)
    server = local_kaggle.serve_builtin(
        port=args.port,
        source=args.source,
        daily_limit=args.daily_limit,
        scoring_delay=args.scoring_delay,
        listing_delay=args.listing_delay,
        kernels=kernels,
    )
    names = ", ".join(server.state.competitions)
    token_file = local_kaggle.write_token_file(server, config.LOCAL_TOKEN_PATH)
    print(f"local Kaggle server on http://127.0.0.1:{server.port} serving: {names}", flush=True)
    print(
        "point the official client at it (in another terminal; this one serves until Ctrl-C):\n"
        f"  export KAGGLE_API_ENVIRONMENT=TEST KAGGLE_API_TOKEN={token_file}\n"
        f"  ({token_file}, mode 600, holds this start's token: a new one each start; no published token works)",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
        print("stopped")
    return 0


def cmd_run(args) -> int:
    """The scheduled run for cron: lock, fetch if changed, train, predict, submit unless there is nothing to do."""
    settings = _settings(args)
    options = runs.RunOptions(
        message=args.message or "",
        keep_alive_days=args.keep_alive_days,
        dry_run=args.dry_run,
        competition=args.competition,
        wait_timeout=args.wait_timeout,
        refit=args.refit,
    )
    runs.run_command(settings, options, quiet=args.quiet)
    return 0


def cmd_demo(args) -> int:
    """The whole `make submit` flow offline, against the local Kaggle server, on the embedded sample."""
    return demo.run(args.submit_args)


def cmd_sample(args) -> int:
    """Redraw the embedded sample from a full download's labeled rows (maintainers: make sample)."""
    make_sample.run(args)
    return 0


def cmd_bench(args) -> int:
    """The out-of-fold benchmark: presets and the published peer beside softmax, on the same folds."""
    bench.run(args)
    return 0


def cmd_tune(args) -> int:
    """Search a model's parameters with Optuna (TPE, pruning); trials shared through the study's storage."""
    if args.show:
        summary = tuning.show(args.show, args.storage)
    else:
        settings = _settings(args)
        if args.show_space:
            print(tuning.show_space(settings))
            return 0
        summary = tuning.tune(settings, _tune_options(args), lambda share: _worker_argv(args, settings, share))
        if args.worker:
            return 0
    if args.json:
        tuning.write_json(summary)
    else:
        print(tuning.format_summary(summary))
    if summary.interrupted:
        print("interrupted: every finished trial is kept in the study; run the command again to go on", file=sys.stderr)
        return 130
    return 0


def _tune_options(args) -> tuning.TuneOptions:
    remote_options = _remote_options(args)
    if remote_options and args.jobs != 1:
        raise UsageError("--remote kaggle runs its trials as kernels (two at a time): it takes no --jobs")
    return tuning.TuneOptions(
        trials=args.trials,
        timeout=args.timeout,
        study=args.study,
        storage=args.storage,
        jobs=args.jobs,
        pruner=args.pruner,
        json=args.json,
        worker=args.worker,
        remote=remote_options,
    )


def _worker_argv(args, settings: pipeline.Settings, share: int | None) -> list[str]:
    """One --jobs worker's command line: this one's, for its share of the trials (the storage goes in its
    environment: see tuning._run_workers)."""
    argv = ["tune", "--task", settings.task.name, "--model", settings.model, "--seed", str(settings.seed)]
    argv += ["--folds", str(settings.folds)] if settings.folds > 1 else ["--holdout", str(settings.holdout)]
    if settings.data_dir is not None:
        argv += ["--data-dir", str(settings.data_dir)]
    for key, value in settings.overrides.items():
        argv += ["-p", f"{key}={value}"]
    argv += ["--study", args.study or tuning.default_study_name(settings), "--pruner", args.pruner, "--worker"]
    if share is not None:
        argv += ["--trials", str(share)]
    if args.timeout is not None:
        argv += ["--timeout", str(args.timeout)]
    if args.quiet:
        argv.append("--quiet")
    return argv


def cmd_models(args) -> int:
    """List the models and their default hyperparameters (or those of one model, yours included)."""
    names = [args.reference] if args.reference else list(models.REGISTRY)
    for name in names:
        params = models.params_dict(models.params_for(name))
        print(f"{models.label(name):14} " + " ".join(f"{key}={value}" for key, value in params.items()))
    return 0


def cmd_check_model(args) -> int:
    """Check a model of yours against the contract on the embedded sample: shapes, probabilities, seed, save/load."""
    for line in model_check.check_model(args.reference, dict(args.param), args.seed):
        print(f"check-model: {line}")
    return 0


def cmd_new_model(args) -> int:
    """Write a starter model file (scikit-learn or Keras style) that passes check-model."""
    reference = model_check.new_model(args.path, args.kind)
    print(f"new-model: wrote {args.path}; check it with 'kaggle-digits check-model {reference}'")
    return 0


def _remote_arguments(parser, remote_help: str, timeout_help: str, sessions: bool = False) -> None:
    """--remote kaggle and its --remote-* options, alike on every command that trains in kernels."""
    parser.add_argument("--remote", choices=["kaggle"], help=remote_help)
    parser.add_argument(
        "--remote-timeout",
        type=float,
        default=config.REMOTE_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"{timeout_help}; default %(default)s",
    )
    parser.add_argument(
        "--remote-accelerator",
        choices=sorted(config.ACCELERATORS),
        help=f"the kernel's accelerator, by Kaggle's name "
        f"({', '.join(f'{k}: {v}' for k, v in config.ACCELERATORS.items())}); "
        f"default {config.DEFAULT_ACCELERATOR} (Make: ACCELERATOR=)",
    )
    parser.add_argument(
        "--remote-cpu", action="store_true", help="the kernel without an accelerator (no GPU quota used)"
    )
    if sessions:
        parser.add_argument(
            "--remote-sessions",
            type=int,
            default=config.REMOTE_SESSIONS,
            metavar="N",
            help="kernels at once for the ensemble's members (one per member); default %(default)s",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kaggle-digits",
        description="Kaggle Digit Recognizer toolkit: fetch, validate, train, predict, submit, score.",
        epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, function, **kwargs):
        sub = commands.add_parser(name, help=function.__doc__.splitlines()[0], description=function.__doc__, **kwargs)
        sub.set_defaults(run=function)
        return sub

    validate = add("validate", cmd_validate)
    _common(validate)
    validate.add_argument(
        "--holdout", type=float, default=config.DEFAULT_HOLDOUT, help="fraction held out; default %(default)s"
    )
    validate.add_argument("--folds", type=int, default=0, help="k-fold cross-validation instead of a holdout (e.g. 5)")
    _common(add("train", cmd_train))
    _common(add("evaluate", cmd_evaluate))
    add("tasks", cmd_tasks)
    _common(add("predict", cmd_predict))
    listing = add("models", cmd_models)
    listing.add_argument("reference", nargs="?", help="one model: a built-in name, file.py:NAME or package.module:NAME")
    checking = add("check-model", cmd_check_model)
    checking.add_argument("reference", help="your model: path/to/file.py:NAME or package.module:NAME")
    checking.add_argument(
        "-p", "--param", action="append", type=_key_value, default=[], metavar="KEY=VALUE", help="a parameter"
    )
    checking.add_argument("--seed", type=int, default=config.DEFAULT_SEED, help="default %(default)s")
    starting = add("new-model", cmd_new_model)
    starting.add_argument("path", type=Path, help="the file to write, e.g. my_model.py")
    starting.add_argument("--kind", choices=sorted(model_check.STARTERS), default="sklearn", help="default %(default)s")
    fetch = add("fetch", cmd_fetch)
    _common(fetch, model=False, data=False)
    fetch.add_argument(
        "--competition", type=competition_name, help="Kaggle competition (or owner/data set) name; default: the task's"
    )
    fetch.add_argument("--force", action="store_true", help="download again even when up to date")
    submit = add("submit", cmd_submit)
    _common(submit)
    submit.add_argument(
        "--holdout", type=float, default=config.DEFAULT_HOLDOUT, help="holdout fraction for the accuracy in the message"
    )
    _uploading(submit)
    submit.add_argument("--file", type=Path, help="upload this submission file instead of training")
    submit.add_argument("--study", help="the tuning study these -p values come from (the ledger names it)")
    submit.add_argument("--trial", type=int, help="that study's trial (see 'kaggle-digits tune --show STUDY')")
    submit.add_argument(
        "--storage",
        default=os.environ.get(config.STORAGE_VARIABLE) or None,
        metavar="URL",
        help="where that study lives, when not in the default journal file (see tune --storage)",
    )
    submit.add_argument("--no-upload", action="store_true", help="stop after writing the file (Make: UPLOAD=0)")
    submit.add_argument("--force", action="store_true", help="upload even a file identical to an earlier submission")
    _remote_arguments(
        submit,
        "train and predict in a private Kaggle kernel on Kaggle's GPU, then check and upload here "
        "(Make: REMOTE=kaggle)",
        timeout_help="how long the kernel may run (Kaggle stops it then too)",
        sessions=True,
    )
    status = add("status", cmd_status)
    _common(status, model=False, data=False)
    status.add_argument("--competition", type=competition_name, help="Kaggle competition name; default: the task's")
    board = add("leaderboard", cmd_leaderboard)
    _common(board, model=False, data=False)
    board.add_argument("--competition", type=competition_name, help="Kaggle competition name; default: the task's")
    board.add_argument(
        "--threshold",
        type=leaderboard.threshold_value,
        default=leaderboard.DEFAULT_THRESHOLD,
        help="scores at or above it count as leaks, not models (the honest rank leaves them out); default %(default)s",
    )
    board.add_argument(
        "--team", help="look up this team instead of your own (default: the teamName on your submissions)"
    )
    board.add_argument(
        "--json", action="store_true", help="print one JSON object (score, rank, teams, honest_rank, ...)"
    )
    ledger = add("ledger", cmd_ledger)
    _common(ledger, model=False, data=False)
    ledger.add_argument(
        "--rebuild",
        action="store_true",
        help="add the toolkit's submissions on Kaggle's list that the ledger lacks; a damaged ledger is kept aside "
        "first",
    )
    ledger.add_argument("--competition", type=competition_name, help="Kaggle competition name; default: the task's")
    bench.add_arguments(add("bench", cmd_bench))
    tune = add("tune", cmd_tune)
    _common(tune)
    tune.add_argument(
        "--holdout", type=float, default=config.DEFAULT_HOLDOUT, help="fraction held out; default %(default)s"
    )
    tune.add_argument("--folds", type=int, default=0, help="k-fold cross-validation instead of the holdout (e.g. 5)")
    tune.add_argument(
        "--trials",
        type=int,
        help=f"trials this run adds (all --jobs together); default {config.TUNE_TRIALS} unless --timeout is given",
    )
    tune.add_argument("--timeout", type=float, metavar="SECONDS", help="stop starting trials after this long")
    tune.add_argument("--study", help="the study's name; default <task>-<model>")
    tune.add_argument(
        "--storage",
        default=os.environ.get(config.STORAGE_VARIABLE) or None,
        metavar="URL",
        help=f"where the study lives: postgresql://user:password@host/db (or mysql://) shared by many machines, or "
        f"journal:PATH; default a journal file under data/tuning/ (env {config.STORAGE_VARIABLE})",
    )
    tune.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes on this machine; default 1")
    tune.add_argument(
        "--pruner", choices=tuning.PRUNERS, default="median", help="stops hopeless trials early; default %(default)s"
    )
    tune.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (study, best_value, best_params, "
        "complete, pruned, failed, storage, submit_command, ...)",
    )
    tune.add_argument(
        "--show", metavar="STUDY", help="sum up a study (no training); --storage where it is not the default"
    )
    tune.add_argument("--show-space", action="store_true", help="print the model's search space and stop")
    tune.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    _remote_arguments(
        tune,
        "each trial's training in a private Kaggle kernel, at most two at once (kaggle.com's GPU-session cap)",
        timeout_help="how long each trial's kernel may run",
    )
    make_sample.add_arguments(add("sample", cmd_sample))
    demo_command = add(
        "demo", cmd_demo, epilog="Any other options go to 'kaggle-digits submit', e.g. --remote kaggle or -p epochs=2."
    )
    demo_command.set_defaults(submit_args=[])
    run = add("run", cmd_run)
    _common(run, data=False)
    _uploading(run)
    run.add_argument(
        "--keep-alive-days",
        type=float,
        default=config.KEEP_ALIVE_DAYS,
        help="re-upload the last scored file (no training) once it is this many days old and nothing changed, "
        "to stay on the rolling leaderboard (submissions drop off after two months); default %(default)g",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="say what the run would do; download, train and upload nothing"
    )
    serve = add("serve-local", cmd_serve_local)
    serve.add_argument(
        "--port",
        type=int,
        default=local_kaggle.DEFAULT_PORT,
        help="port on 127.0.0.1; default %(default)s (the client's TEST endpoint)",
    )
    serve.add_argument(
        "--source", type=Path, help="labeled Kaggle-layout zip for digit-recognizer (default: the embedded sample)"
    )
    serve.add_argument(
        "--daily-limit",
        type=int,
        default=local_kaggle.State.daily_limit,
        help="submissions per day; default %(default)s",
    )
    serve.add_argument(
        "--scoring-delay",
        type=float,
        default=local_kaggle.State.scoring_delay,
        help="seconds a submission stays PENDING; default %(default)s",
    )
    serve.add_argument(
        "--listing-delay",
        type=float,
        default=local_kaggle.State.listing_delay,
        help="seconds before a new submission shows in the submission list (kaggle.com's lags); default %(default)s",
    )
    serve.add_argument(
        "--kernel-python",
        help="the interpreter pushed kernels run with, standing in for Kaggle's image (KAGGLE_DIGITS_KERNEL_PYTHON; "
        "default: this one)",
    )
    remote_command = add("remote", cmd_remote)
    _common(remote_command, model=False, data=False)
    remote_command.add_argument(
        "action", choices=["stop"], help="stop: delete the toolkit's running kernels (named kaggle-digits-*)"
    )
    return parser


def _ours_or_a_warning(record: logging.LogRecord) -> bool:
    """The console's lines: the toolkit's, and other libraries' warnings and errors. Their chatter at INFO
    (matplotlib's "generated new fontManager" on a first run, say) stays out of the streams the toolkit owns."""
    return record.name.split(".", 1)[0] == "kaggle_digits" or record.levelno >= logging.WARNING


def main(argv: list[str] | None = None) -> int:
    """The one place where the toolkit's errors become messages and exit codes."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "command", None) == "demo":
        args.submit_args = extra  # demo passes them on to `submit`, which checks them
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    # The console handler lives for this call only, on the stderr of this call: main may run many times in one
    # process (the tests, a notebook) without lines doubling or going to a closed stream.
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    redact.install(console)  # every line on the console, the toolkit's and the libraries', is scrubbed
    console.addFilter(_ours_or_a_warning)
    root = logging.getLogger()
    root.addHandler(console)
    root_level = root.level
    root.setLevel(min(console.level, root_level or logging.WARNING))
    try:
        if config.SETTING_ERRORS:  # checked once, in config; refused here, before anything runs
            raise UsageError(config.SETTING_ERRORS[0])
        for parent in (config.MODELS_DIR, config.REPORTS_DIR, config.RAW_DIR):
            recover_folders(parent)  # a folder swap killed half-way: the previous folder goes back first
        return args.run(args) or 0
    except ToolkitError as error:
        if error.summary:  # a command's own account of how it ended (the scheduled run's line for cron)
            print(
                redact.scrub(error.summary), file=sys.stdout if isinstance(error, Skipped) else sys.stderr, flush=True
            )
        else:
            frames = getattr(error, "frames", "")  # a user's model raised: their own frames, then the line
            if frames:
                print(
                    "Traceback of your model's code (most recent call last):\n" + redact.scrub(frames.rstrip()),
                    file=sys.stderr,
                )
            print(f"error: {redact.scrub(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: one line for the user, the traceback on request
        if config.DEBUG:
            raise
        print(
            f"error: internal error {type(error).__name__}: {redact.scrub(str(error))}. This is a bug: rerun with "
            f"KAGGLE_DIGITS_DEBUG=1 "
            "for the traceback and report it",
            file=sys.stderr,
        )
        return 1
    finally:
        root.removeHandler(console)
        root.setLevel(root_level)


if __name__ == "__main__":
    sys.exit(main())
