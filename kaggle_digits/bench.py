"""`make bench`: every preset beside the tutorial's softmax baseline, same seeded holdout, one sitting.

Each model runs in a child process of its own (one process tree), so its peak memory is its own
and one model's threads and caches do not slow the next. Prints a Markdown table and writes it,
with the raw figures as JSON, to --out (default data/bench/).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import config

DEFAULT_MODELS = ("softmax", "fast", "cnn", "ensemble")
PREDICT_ROWS = 28_000  # Kaggle's test.csv
# --quick: the same code on the embedded sample, with few epochs, in about a minute (a smoke test,
# not a measurement of accuracy).
QUICK_OVERRIDES = {
    "softmax": {"epochs": "10"},
    "fast": {"epochs": "2", "batch_size": "64"},
    "cnn": {"epochs": "2", "batch_size": "64"},
    "ensemble": {"epochs": "1", "members": "2", "batch_size": "64"},
    "mlp": {"epochs": "3"},
    "random-forest": {"n_estimators": "50"},
}


def _measure(model_name: str, overrides: dict[str, str], source: str, task_name: str, seed: int, holdout: float,
             full_fit: bool, results) -> None:
    """Runs in the child process: fit on the holdout's training part, score, time prediction, peak RSS."""
    import numpy as np

    from . import data, models, training
    from .tasks import get_task

    try:
        task = get_task(task_name)
        dataset = data.load(Path(source), task)
        train, val = training.holdout_split(dataset.train_labels, holdout, seed)
        params = models.params_for(model_name, overrides)
        model = models.create(model_name, params, seed)
        start = time.perf_counter()
        model.fit(dataset.train_images[train], dataset.train_labels[train], verbose=False)
        train_seconds = time.perf_counter() - start
        accuracy = float(np.mean(model.predict(dataset.train_images[val]) == dataset.train_labels[val]))
        images = dataset.test_images
        if len(images) < PREDICT_ROWS:  # the sample has fewer test rows: time the same 28,000 predictions
            images = np.resize(images, (PREDICT_ROWS, images.shape[1]))
        model.predict(images[:256])  # warm-up: graph tracing is not prediction time
        start = time.perf_counter()
        model.predict(images[:PREDICT_ROWS])
        predict_seconds = time.perf_counter() - start
        full_seconds = None
        if full_fit:
            final = models.create(model_name, params, seed)
            start = time.perf_counter()
            final.fit(dataset.train_images, dataset.train_labels, verbose=False)
            full_seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        results.put({
            "model": model_name, "params": models.params_dict(params), "holdout_accuracy": accuracy,
            "train_seconds": train_seconds, "train_rows": int(len(train)), "validation_rows": int(len(val)),
            "full_fit_seconds": full_seconds, "predict_seconds_28k": predict_seconds, "peak_memory_mb": peak_mb,
        })
    except BaseException as error:  # reported in the table, not lost in a child's traceback
        results.put({"model": model_name, "error": f"{type(error).__name__}: {error}"})


def run_one(model_name: str, overrides: dict[str, str], source: Path, task_name: str, seed: int, holdout: float, full_fit: bool) -> dict:
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no TensorFlow state shared
    results = context.Queue()
    child = context.Process(target=_measure, args=(model_name, overrides, str(source), task_name, seed, holdout, full_fit, results))
    child.start()
    result = results.get()
    child.join()
    return result


def cache_timings(source: Path, task_name: str) -> dict[str, float]:
    """Parse-and-validate time (no cache) and the cached load time, as `make train` sees them."""
    from . import data
    from .tasks import get_task

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


def table(rows: list[dict]) -> str:
    baseline = next((row for row in rows if row["model"] == "softmax" and "error" not in row), None)
    lines = [
        "| model | holdout accuracy | training time | full-fit time | predict 28,000 | peak memory | error vs softmax | time vs softmax |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| `{row['model']}` | failed: {row['error']} | | | | | | |")
            continue
        full = f"{row['full_fit_seconds']:.0f} s" if row.get("full_fit_seconds") is not None else "-"
        error_ratio = time_ratio = "-"
        if baseline and row is not baseline:
            error_ratio = f"{(1 - row['holdout_accuracy']) / max(1e-9, 1 - baseline['holdout_accuracy']):.2f}x"
            time_ratio = f"{row['train_seconds'] / baseline['train_seconds']:.1f}x"
        lines.append(
            f"| `{row['model']}` | {row['holdout_accuracy']:.4f} | {row['train_seconds']:.0f} s | {full} | "
            f"{row['predict_seconds_28k']:.2f} s | {row['peak_memory_mb']:.0f} MB | {error_ratio} | {time_ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kaggle-digits bench", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Kaggle-layout zip or folder (default: ../shared/data/digit-recognizer.zip "
                                                  "when present, else the embedded sample)")
    parser.add_argument("--task", default=config.DEFAULT_TASK)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated; default %(default)s")
    parser.add_argument("--quick", action="store_true", help="embedded sample, few epochs: a one-minute smoke run for CI")
    parser.add_argument("--full-fit", nargs="?", const="all", default="", metavar="MODELS",
                        help="also time the fit on all of train.csv, as make submit does (all models, or a comma-separated list)")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--holdout", type=float, default=config.DEFAULT_HOLDOUT)
    parser.add_argument("-p", "--param", action="append", default=[], metavar="MODEL:KEY=VALUE",
                        help="override one model's hyperparameter, e.g. -p cnn:epochs=20 (repeatable)")
    parser.add_argument("--out", type=Path, default=config.DATA_DIR / "bench", help="folder for bench.md and bench.json")
    args = parser.parse_args(argv)

    from .errors import ToolkitError
    from .tasks import get_task

    try:
        task = get_task(args.task)
    except ToolkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    source = args.data
    if source is None and task.name != config.DEFAULT_TASK:
        print(f"error: no data at hand for task '{task.name}' (only digit-recognizer has an embedded sample). "
              f"Fix: pass DATA=<its Kaggle-layout zip or folder>, e.g. after 'make data TASK={task.name}'", file=sys.stderr)
        return 2
    if source is None:
        use_shared = config.SHARED_ZIP.exists() and not args.quick
        source = config.SHARED_ZIP if use_shared else config.SAMPLE_DIR / "digit-recognizer.zip"
    if not Path(source).exists():
        print(f"error: {source}: no such file or folder. Fix: pass DATA=<Kaggle-layout zip or folder>", file=sys.stderr)
        return 3
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    from . import models

    try:
        for name in names:
            models.model_class(name)
    except ToolkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    overrides: dict[str, dict[str, str]] = {name: dict(QUICK_OVERRIDES.get(name, {})) if args.quick else {} for name in names}
    for item in args.param:
        model_name, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        if model_name not in names or not key or "=" not in assignment:
            print(f"error: -p {item}: bench takes MODEL:KEY=VALUE for one of the models benchmarked ({', '.join(names)}), "
                  f"e.g. -p cnn:epochs=20", file=sys.stderr)
            return 2
        overrides.setdefault(model_name, {})[key] = value

    try:
        timings = cache_timings(Path(source), task.name)
    except ToolkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(f"bench: {source} ({task.name}), {args.holdout:.0%} stratified holdout, seed {args.seed}; "
          f"parse+validate {timings['parse_and_validate_seconds']:.2f} s, cached load {timings['cached_load_seconds']:.3f} s", flush=True)
    rows = []
    for name in names:
        print(f"bench: {name} ...", flush=True)
        full_fit = args.full_fit == "all" or name in args.full_fit.split(",")
        row = run_one(name, overrides.get(name, {}), Path(source), task.name, args.seed, args.holdout, full_fit)
        rows.append(row)
        if "error" in row:
            print(f"bench: {name} failed: {row['error']}", flush=True)
        else:
            print(f"bench: {name}: accuracy {row['holdout_accuracy']:.4f}, {row['train_seconds']:.0f} s training", flush=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"{task.name}, {source.name}: {rows[0].get('train_rows', '?')} training / {rows[0].get('validation_rows', '?')} holdout rows, "
              f"seed {args.seed}{', --quick' if args.quick else ''}; {stamp}; {machine()}")
    markdown = f"{header}\n\n{table(rows)}\n\nData: parse and validate {timings['parse_and_validate_seconds']:.2f} s; " \
               f"load from cache {timings['cached_load_seconds']:.3f} s.\n"
    print()
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.md").write_text(markdown)
    (args.out / "bench.json").write_text(json.dumps({"when": stamp, "machine": machine(), "source": str(source), "task": task.name,
                                                     "quick": args.quick, "seed": args.seed, "holdout": args.holdout,
                                                     "data": timings, "results": rows}, indent=2))
    print(f"bench: wrote {args.out / 'bench.md'} and {args.out / 'bench.json'}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
