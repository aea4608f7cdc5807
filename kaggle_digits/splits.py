"""How train.csv is divided for estimates: a stratified holdout or stratified k folds, seeded.

Validation, the benchmark and the ensemble (whose members train on different folds) use these same
functions, so one seed gives one division of the rows everywhere.
"""

from __future__ import annotations

import numpy as np

from . import lazy
from .errors import UsageError


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded: every class keeps its share, and the same seed gives the same split."""
    if not 0 < fraction < 1:
        raise UsageError(f"--holdout {fraction}: must be between 0 and 1 (e.g. 0.1 for 10%)")
    indices = np.arange(len(labels))
    stratify = labels if np.bincount(labels).min() >= 2 else None
    train, val = lazy.sklearn().model_selection.train_test_split(
        indices, test_size=fraction, random_state=seed, stratify=stratify
    )
    return np.sort(train), np.sort(val)


def kfold_splits(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded k-fold: every row is in exactly one fold's held-out part."""
    smallest = int(np.bincount(labels).min())
    if folds > smallest:
        raise UsageError(
            f"--folds {folds}: the rarest class has only {smallest} rows. Fix: use at most {smallest} folds (5 is "
            f"usual)"
        )
    return list(
        lazy.sklearn()
        .model_selection.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        .split(np.zeros(len(labels)), labels)
    )
