"""The pipeline's stages composed: validate, train, predict. The CLI and scheduled runs both call these."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, data, models, plots, submission, training
from .config import Task

log = logging.getLogger("kaggle_digits")


@dataclass
class Settings:
    """What one command line asks for; defaults are the README's."""

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


def load_data(settings: Settings) -> data.Dataset:
    start = time.perf_counter()
    dataset = data.load(settings.resolved_data_dir, settings.task)
    origin = "cache" if dataset.from_cache else "CSV, validated"
    log.info(
        "data: %d train rows, %d test rows from %s (%s, %.2f s)",
        len(dataset.train_labels), len(dataset.test_images), settings.resolved_data_dir, origin, time.perf_counter() - start,
    )
    return dataset


def validate(settings: Settings, dataset: data.Dataset | None = None) -> tuple[training.ValidationResult, dict[str, Path]]:
    """Estimate accuracy; write metrics.json and the plots into data/reports/<model>/."""
    dataset = dataset or load_data(settings)
    scheme = f"{settings.folds}-fold" if settings.folds > 1 else f"{settings.holdout:.0%} holdout"
    log.info("validate: model %s, %s, seed %d", settings.model, scheme, settings.seed)
    result = training.validate(dataset, settings.model, settings.params(), settings.seed, settings.holdout, settings.folds, settings.verbose)
    folder = training.report_dir(settings.model, settings.task.name)
    files = {"metrics": training.write_metrics(result, folder)}
    title = f"{settings.model} on {settings.task.name} ({result.scheme})"
    curve = plots.learning_curves(result.curves, result.best_epoch, title, folder / "learning_curves.png")
    if curve:
        files["learning_curves"] = curve
    files["confusion_matrix"] = plots.confusion_matrix(result.confusion_matrix, settings.task.class_names, title, folder / "confusion_matrix.png")
    grid = plots.misclassified(dataset.train_images, result.misclassified, settings.task.class_names, title, folder / "misclassified.png")
    if grid:
        files["misclassified"] = grid
    return result, files


def train(settings: Settings, dataset: data.Dataset | None = None) -> tuple[Path, dict[str, Any]]:
    """Fit on the full train.csv and save the model with its config (data/models/<model>/)."""
    dataset = dataset or load_data(settings)
    metrics = training.read_metrics(training.report_dir(settings.model, settings.task.name))
    params, epochs_note = training.final_epochs(settings.params(), metrics, dataset)
    log.info("train: model %s on all %d rows (%s)", settings.model, len(dataset.train_labels), epochs_note)
    model, seconds = training.train_final(dataset, settings.model, params, settings.seed, settings.verbose)
    holdout_accuracy = metrics["accuracy"] if metrics and metrics.get("data_checksum") == dataset.checksum else None
    meta = {
        "model": settings.model,
        "task": settings.task.name,
        "params": models.params_dict(params),
        "seed": settings.seed,
        "holdout_accuracy": holdout_accuracy,
        "validation_scheme": metrics.get("scheme") if holdout_accuracy is not None else None,
        "data_checksum": dataset.checksum,
        "train_rows": int(len(dataset.train_labels)),
        "train_seconds": round(seconds, 2),
        "trained_at": training.utc_now(),
        "versions": training.versions(),
    }
    folder = training.model_dir(settings.model, settings.task.name)
    training.save_model(model, folder, meta)
    log.info("train: done in %.1f s, saved %s", seconds, folder)
    return folder, meta


def predict(settings: Settings, dataset: data.Dataset | None = None, output: Path | None = None) -> Path:
    """Predict test.csv with the trained model; write submissions/<UTC time>-<model>.csv and its sidecar."""
    dataset = dataset or load_data(settings)
    folder = training.model_dir(settings.model, settings.task.name)
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
        "seed": meta["seed"],
        "holdout_accuracy": meta.get("holdout_accuracy"),
        "validation_scheme": meta.get("validation_scheme"),
        "data_checksum": dataset.checksum,
        "model_data_checksum": meta.get("data_checksum"),
        "versions": training.versions(),
        "durations": {"train_seconds": meta.get("train_seconds"), "predict_seconds": round(seconds, 3)},
        "written_at": training.utc_now(),
    }
    submission.write_submission(path, dataset.test_ids, labels, settings.task, sidecar)
    log.info("predict: %d rows in %.2f s, checked", len(labels), seconds)
    return path
