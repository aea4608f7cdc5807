"""`kaggle-digits bench --epoch-times`: one Keras model's seconds per epoch, wall and CPU, on 90% of train.csv, each
run a process of its own, alternating between checkouts (`--trees`) so that code before and after a change is timed
side by side, alone, on the same machine.

CPU seconds are the steadier figure: on the 2-core machines of this project the wall time of one TensorFlow epoch of
`cnn` takes one of two values (about 24 s or about 41 s) with the same CPU time, in old and new code alike, so a
few epochs' wall time alone cannot tell two versions apart.

The child is given as text and uses only `models.create`, `models.params_for`, `Model.fit` and `lazy.keras`, so an
older checkout (any commit since the Keras models moved behind them) is timed by the same code.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import data, splits
from .errors import ToolkitError
from .helpers import write_atomically

HOLDOUT = 0.1  # the rows `validate` holds out by default: epochs are timed on the other 90% (37,800 of 42,000)

CHILD = """
import json, sys, time
import numpy as np
import kaggle_digits
from kaggle_digits import lazy, models

rows, name, epochs, seed, overrides = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
with np.load(rows) as arrays:
    images, labels = arrays["images"], arrays["labels"]
keras = lazy.keras()
epochs_seen = []


class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        epochs_seen.append((time.perf_counter() - self.wall, time.process_time() - self.cpu))


fit = keras.Model.fit


def timed_fit(self, *args, callbacks=None, **kwargs):
    # Whatever loop the model's code runs, its Keras fit gets the timer.
    return fit(self, *args, callbacks=[*(callbacks or []), Timer()], **kwargs)


keras.Model.fit = timed_fit
model = models.create(name, models.params_for(name, {"epochs": epochs, **overrides}), seed)
model.fit(images, labels, verbose=False)
print(json.dumps({"epochs": epochs_seen, "backend": keras.backend.backend(), "package": kaggle_digits.__file__}))
"""


def _commit(tree: Path) -> str:
    found = subprocess.run(
        ["git", "-C", str(tree), "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True, text=True
    )
    return found.stdout.strip() or "?"


def run(
    source: Path,
    task,
    model: str,
    overrides: dict[str, str],
    epochs: int,
    trees: list[Path],
    rounds: int,
    seed: int,
    out: Path,
) -> dict:
    """Time `model` for `epochs` epochs, `rounds` times in each tree, alternating; write epoch-times.json and .md."""
    dataset = data.load(source, task)
    train_rows, _ = splits.holdout_split(dataset.train_labels, HOLDOUT, seed)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="epoch-times-") as folder:
        rows = Path(folder) / "rows.npz"
        np.savez(rows, images=dataset.train_images[train_rows], labels=dataset.train_labels[train_rows])
        for round_number in range(1, rounds + 1):
            for tree in trees:
                print(f"epoch-times: round {round_number}/{rounds}, {tree} ...", file=sys.stderr, flush=True)
                # `python -c` puts its working folder first on sys.path: the child runs in the tree, so the tree's
                # package is the one imported (and checked to be), not the caller's folder's nor the installed one.
                child = subprocess.run(
                    [sys.executable, "-c", CHILD, str(rows), model, str(epochs), str(seed), json.dumps(overrides)],
                    cwd=tree.resolve(),
                    env={**os.environ, "PYTHONPATH": str(tree.resolve())},
                    capture_output=True,
                    text=True,
                )
                if child.returncode != 0:
                    last = (child.stderr.strip().splitlines() or ["(no output)"])[-1]
                    raise ToolkitError(f"epoch-times: {model} failed in {tree}: {last}")
                measured = json.loads(child.stdout.strip().splitlines()[-1])
                package = Path(measured.pop("package")).resolve()
                if not package.is_relative_to(tree.resolve()):
                    raise ToolkitError(f"epoch-times: the run for {tree} imported kaggle_digits from {package.parent}")
                runs.append({"tree": str(tree), "commit": _commit(tree), "round": round_number, **measured})
    report = {"model": model, "overrides": overrides, "rows": int(len(train_rows)), "epochs": epochs, "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "epoch-times.json", lambda handle: handle.write(json.dumps(report, indent=2).encode()))
    text = table(report)
    write_atomically(out / "epoch-times.md", lambda handle: handle.write(text.encode()))
    print(text)
    return report


def table(report: dict) -> str:
    """Each run's epochs (wall / CPU seconds), then each tree's mean over epochs 2 on (the first includes tracing):
    a mean, not a median, since the wall time of an epoch here is bimodal (see the module's note)."""
    lines = [
        f"{report['model']} ({report['overrides'] or 'defaults'}), {report['rows']} rows, {report['epochs']} epochs: "
        "seconds per epoch, wall / CPU",
        "",
        "| round | tree | commit | backend | epochs (wall / CPU s) |",
        "|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        epochs = ", ".join(f"{wall:.1f} / {cpu:.1f}" for wall, cpu in run["epochs"])
        lines.append(f"| {run['round']} | {run['tree']} | {run['commit']} | {run['backend']} | {epochs} |")
    lines += [
        "",
        "| tree | commit | mean wall s (epochs 2+) | mean CPU s (epochs 2+) | epochs |",
        "|---|---|---|---|---|",
    ]
    for tree in dict.fromkeys(run["tree"] for run in report["runs"]):
        later = [epoch for run in report["runs"] if run["tree"] == tree for epoch in run["epochs"][1:]]
        commit = next(run["commit"] for run in report["runs"] if run["tree"] == tree)
        if later:
            wall = statistics.mean(epoch[0] for epoch in later)
            cpu = statistics.mean(epoch[1] for epoch in later)
            lines.append(f"| {tree} | {commit} | {wall:.1f} | {cpu:.1f} | {len(later)} |")
    return "\n".join(lines) + "\n"
