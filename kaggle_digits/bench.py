"""`make bench`: the presets and a published peer beside the tutorial's softmax, out-of-fold on the same folds.

Accuracy is out-of-fold: every row of train.csv is predicted once, by the fold model that did not see
it, so the estimate rests on all 42,000 rows (standard error about 0.0003 near 0.995) instead of one
4,200-row holdout (about 0.0011), which cannot tell 0.994 from 0.996. Two recipes are compared row by
row on those predictions (a paired difference with its own interval). Each model runs in a child
process of its own (one process tree), so its peak memory and threads are its own. Times are printed
beside a ratio to `softmax` timed in the same run: machines of one kind differ by 1.5x.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import config, data, epoch_times, gpu_check, lazy, models, plots
from . import splits as division
from .errors import DataError, ToolkitError, UsageError
from .models.keras_models import KerasModel
from .tasks import get_task

REFERENCE = "softmax"  # times and error rates are also given as ratios to it
DEFAULT_MODEL = config.DEFAULT_MODEL  # accuracy differences are paired against it
PEER = "deotte"  # the published recipe; trains on the default model's epoch budget unless told otherwise
DEFAULT_MODELS = ("softmax", "fast", "cnn", "deotte")
DEFAULT_FOLDS = 5
EPOCH_TIMES_EPOCHS = 4  # --epoch-times: the first includes tracing, three more to compare
EPOCH_TIMES_ROUNDS = 2
PREDICT_ROWS = 28_000  # Kaggle's test.csv
# --quick: the same code on the embedded sample, with few epochs, in about a minute (a smoke test,
# not a measurement of accuracy).
QUICK_OVERRIDES = {
    "softmax": {"epochs": "10"},
    "fast": {"epochs": "2", "batch_size": "64"},
    "cnn": {"epochs": "2", "batch_size": "64"},
    "deotte": {"epochs": "2", "bn_momentum": "0.9"},
    "ensemble": {"epochs": "1", "members": "2", "batch_size": "64", "filters": "8"},
    "mlp": {"epochs": "3"},
    "random-forest": {"n_estimators": "50"},
}


def _measure(
    model_name: str,
    overrides: dict[str, str],
    source: str,
    task_name: str,
    seed: int,
    folds: int,
    curve: list[int],
    results,
    run_folds: int | None = None,
) -> None:
    """Runs in the child process: k fold models, their out-of-fold predictions, times, peak memory."""
    try:
        task = get_task(task_name)
        dataset = data.load(Path(source), task)
        images, labels = dataset.train_images, dataset.train_labels
        # --run-folds: the first folds of the same k-fold only (for models too slow for all k, e.g. the
        # ensemble: its committee has to be scored on rows none of its members saw).
        splits = division.kfold_splits(labels, folds, seed)[:run_folds]
        params = models.params_for(model_name, overrides)
        epochs = getattr(params, "epochs", 1)
        out_of_fold = np.full(len(labels), -1, dtype=np.int64)  # -1: a row no fold run held out
        member_predictions: list[np.ndarray] = []  # a committee's members alone, on the same held-out rows
        fold_seconds: list[float] = []
        first_model = first_history = None
        for fold, (train, val) in enumerate(splits):
            model = models.create(model_name, params, seed)
            # Fold 1 of a curve model reports accuracy after every epoch; for the peer that is the curve
            # itself (its schedule does not depend on the budget: epoch e of a long run = an e-epoch run).
            validation = (images[val], labels[val]) if curve and fold == 0 and model_name == PEER else None
            start = time.perf_counter()
            history = model.fit(images[train], labels[train], validation=validation, verbose=False)
            fold_seconds.append(time.perf_counter() - start)
            out_of_fold[val] = model.predict(images[val])
            for index, member in enumerate(getattr(model, "members", [])):
                if fold == 0:
                    member_predictions.append(np.full(len(labels), -1, dtype=np.int64))
                member_predictions[index][val] = member.predict(images[val])
            print(
                f"bench: {model_name} fold {fold + 1}/{len(splits)}: {np.mean(out_of_fold[val] == labels[val]):.4f} on "
                f"{len(val):,} held-out rows, {fold_seconds[-1]:.0f} s",
                flush=True,
            )
            if fold == 0:
                first_model, first_history = model, history
        assert first_model is not None, "at least one fold ran"
        test = dataset.test_images
        if len(test) < PREDICT_ROWS:  # the sample has fewer test rows: time the same 28,000 predictions
            test = np.resize(test, (PREDICT_ROWS, test.shape[1]))
        first_model.predict(test[:256])  # warm-up: graph tracing is not prediction time
        start = time.perf_counter()
        first_model.predict(test[:PREDICT_ROWS])
        predict_seconds = time.perf_counter() - start

        points = []  # (epochs, minutes of training on fold 1, accuracy on fold 1's held-out rows)
        train, val = splits[0]
        if curve and model_name == PEER and first_history is not None:
            per_epoch = first_history.curves.get("val_accuracy", [])
            points = [
                (e, fold_seconds[0] * e / len(per_epoch) / 60, per_epoch[e - 1])
                for e in sorted(set(curve) | {len(per_epoch)})
                if 1 <= e <= len(per_epoch)
            ]
        elif curve and hasattr(params, "epochs"):
            for budget in sorted(set(curve)):
                if budget == epochs:
                    continue
                model = models.create(model_name, replace(params, epochs=budget), seed)
                start = time.perf_counter()
                model.fit(images[train], labels[train], verbose=False)
                seconds = time.perf_counter() - start
                points.append((budget, seconds / 60, float(np.mean(model.predict(images[val]) == labels[val]))))
                print(
                    f"bench: {model_name} curve: {budget} epochs on fold 1: {points[-1][2]:.4f}, {seconds:.0f} s",
                    flush=True,
                )
            points.append((epochs, fold_seconds[0] / 60, float(np.mean(out_of_fold[val] == labels[val]))))
            points.sort()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        # A committee of m members, each on (m-1)/m of the fold's training rows, sees m-1 times as many images.
        train_images = sum(len(train) for train, _ in splits) * epochs * max(1, len(member_predictions) - 1)
        held_out = out_of_fold >= 0
        results.put(
            {
                "model": model_name,
                "params": models.params_dict(params),
                "epochs": epochs if hasattr(params, "epochs") else None,
                "folds": len(splits),
                "rows": int(np.sum(held_out)),
                "oof_accuracy": float(np.mean(out_of_fold[held_out] == labels[held_out])),
                "oof_predictions": out_of_fold.tolist(),
                "member_predictions": [predicted.tolist() for predicted in member_predictions],
                "fold_accuracies": [float(np.mean(out_of_fold[val] == labels[val])) for _, val in splits],
                "train_seconds": sum(fold_seconds),
                "fold_seconds": fold_seconds,
                "images_per_second": train_images / sum(fold_seconds),
                "predict_seconds_28k": predict_seconds,
                "peak_memory_mb": peak_mb,
                "curve": [{"epochs": e, "minutes": m, "accuracy": a, "rows": int(len(val))} for e, m, a in points],
            }
        )
    except BaseException as error:  # reported in the table, not lost in a child's traceback
        results.put({"model": model_name, "error": f"{type(error).__name__}: {error}"})


def run_one(
    model_name: str,
    overrides: dict[str, str],
    source: Path,
    task_name: str,
    seed: int,
    folds: int,
    curve: list[int],
    run_folds: int | None = None,
) -> dict:
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no TensorFlow state shared
    results = context.Queue()
    child = context.Process(
        target=_measure, args=(model_name, overrides, str(source), task_name, seed, folds, curve, results, run_folds)
    )
    child.start()
    return collect(child, results, model_name)


def collect(child, results, model_name: str, poll: float = 5.0) -> dict:
    """The child's result; a child killed outright (out of memory: SIGKILL) never sends one, and the row says so."""
    while True:
        try:
            result = results.get(timeout=poll)
            break
        except queue.Empty:
            if not child.is_alive() and results.empty():
                child.join()
                return {"model": model_name, "error": f"its process died without a result (exit code {child.exitcode})"}
    child.join()
    return result


def time_submit(source: Path, task_name: str, model: str, overrides: dict[str, str], out: Path) -> dict:
    """Wall time of `kaggle-digits submit --no-upload` with the data at hand, twice in one fresh folder.

    The first run finds nothing on file: it trains once on 90% and scores the other 10%. The second
    finds that validation: it trains once on every row. Both end with the checked submission file.
    The validation report (metrics.json and the plots) is kept in `out`/submit-report/.
    """
    command = [
        sys.executable,
        "-m",
        "kaggle_digits",
        "submit",
        "--task",
        task_name,
        "--model",
        model,
        "--data-dir",
        str(Path(source).resolve()),
        "--no-upload",
        "-q",
    ]
    for key, value in overrides.items():
        command += ["-p", f"{key}={value}"]
    timing: dict = {"model": model}
    with tempfile.TemporaryDirectory(prefix="bench-submit-") as folder:
        for run in ("first", "second"):
            # The first run's file, never uploaded, would be taken as it is (see submit.unsubmitted_prediction):
            # the second run is timed from the validation on file, as a second `make submit` after an upload.
            shutil.rmtree(Path(folder) / "submissions", ignore_errors=True)
            start = time.perf_counter()
            result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
            if result.returncode != 0:
                return {**timing, "error": (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]}
            config_file = Path(folder) / "data" / "models" / model / "config.json"
            timing[run] = {
                "seconds": time.perf_counter() - start,
                "train_rows": json.loads(config_file.read_text())["train_rows"],
                "summary": result.stdout.strip().splitlines()[-1],
            }
        report = Path(folder) / "data" / "reports" / model
        if report.is_dir():
            shutil.rmtree(out / "submit-report", ignore_errors=True)
            shutil.copytree(report, out / "submit-report")
    return timing


def cache_timings(source: Path, task_name: str) -> dict[str, float]:
    """Parse-and-validate time (no cache) and the cached load time, as `make train` sees them."""
    task = get_task(task_name)
    start = time.perf_counter()
    data.load(source, task, use_cache=False)
    parse = time.perf_counter() - start
    data.load(source, task)  # fill the cache
    start = time.perf_counter()
    cached = data.load(source, task)
    load = time.perf_counter() - start
    assert cached.from_cache
    return {"parse_and_validate_seconds": parse, "cached_load_seconds": load}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    if os.environ.get("NVIDIA_VISIBLE_DEVICES") or Path("/dev/nvidia0").exists():
        gpu = "NVIDIA GPU visible"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}"


def interval(correct: int, rows: int) -> tuple[float, float]:
    """95% Wilson interval of an accuracy over `rows` predictions."""
    found = lazy.scipy_stats().binomtest(correct, rows).proportion_ci(confidence_level=0.95, method="wilson")
    return found.low, found.high


def paired_difference(mine: list[int], theirs: list[int], labels: np.ndarray) -> tuple[float, float]:
    """Accuracy difference of two models on the same rows, and its 95% half-width.

    Only rows where exactly one of them is right carry information (McNemar's view): the standard
    error of the difference comes from those discordant rows, far tighter than two separate intervals.
    Rows either model did not predict (-1: a fold that --run-folds left out) are not compared.
    """
    ours, others = np.asarray(mine), np.asarray(theirs)
    both = (ours >= 0) & (others >= 0)
    labels = np.asarray(labels)[both]
    mine_right, theirs_right = ours[both] == labels, others[both] == labels
    rows = len(labels)
    gained, lost = int(np.sum(mine_right & ~theirs_right)), int(np.sum(~mine_right & theirs_right))
    difference = (gained - lost) / rows
    error = np.sqrt(max(gained + lost - (gained - lost) ** 2 / rows, 0.0)) / rows
    return difference, 1.96 * error


def table(rows: list[dict], labels: np.ndarray) -> str:
    reference = next((row for row in rows if row["model"] == REFERENCE and "error" not in row), None)
    default = next((row for row in rows if row["model"] == DEFAULT_MODEL and "error" not in row), None)
    lines = [
        f"| model | epochs | out-of-fold accuracy [95% interval] | vs `{DEFAULT_MODEL}` (paired, 95%) | errors vs "
        f"{REFERENCE} "
        f"| training time, all folds | time vs {REFERENCE} | images/s | predict 28,000 | peak memory |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| `{row['model']}` | failed: {row['error']} | | | | | | | | |")
            continue
        correct = int(round(row["oof_accuracy"] * row["rows"]))
        low, high = interval(correct, row["rows"])
        versus = error_ratio = time_ratio = "-"
        if default and row is not default:
            difference, half = paired_difference(row["oof_predictions"], default["oof_predictions"], labels)
            versus = f"{difference:+.4f} ± {half:.4f}"
        if reference and row is not reference:
            error_ratio = f"{(1 - row['oof_accuracy']) / max(1e-9, 1 - reference['oof_accuracy']):.2f}x"
            time_ratio = f"{row['train_seconds'] / reference['train_seconds']:.1f}x"
        lines.append(
            f"| `{row['model']}` | {row['epochs'] or '-'} | {row['oof_accuracy']:.4f} [{low:.4f}, {high:.4f}] | "
            f"{versus} | {error_ratio} "
            f"| {row['train_seconds']:.0f} s | {time_ratio} | {row['images_per_second']:,.0f} | "
            f"{row['predict_seconds_28k']:.2f} s "
            f"| {row['peak_memory_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def committees(rows: list[dict], labels: np.ndarray) -> str:
    """What averaging buys: each committee beside its members alone, on the same held-out rows."""
    lines = []
    for row in rows:
        members = row.get("member_predictions") or []
        if "error" in row or not members:
            continue
        alone = [float(np.mean(np.asarray(m)[np.asarray(m) >= 0] == labels[np.asarray(m) >= 0])) for m in members]
        best = int(np.argmax(alone))
        difference, half = paired_difference(row["oof_predictions"], members[best], labels)
        lines.append(
            f"`{row['model']}` on {row['rows']:,} rows none of its members saw: committee {row['oof_accuracy']:.4f}; "
            f"its {len(members)} members alone {min(alone):.4f} to {max(alone):.4f} (mean {np.mean(alone):.4f}); "
            f"committee vs its best member {difference:+.4f} ± {half:.4f} (paired, 95%)."
        )
    return "\n\n".join(lines)


def _read_run(path: Path) -> dict:
    """An earlier run's bench.json, for --compare."""
    try:
        run = json.loads(Path(path).read_text())
        # Every measured row carries its out-of-fold predictions; a failed one carries its error.
        if not all(isinstance(row, dict) and ("error" in row or "oof_predictions" in row) for row in run["results"]):
            raise KeyError("oof_predictions")
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not a bench.json"
        raise DataError(
            f"--compare {path}: {reason}. Fix: pass the bench.json an earlier 'make bench' wrote in its --out folder"
        ) from None
    return run


def _describe(run: dict) -> str:
    folds = run.get("folds")
    run_folds = run.get("run_folds")
    shown = f"folds 1-{run_folds} of {folds}" if run_folds not in (None, folds) else f"{folds} folds"
    return f"{shown}, seed {run.get('seed')}, {run.get('when', 'undated')}"


def compare(base: dict, other: dict, labels: np.ndarray, paths: tuple[Path, Path]) -> str:
    """Two earlier runs paired row by row: what OTHER's models (and committee members) gain over BASE's.

    Out-of-fold predictions pair on any fold layout (every row is predicted by a model that did not see
    it), so runs with other seeds or fold counts compare; other data does not.
    """
    for run, path in ((base, paths[0]), (other, paths[1])):
        for row in run["results"]:
            if "error" not in row and len(row["oof_predictions"]) != len(labels):
                raise UsageError(
                    f"--compare {path}: its predictions cover {len(row['oof_predictions']):,} rows, the data "
                    f"{len(labels):,}. Fix: pass --data (DATA=) the file that run benchmarked"
                )
    if base.get("task") != other.get("task"):
        raise UsageError(f"--compare: {paths[0]} benchmarked {base.get('task')}, {paths[1]} {other.get('task')}")
    measured = {row["model"]: row for row in base["results"] if "error" not in row}
    lines = [
        f"`{paths[1]}` ({_describe(other)}) against `{paths[0]}` ({_describe(base)}), on the rows both predicted:",
        "",
        "| model | against | rows | accuracy | against's accuracy | difference (paired, 95%) |",
        "|---|---|---|---|---|---|",
    ]
    for row in (row for row in other["results"] if "error" not in row):
        against = measured.get(row["model"]) or measured.get(DEFAULT_MODEL)
        if against is None:
            continue
        candidates = [(f"`{row['model']}`", row["oof_predictions"])] + [
            (f"`{row['model']}` member {index}", member)
            for index, member in enumerate(row.get("member_predictions") or [], start=1)
        ]
        theirs = np.asarray(against["oof_predictions"])
        for name, predictions in candidates:
            mine = np.asarray(predictions)
            both = (mine >= 0) & (theirs >= 0)
            if not both.any():
                continue
            difference, half = paired_difference(predictions, against["oof_predictions"], labels)
            lines.append(
                f"| {name} | `{against['model']}` | {int(both.sum()):,} | {np.mean(mine[both] == labels[both]):.4f} "
                f"| {np.mean(theirs[both] == labels[both]):.4f} | {difference:+.4f} ± {half:.4f} |"
            )
    if len(lines) == 4:
        raise UsageError(
            f"--compare: no model of {paths[1]} has a counterpart in {paths[0]} (the same model, or "
            f"{DEFAULT_MODEL}) on rows both predicted"
        )
    return "\n".join(lines)


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """bench's options, on the main parser's `bench` subcommand."""
    parser.add_argument(
        "--data",
        type=Path,
        help="Kaggle-layout zip or folder (default: the zip 'make data' saved in data/raw/, named after the Kaggle "
        "ref: digit-recognizer.zip, fashionmnist.zip, Kannada-MNIST.zip; else "
        f"{config.SHARED_DOWNLOAD}; --quick: the sample)",
    )
    parser.add_argument("--task", default=config.DEFAULT_TASK)
    parser.add_argument(
        "--models",
        help=f"comma-separated; default {','.join(DEFAULT_MODELS)} ({DEFAULT_MODEL} with --epoch-times)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="embedded sample, 2 folds, few epochs: a one-minute smoke run for CI"
    )
    parser.add_argument("--folds", type=int, help=f"k of the k-fold (default {DEFAULT_FOLDS}; 2 with --quick)")
    parser.add_argument(
        "--run-folds",
        type=int,
        metavar="N",
        help="train only the first N of the k folds (accuracy then rests on the rows they hold out): for "
        "models too slow for all k, e.g. --models ensemble --run-folds 1 scores the committee on rows "
        "none of its members saw",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help=f"epoch budget for `{DEFAULT_MODEL}` and the peer `{PEER}` alike (default: {DEFAULT_MODEL}'s own)",
    )
    parser.add_argument(
        "--curve",
        default="",
        metavar="EPOCHS",
        help=f"also draw accuracy against training minutes for `{DEFAULT_MODEL}` and `{PEER}` at these "
        "epoch budgets (comma-separated, e.g. 3,6,9), on fold 1",
    )
    parser.add_argument(
        "--time-submit",
        action="store_true",
        help=f"also time 'kaggle-digits submit --no-upload' with `{DEFAULT_MODEL}` on the data, as make submit runs it",
    )
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="MODEL:KEY=VALUE",
        help="override one model's hyperparameter, e.g. -p cnn:epochs=20, or -p my_model.py:build:C=0.5 for a model of "
        "yours (the key follows the last colon; repeatable)",
    )
    parser.add_argument(
        "--out", type=Path, default=config.DATA_DIR / "bench", help="folder for bench.md, bench.json and the curve plot"
    )
    parser.add_argument(
        "--gpu-check",
        action="store_true",
        help="the GPU presets in one run of at most 8 minutes on one H200-class GPU: cnn at 40 epochs and as many "
        "ensemble members as fit, on fold 1 of 5 (Make: make gpu-check; docs/benchmarks.md)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="with --gpu-check: the same on a CPU, tiny sizes, in under a minute"
    )
    parser.add_argument(
        "--epoch-times",
        action="store_true",
        help=f"time one Keras model's epochs (wall and CPU seconds; --models NAME, --epochs N, default "
        f"{EPOCH_TIMES_EPOCHS}) on 90%% of "
        "the data, a process per run, alternating between --trees",
    )
    parser.add_argument(
        "--trees",
        type=_comma_list,
        metavar="DIR,DIR",
        help="with --epoch-times: checkouts whose code is timed, e.g. an older commit's worktree and '.'; default .",
    )
    parser.add_argument("--rounds", type=int, help=f"with --epoch-times: runs per tree; default {EPOCH_TIMES_ROUNDS}")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("BASE", "OTHER"),
        help="train nothing: pair two earlier runs' bench.json row by row (same data; seeds and folds may differ), "
        f"each model of OTHER and each committee member against the same model in BASE, else BASE's {DEFAULT_MODEL}",
    )


def _overrides(args, names: list[str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {
        name: dict(QUICK_OVERRIDES.get(name, {})) if args.quick else {} for name in names
    }
    budget = (
        args.epochs or int(overrides.get(DEFAULT_MODEL, {}).get("epochs", 0)) or models.params_for(DEFAULT_MODEL).epochs
    )
    for name in (DEFAULT_MODEL, PEER):
        if name in names and (args.epochs or name == PEER):
            overrides[name]["epochs"] = str(budget)
    for item in args.param:
        # MODEL:KEY=VALUE, where MODEL may be a reference with a colon of its own (my_model.py:build:epochs=3): the
        # key is what follows the last colon before the '='.
        head, equals, value = item.partition("=")
        model_name, _, key = head.rpartition(":")
        if model_name not in names or not key or not equals:
            raise UsageError(
                f"-p {item}: bench takes MODEL:KEY=VALUE for one of the models benchmarked ({', '.join(names)}), e.g. "
                f"-p cnn:epochs=20"
            )
        overrides.setdefault(model_name, {})[key] = value
    for name in names:
        models.params_for(name, overrides[name])  # a bad value fails here, not after an hour of training
    return overrides


def _source(args: argparse.Namespace, task) -> Path:
    """The data to benchmark on: DATA, else what `make data` downloaded, else the team's shared copy."""
    source = args.data
    if source is None and task.name != config.DEFAULT_TASK:
        raise UsageError(
            f"no data at hand for task '{task.name}' (only digit-recognizer has an embedded sample). "
            f"Fix: pass DATA=<its Kaggle-layout zip or folder>, e.g. after 'make data TASK={task.name}'"
        )
    if source is None and args.quick:
        source = config.SAMPLE_ZIP
    elif source is None:
        # What `make data` downloads, else the team's shared copy beside the repository; a benchmark on the small
        # embedded sample would measure nothing worth ranking on, so it is only ever asked for (--quick).
        found = [path for path in (config.RAW_DIR / task.archive_name, config.SHARED_DOWNLOAD) if path.exists()]
        if not found:
            raise UsageError(
                f"no full data to benchmark on ({config.RAW_DIR / task.archive_name} and {config.SHARED_DOWNLOAD} "
                "are absent). "
                f"Fix: 'make data' to download it, pass DATA=<Kaggle-layout zip or folder>, or ARGS=--quick for a "
                f"smoke run on the sample"
            )
        source = found[0]
    if not Path(source).exists():
        raise DataError(f"{source}: no such file or folder. Fix: pass DATA=<Kaggle-layout zip or folder>")
    return Path(source)


def _epoch_times(args: argparse.Namespace, source: Path, task) -> None:
    name, *more = _comma_list(args.models or DEFAULT_MODEL)
    if more or not issubclass(models.model_class(name), KerasModel):
        raise UsageError(f"--epoch-times times one Keras model's epochs: --models {args.models} is not one")
    rounds = EPOCH_TIMES_ROUNDS if args.rounds is None else args.rounds
    if rounds < 1:
        raise UsageError(f"--rounds {rounds}: must be at least 1")
    overrides = _overrides(args, [name])[name]
    given = overrides.pop("epochs", None)  # -p MODEL:epochs=N (or --epochs for the cnn and the peer)
    epochs = str(args.epochs) if args.epochs is not None else given or str(EPOCH_TIMES_EPOCHS)
    models.params_for(name, {**overrides, "epochs": epochs})  # a bad value fails here, before any child runs
    trees = [Path(tree) for tree in args.trees or ["."]]
    for tree in trees:
        if not (tree / "kaggle_digits" / "__init__.py").exists():
            raise UsageError(
                f"--trees {tree}: no kaggle_digits package there. Fix: a checkout's root, e.g. a git worktree"
            )
    epoch_times.run(source, task, name, overrides, int(epochs), trees, rounds, args.seed, args.out)


def run(args: argparse.Namespace) -> None:
    """The benchmark: bench.md, bench.json (and plots) in args.out. Raises when a model failed (after writing them)."""
    task = get_task(args.task)
    if args.dry_run and not args.gpu_check:
        raise UsageError("--dry-run goes with --gpu-check (make gpu-check ARGS=--dry-run)")
    if (args.trees or args.rounds is not None) and not args.epoch_times:
        raise UsageError('--trees and --rounds go with --epoch-times (make bench ARGS="--epoch-times --trees ...")')
    if args.gpu_check:
        source = gpu_check.source_for(args.dry_run, args.data)
        if not Path(source).exists():
            raise DataError(f"{source}: no such file or folder. Fix: pass DATA=<Kaggle-layout zip or folder>")
        gpu_check.run(Path(source), task.name, args.seed, args.out, args.dry_run)
        return
    source = _source(args, task)
    if args.epoch_times:
        _epoch_times(args, source, task)
        return
    if args.compare:
        base, other = args.compare
        print(compare(_read_run(base), _read_run(other), data.load(source, task).train_labels, (base, other)))
        return
    names = _comma_list(args.models or ",".join(DEFAULT_MODELS))
    for name in names:
        models.model_class(name)
    try:
        curve = [int(part) for part in _comma_list(args.curve)]
    except ValueError:
        curve = [0]
    if any(budget < 1 for budget in curve):
        raise UsageError(f"--curve {args.curve}: expected epoch budgets such as 3,6,9")
    folds = args.folds or (2 if args.quick else DEFAULT_FOLDS)
    if folds < 2:
        raise UsageError(f"--folds {folds}: out-of-fold accuracy needs at least 2 folds (5 is usual)")
    if args.run_folds is not None and not 1 <= args.run_folds <= folds:
        raise UsageError(f"--run-folds {args.run_folds}: expected 1 to {folds} (the number of folds)")
    overrides = _overrides(args, names)
    timings = cache_timings(Path(source), task.name)
    labels = data.load(Path(source), task).train_labels

    print(
        f"bench: {source} ({task.name}), {len(labels):,} rows, {folds}-fold out-of-fold, seed {args.seed}; "
        f"parse+validate {timings['parse_and_validate_seconds']:.2f} s, cached load "
        f"{timings['cached_load_seconds']:.3f} s",
        flush=True,
    )
    rows = []
    for name in names:
        print(f"bench: {name} ({folds} folds) ...", flush=True)
        row = run_one(
            name,
            overrides.get(name, {}),
            Path(source),
            task.name,
            args.seed,
            folds,
            curve if name in (DEFAULT_MODEL, PEER) else [],
            args.run_folds,
        )
        rows.append(row)
        if "error" in row:
            print(f"bench: {name} failed: {row['error']}", flush=True)
        else:
            print(
                f"bench: {name}: out-of-fold accuracy {row['oof_accuracy']:.4f}, {row['train_seconds']:.0f} s "
                f"training, "
                f"{row['images_per_second']:,.0f} images/s",
                flush=True,
            )
    submit_timing = None
    if args.time_submit:
        print(f"bench: timing 'kaggle-digits submit --no-upload --model {DEFAULT_MODEL}' ...", flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        submit_timing = time_submit(
            Path(source), task.name, DEFAULT_MODEL, overrides.get(DEFAULT_MODEL, {}) if args.quick else {}, args.out
        )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    scheme = (
        f"{folds}-fold out-of-fold (every row predicted once by the model that did not see it)"
        if args.run_folds in (None, folds)
        else f"the first {args.run_folds} of {folds} folds (each row they hold out predicted by the model that did "
        f"not see it)"
    )
    header = (
        f"{task.name}, {Path(source).name}: {len(labels):,} rows, {scheme}, seed {args.seed}"
        f"{', --quick' if args.quick else ''}; {stamp}; {machine()}"
    )
    markdown = f"{header}\n\n{table(rows, labels)}\n\n"
    if committees(rows, labels):
        markdown += committees(rows, labels) + "\n\n"
    if submit_timing and "error" in submit_timing:
        markdown += f"`kaggle-digits submit --no-upload --model {DEFAULT_MODEL}` failed: {submit_timing['error']}\n\n"
    elif submit_timing:
        first, second = submit_timing["first"], submit_timing["second"]
        markdown += (
            f"`kaggle-digits submit --no-upload --model {DEFAULT_MODEL}`, data at hand, wall time: "
            f"{first['seconds']:.0f} s "
            f"from a fresh folder (one training, on {first['train_rows']:,} rows, scored on the rest); "
            f"{second['seconds']:.0f} s "
            f"the second time (that validation on file: one training, on all {second['train_rows']:,} rows).\n\n"
        )
    markdown += (
        f"Data: parse and validate {timings['parse_and_validate_seconds']:.2f} s; "
        f"load from cache {timings['cached_load_seconds']:.3f} s.\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    curves = {row["model"]: row["curve"] for row in rows if row.get("curve")}
    if curves:
        plot = plots.accuracy_vs_minutes(
            curves,
            f"{task.name}: accuracy on fold 1's {curves[next(iter(curves))][0]['rows']:,} held-out rows vs training "
            f"minutes",
            args.out / "accuracy_vs_minutes.png",
        )
        markdown += f"\nAccuracy against training minutes (fold 1): {plot.name}\n"
    print()
    print(markdown)
    (args.out / "bench.md").write_text(markdown)
    (args.out / "bench.json").write_text(
        json.dumps(
            {
                "when": stamp,
                "machine": machine(),
                "source": str(source),
                "task": task.name,
                "quick": args.quick,
                "seed": args.seed,
                "folds": folds,
                "run_folds": args.run_folds,
                "data": timings,
                "submit": submit_timing,
                "results": rows,
            }
        )
    )
    print(f"bench: wrote {args.out / 'bench.md'} and {args.out / 'bench.json'}")
    failed = [row["model"] for row in rows if "error" in row] + (
        ["submit timing"] if submit_timing and "error" in submit_timing else []
    )
    if failed:
        raise ToolkitError(
            f"bench: {', '.join(failed)} failed (see {args.out / 'bench.md'}); the other rows were measured"
        )
