"""Estimate a model's accuracy (stratified holdout or k-fold), then fit the final model on all of train.csv."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from . import config, lazy, models
from .data import Dataset
from .errors import DataError, ToolkitError, UsageError
from .helpers import utc_now, write_atomically, write_folder_atomically
from .splits import holdout_split, kfold_splits


@dataclass
class ValidationResult:
    model: str
    params: dict[str, Any]
    seed: int
    scheme: str  # "holdout 10%" or "5-fold"
    accuracy: float
    accuracy_std: float | None
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]
    best_epoch: int | None
    curves: dict[str, list[float]]
    fit_seconds: float
    train_rows: int
    validation_rows: int
    data_checksum: str
    # Misclassified validation rows (index into train.csv, true, predicted), for the plot.
    misclassified: list[tuple[int, int, int]] = field(default_factory=list)
    device: str = ""  # where it trained ("CPU", "GPU"); `params` are what it trained with there (GPU presets)
    source_sha256: str = ""  # a user's model: the source it trained from (an edited model's figure is stale)
    backend: str = ""  # a Keras model: the Keras backend it trained with (tensorflow, jax, torch)


@dataclass
class Score:
    accuracy: float
    confusion: np.ndarray
    misclassified: list[tuple[int, int, int]]  # (row index, true, predicted)

    @property
    def per_class_accuracy(self) -> list[float]:
        return [
            round(float(value), 5) for value in self.confusion.diagonal() / np.maximum(self.confusion.sum(axis=1), 1)
        ]


def score(model: models.Model, images: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None) -> Score:
    """Accuracy, confusion matrix and the misclassified rows (numbered by `rows`, default 0..n-1)."""
    predicted = model.predict(images)
    rows = np.arange(len(labels)) if rows is None else rows
    wrong = np.flatnonzero(predicted != labels)
    return Score(
        accuracy=float(np.mean(predicted == labels)),
        confusion=lazy.sklearn().metrics.confusion_matrix(labels, predicted, labels=list(range(config.NUM_CLASSES))),
        misclassified=[(int(rows[i]), int(labels[i]), int(predicted[i])) for i in wrong],
    )


def _splits(labels: np.ndarray, holdout: float, folds: int, seed: int):
    if folds and folds > 1:
        return kfold_splits(labels, folds, seed)
    return [holdout_split(labels, holdout, seed)]


def validate_and_keep(
    dataset: Dataset,
    model_name: str,
    params: Any,
    seed: int = config.DEFAULT_SEED,
    holdout: float = config.DEFAULT_HOLDOUT,
    folds: int = 0,
    verbose: bool = True,
    epoch_callbacks: tuple = (),
    after_fold: Callable[[int, float], None] | None = None,
) -> tuple[ValidationResult, models.Model]:
    """Fit on part of train.csv, score on the rest (k-fold: repeat and average); also hand back the (last)
    fitted model, so that a submission can use the very model that was scored.

    The tuner's hooks: `epoch_callbacks` (Keras callbacks) watch a holdout's epochs; `after_fold(fold, mean so far)`
    sees each fold of a k-fold. Either may raise to stop the validation (a pruned trial)."""
    images, labels = dataset.train_images, dataset.train_labels
    splits = _splits(labels, holdout, folds, seed)
    accuracies, confusion, history, misclassified, seconds = [], np.zeros((10, 10), dtype=int), None, [], 0.0
    for fold, (train, val) in enumerate(splits, start=1):
        if verbose and len(splits) > 1:
            print(f"fold {fold}/{len(splits)}", flush=True)
        model = models.create(model_name, params, seed)
        if epoch_callbacks and len(splits) == 1:
            model.extra_callbacks = tuple(epoch_callbacks)  # type: ignore[attr-defined]  # read by Keras models only
        start = time.perf_counter()
        fold_history = model.fit(images[train], labels[train], validation=(images[val], labels[val]), verbose=verbose)
        seconds += time.perf_counter() - start
        history = history or fold_history
        fold_score = score(model, images[val], labels[val], rows=val)
        accuracy = fold_history.out_of_fold_accuracy
        if accuracy is not None and verbose:  # the ensemble scores its own members on their held-out folds too
            print(f"its members out-of-fold: {accuracy:.4f} over {fold_history.out_of_fold_rows} rows", flush=True)
        accuracies.append(fold_score.accuracy)
        confusion += fold_score.confusion
        misclassified += fold_score.misclassified
        if after_fold is not None:
            after_fold(fold, float(np.mean(accuracies)))
    per_class = Score(0.0, confusion, []).per_class_accuracy
    assert history is not None, "at least one split"
    result = ValidationResult(
        model=model_name,
        # What the model really trained with (fit applies the GPU presets), not what was asked for: a figure
        # of 40 GPU epochs must never pass for a 13-epoch CPU training (see matching_estimate).
        params=models.params_dict(model.params),
        seed=seed,
        scheme=f"{len(splits)}-fold" if len(splits) > 1 else f"holdout {holdout:.0%}",
        accuracy=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)) if len(splits) > 1 else None,
        per_class_accuracy=per_class,
        confusion_matrix=confusion.tolist(),
        best_epoch=history.best_epoch,
        curves=history.curves,
        fit_seconds=round(seconds, 2),
        train_rows=len(splits[0][0]),
        validation_rows=len(splits[0][1]),
        data_checksum=dataset.checksum,
        misclassified=misclassified,
        device=models.model_class(model_name).device(),
        source_sha256=models.source_sha256(model_name),
        backend=models.model_class(model_name).keras_backend(),
    )
    return result, model


def write_metrics(result: ValidationResult, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.json"
    content = asdict(result)
    content["misclassified"] = content["misclassified"][:200]  # enough for the plot and a look
    content["written_at"] = utc_now()
    text = json.dumps(content, indent=2).encode()
    write_atomically(path, lambda handle: handle.write(text))  # a full disk never leaves half a metrics.json
    return path


def read_metrics(folder: Path) -> dict[str, Any] | None:
    path = folder / "metrics.json"
    if not path.exists():
        return None
    try:
        metrics = json.loads(path.read_text())
        if not isinstance(metrics, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise DataError(
            f"{path} is damaged ({type(error).__name__}). Fix: run '{_make_command('validate', folder)}' again "
            f"(or delete it: train then uses the default epochs)"
        ) from None
    return metrics


def matching_estimate(
    metrics: dict[str, Any] | None, model_name: str, params: Any, seed: int, dataset: Dataset
) -> TypeGuard[dict[str, Any]]:
    """Whether a validation's figure speaks for this training: same data, seed and device, and the same
    parameters as this machine would really train with (a kernel's metrics.json, trained on a GPU's presets,
    does not speak for a CPU training of the same command line). A metrics.json from before the device was
    recorded speaks for nothing: one more validation costs less than a mislabeled estimate."""
    trained = models.params_dict(models.as_trained(model_name, params))
    return (
        metrics is not None
        and metrics.get("data_checksum") == dataset.checksum
        and metrics.get("seed") == seed
        and metrics.get("params") == json.loads(json.dumps(trained))  # tuples read back as lists
        and metrics.get("device") == models.model_class(model_name).device()
        and metrics.get("source_sha256", "") == models.source_sha256(model_name)
    )


def final_epochs(params: Any, metrics: dict[str, Any] | None, dataset: Dataset) -> tuple[Any, str]:
    """Models that stop early train for the epochs validation chose, when it ran on these data and settings.

    A model without early stopping (patience 0) keeps its epochs: its schedule is laid out over them.
    """
    if (
        not hasattr(params, "epochs")
        or not getattr(params, "patience", 0)
        or not metrics
        or not metrics.get("best_epoch")
    ):
        return params, f"{params.epochs} epochs" if hasattr(params, "epochs") else "no epochs"
    comparable = {key: value for key, value in metrics["params"].items() if key != "epochs"}
    current = {key: value for key, value in models.params_dict(params).items() if key != "epochs"}
    if metrics.get("data_checksum") != dataset.checksum or comparable != current:
        return params, "default epochs (the last validation used other data or settings)"
    # Early stopping can only shorten: with the same schedule the best epoch is the one to reproduce.
    epochs = int(metrics["best_epoch"])
    if epochs >= params.epochs:
        return params, f"{params.epochs} epochs (validation's best was the last)"
    return replace(params, epochs=epochs), f"{epochs} epochs, as chosen by validation"


def train_final(dataset: Dataset, model_name: str, params: Any, seed: int, verbose: bool = True):
    """Fit on every row of train.csv: no rows are held back for the submission's model."""
    model = models.create(model_name, params, seed)
    start = time.perf_counter()
    history = model.fit(dataset.train_images, dataset.train_labels, validation=None, verbose=verbose)
    return model, history, time.perf_counter() - start


def save_model(model: models.Model, folder: Path, meta: dict[str, Any]) -> None:
    """The model and its config.json appear together or not at all."""

    def fill(staging: Path) -> None:
        model.save(staging)
        (staging / "config.json").write_text(json.dumps(meta, indent=2))

    write_folder_atomically(folder, fill)


def load_model(folder: Path, reference: str | None = None) -> tuple[models.Model, dict[str, Any]]:
    """The saved model and its config. `reference`: the model as named now (a user's file may have moved, or the
    model came back from a Kaggle kernel where it lay elsewhere); its source must be the one it trained from."""
    config_path = folder / "config.json"
    if not config_path.exists():
        raise UsageError(f"{folder}: no trained model there. Fix: run '{_make_command('train', folder)}' first")
    fix = f"Fix: retrain it with '{_make_command('train', folder)}' (its folder {folder} is replaced)"
    try:
        meta = json.loads(config_path.read_text())
        reference = reference or meta["model"]
        trained_from = meta.get("source_sha256", "")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{config_path} is damaged ({type(error).__name__}). {fix}") from None
    now = models.source_sha256(reference)  # a user's model whose file is gone says so here, in one line
    if now != trained_from:
        raise UsageError(
            f"{folder} was trained from another version of '{models.display_name(reference)}' (source "
            f"{trained_from[:8] or 'none'}, now {now[:8] or 'none'}): its predictions would not be this code's. "
            f"Fix: retrain it with 'kaggle-digits train --model {reference}'"
        )
    try:
        model_class = models.model_class(reference)
        params = models.parse_overrides(model_class.Params, {}, reference)
        gone = sorted(set(meta["params"]) - set(models.params_dict(params)))
        if gone:  # not damage: a model saved before its recipe changed (e.g. cnn's blocks and dense_units)
            raise _OlderRecipe(
                f"{folder} holds a '{meta['model']}' saved by an older version of the toolkit (its parameters "
                f"{', '.join(gone)} no longer exist). {fix}"
            )
        params = replace(
            params,
            **{key: (tuple(v) if isinstance(getattr(params, key), tuple) else v) for key, v in meta["params"].items()},
        )
        seed = int(meta["seed"])
    except _OlderRecipe as error:
        raise DataError(str(error)) from None
    except models.UserCodeError:
        raise  # the user's module failed to load: theirs, not a damaged folder
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, ToolkitError) as error:
        raise DataError(f"{config_path} is damaged ({type(error).__name__}). {fix}") from None
    try:
        return model_class.load(folder, params, seed), meta
    except Exception as error:  # whatever the library raises for a cut or garbled file, the file is unusable
        trained_with, now_with = meta.get("backend", ""), model_class.keras_backend()
        if trained_with and now_with and trained_with != now_with:
            raise DataError(
                f"the saved model in {folder} was trained under Keras' {trained_with} backend and does not load under "
                f"{now_with} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Fix: "
                f"KERAS_BACKEND={trained_with}, or {fix[5:]}"
            ) from None
        raise DataError(
            f"the saved model in {folder} is damaged or unreadable ({type(error).__name__}). {fix}"
        ) from None


class _OlderRecipe(Exception):
    """load_model's own signal: a readable config.json whose parameters the model no longer has."""


def _make_command(target: str, folder: Path) -> str:
    """The make command that writes `folder` again: cnn-kannada-mnist -> make train MODEL=cnn TASK=kannada-mnist."""
    name = folder.name.removesuffix("-evaluate")
    model = max(
        (known for known in models.REGISTRY if name == known or name.startswith(known + "-")), key=len, default=name
    )
    task = name[len(model) + 1 :]
    return f"make {target} MODEL={model}" + (f" TASK={task}" if task else "")
