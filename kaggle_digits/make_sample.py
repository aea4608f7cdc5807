"""Draw the embedded sample (kaggle_digits/sample/) from labeled rows of a full Kaggle-layout download.

Only labeled train.csv rows are used: the sample's test.csv is made of train rows with the label
removed, so no copy of the competition's test images (or their labels) ever enters the repository.
Run: kaggle-digits sample [--data ZIP] (make sample [DATA=ZIP]); the default is the team's shared download.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import config, data, layout

SAMPLE_TRAIN_ROWS = 5000
SAMPLE_TEST_ROWS = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=config.SHARED_DOWNLOAD,
        help=f"a Kaggle-layout digit-recognizer zip or folder (default: {config.SHARED_DOWNLOAD})",
    )
    parser.add_argument("--out", type=Path, default=config.SAMPLE_ZIP, help="default: the package's own sample")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)


def run(args: argparse.Namespace) -> None:
    task = config.BUILTIN_TASKS["digit-recognizer"]
    full = data.load(args.data, task, use_cache=False)
    chosen = np.random.default_rng(args.seed).choice(
        len(full.train_labels), SAMPLE_TRAIN_ROWS + SAMPLE_TEST_ROWS, replace=False
    )
    train, test = chosen[:SAMPLE_TRAIN_ROWS], chosen[SAMPLE_TRAIN_ROWS:]
    files = layout.task_files(task, full.train_images[train], full.train_labels[train], full.train_images[test])
    layout.write_zip(args.out, files)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {len(train)} train rows, {len(test)} test rows")
