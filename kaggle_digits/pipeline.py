"""The pipeline's offline stages: load and check the data, validate, train, predict, evaluate.

Nothing here talks to Kaggle: `submit.py` composes these with the Kaggle-facing round, and the CLI and the
scheduled run call both.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import config, data, models, plots, submission, training
from .config import Task
from .errors import UsageError
from .helpers import artifact_dir, utc_now, versions

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
    tuned_by: str = ""  # "study#trial" when the parameters are a tuning study's trial (submit --study --trial)

    @property
    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir else config.RAW_DIR / self.task.name

    def params(self):
        return models.params_for(self.model, self.overrides)

    def trained_params(self, gpu: bool | None = None):
        """The parameters a training of these settings runs with: on this machine, or on a GPU (`gpu=True`)
        or the CPU (`gpu=False`) elsewhere (a Kaggle kernel). The cnn's GPU preset trains 40 epochs, not 13."""
        return models.as_trained(self.model, self.params(), gpu)

    def configuration(self, data_checksum: str, gpu: bool | None = None) -> str:
        """The configuration hash of a training of these settings on these data (see submission.config_hash):
        what the ledger, the guards and "nothing changed" compare. A user's model counts its source's hash."""
        return submission.config_hash(
            self.task.name,
            models.display_name(self.model),
            models.params_dict(self.trained_params(gpu)),
            self.seed,
            data_checksum,
            models.source_sha256(self.model),
        )

    @property
    def model_file_name(self) -> str:
        """The model's part of folder and file names (see models.file_name)."""
        return models.file_name(self.model)

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


def validate(
    settings: Settings, dataset: data.Dataset | None = None
) -> tuple[training.ValidationResult, dict[str, Path]]:
    """Estimate accuracy; write metrics.json and the plots into data/reports/<model>/."""
    dataset = dataset or load_data(settings)
    scheme = f"{settings.folds}-fold" if settings.folds > 1 else f"{settings.holdout:.0%} holdout"
    log.info("validate: model %s, %s, seed %d", settings.model, scheme, settings.seed)
    result, _ = training.validate_and_keep(
        dataset, settings.model, settings.params(), settings.seed, settings.holdout, settings.folds, settings.verbose
    )
    folder = artifact_dir(config.REPORTS_DIR, settings.model_file_name, settings.task.name)
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
    grid = plots.misclassified(
        images, result.misclassified, settings.task.class_names, title, folder / "misclassified.png"
    )
    if grid:
        files["misclassified"] = grid
    return files


def evaluate(
    settings: Settings, dataset: data.Dataset | None = None
) -> tuple[training.ValidationResult, dict[str, Path]]:
    """Tasks with a labeled test file (Fashion-MNIST): fit on the train file, score on the test file.

    The test file is passed to Keras only to draw the learning curves; early stopping is off, so
    nothing about the model is chosen by looking at it.
    """
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
        dataset.train_images,
        dataset.train_labels,
        validation=(dataset.test_images, dataset.test_labels),
        verbose=settings.verbose,
    )
    seconds = time.perf_counter() - start
    result_score = training.score(model, dataset.test_images, dataset.test_labels)
    result = training.ValidationResult(
        model=settings.model,
        params=models.params_dict(model.params),  # as trained (the GPU presets apply in fit)
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
        device=models.model_class(settings.model).device(),
        backend=models.model_class(settings.model).keras_backend(),
    )
    # Its own folder: validate's metrics.json (which `train` reads for the epochs) stays untouched.
    folder = artifact_dir(config.REPORTS_DIR, settings.model_file_name, settings.task.name, variant="evaluate")
    return result, write_report(settings, result, dataset.test_images, folder)


def train(settings: Settings, dataset: data.Dataset | None = None) -> tuple[Path, dict[str, Any]]:
    """Fit on the full train.csv and save the model with its config (data/models/<model>/)."""
    dataset = dataset or load_data(settings)
    metrics = training.read_metrics(artifact_dir(config.REPORTS_DIR, settings.model_file_name, settings.task.name))
    params, epochs_note = training.final_epochs(settings.params(), metrics, dataset)
    log.info("train: model %s on all %d rows (%s)", settings.model, len(dataset.train_labels), epochs_note)
    model, history, seconds = training.train_final(dataset, settings.model, params, settings.seed, settings.verbose)
    estimate, scheme = None, None
    if history.out_of_fold_accuracy is not None:  # the ensemble: its members' out-of-fold accuracy, same training
        estimate, scheme = history.out_of_fold_accuracy, f"{model.params.members}-fold out-of-fold (members)"
        log.info("train: members' out-of-fold accuracy %.4f over %d rows", estimate, history.out_of_fold_rows)
    elif training.matching_estimate(metrics, settings.model, settings.params(), settings.seed, dataset):
        estimate, scheme = metrics["accuracy"], metrics.get("scheme")
    meta = model_meta(settings, model.params, dataset, estimate, scheme, len(dataset.train_labels), seconds)
    folder = artifact_dir(config.MODELS_DIR, settings.model_file_name, settings.task.name)
    training.save_model(model, folder, meta)
    log.info("train: done in %.1f s, saved %s", seconds, folder)
    return folder, meta


def model_meta(
    settings: Settings,
    params,
    dataset: data.Dataset,
    estimate: float | None,
    scheme: str | None,
    rows: int,
    seconds: float,
    gpu: bool | None = None,
) -> dict[str, Any]:
    """The saved model's config. `gpu`: where it trained when not here (a Kaggle kernel's accelerator)."""
    return {
        "model": settings.model,
        **user_model_identity(settings.model),
        "task": settings.task.name,
        "params": models.params_dict(params),
        # What was asked for, before validation picked the epochs.
        "requested_params": models.params_dict(settings.params()),
        "device": models.model_class(settings.model).device() if gpu is None else ("GPU" if gpu else "CPU"),
        # A Keras model's backend ("" otherwise); a Kaggle kernel's is its image's default, TensorFlow.
        "backend": models.model_class(settings.model).keras_backend()
        if gpu is None
        else ("tensorflow" if models.model_class(settings.model).keras_backend() else ""),
        # What "nothing changed" and the guards compare: the settings as trained on that device (GPU presets).
        "config": settings.configuration(dataset.checksum, gpu),
        "seed": settings.seed,
        "holdout_accuracy": estimate,
        "validation_scheme": scheme,
        "estimate_from": tuned_estimate(estimate_from(scheme, rows, len(dataset.train_labels)), settings.tuned_by),
        **({"tuning": settings.tuned_by} if settings.tuned_by else {}),
        "data_checksum": dataset.checksum,
        "train_rows": int(rows),
        "train_seconds": round(seconds, 2),
        "trained_at": utc_now(),
        "versions": versions(),
    }


def user_model_identity(model: str) -> dict[str, Any]:
    """What a saved model or a submission records of a user's model: its name, its source's hash and files (the
    hash is what the configuration counts; the libraries' versions are recorded beside it, never hashed)."""
    sha = models.source_sha256(model)
    if not sha:
        return {}
    return {"model_label": models.label(model), "source_sha256": sha}


def estimate_from(scheme: str | None, rows: int, all_rows: int) -> str | None:
    """Which training the accuracy estimate speaks for, in words (the sidecar and the ledger carry it)."""
    if scheme is None:
        return None
    if "members" in scheme:
        return f"{scheme}: this model's own members, each on the rows it did not see"
    if rows == all_rows:  # trained on every row: the figure is the validation on file of the same settings
        return f"{scheme} validation on file of the same settings, data and seed; this model trained on all {rows} rows"
    return f"{scheme} of this very model (trained on {rows} of {all_rows} rows)"


def tuned_estimate(text: str | None, tuned_by: str) -> str | None:
    """A tuned trial's figure is labeled as what it is: its parameters were chosen for scoring well on that split."""
    if not tuned_by or text is None or "tuning score" in text:
        return text
    study, _, trial = tuned_by.rpartition("#")
    return (
        f"{text}; a tuning score: study {study} chose these parameters (trial {trial}) on the same data and seed, so "
        f"it is optimistic"
    )


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
    metrics = training.read_metrics(artifact_dir(config.REPORTS_DIR, settings.model_file_name, settings.task.name))
    if training.matching_estimate(metrics, settings.model, settings.params(), settings.seed, dataset):
        log.info(
            "submit: validation of these settings and data on file (%s %.4f): one training, on every row",
            metrics.get("scheme"),
            metrics["accuracy"],
        )
        return train(settings, dataset)[1]
    params = settings.params()
    log.info("validate: model %s, %.0f%% holdout, seed %d", settings.model, settings.holdout * 100, settings.seed)
    result, model = training.validate_and_keep(
        dataset, settings.model, params, settings.seed, settings.holdout, 0, settings.verbose
    )
    write_report(
        settings,
        result,
        dataset.train_images,
        artifact_dir(config.REPORTS_DIR, settings.model_file_name, settings.task.name),
    )
    log.info("validate: %s accuracy %.4f", result.scheme, result.accuracy)
    if refit:
        return train(settings, dataset)[1]
    meta = model_meta(
        settings, model.params, dataset, result.accuracy, result.scheme, result.train_rows, result.fit_seconds
    )
    folder = artifact_dir(config.MODELS_DIR, settings.model_file_name, settings.task.name)
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
    folder = artifact_dir(config.MODELS_DIR, settings.model_file_name, settings.task.name)
    model, meta = training.load_model(folder, settings.model)
    if meta.get("data_checksum") != dataset.checksum:
        log.warning(
            "predict: the model was trained on other data than %s; run 'make train' to refresh it",
            settings.resolved_data_dir,
        )
    start = time.perf_counter()
    labels = model.predict(dataset.test_images)
    seconds = time.perf_counter() - start
    path = output or submission.submission_path(settings.model_file_name, settings.task)
    sidecar = {
        "task": settings.task.name,
        "model": meta.get("model_label", meta["model"]),  # a user's model: "file.py:NAME@<source hash>"
        "params": meta["params"],
        "requested_params": meta.get("requested_params", meta["params"]),
        "seed": meta["seed"],
        "holdout_accuracy": meta.get("holdout_accuracy"),
        "validation_scheme": meta.get("validation_scheme"),
        "estimate_from": tuned_estimate(meta.get("estimate_from"), settings.tuned_by),
        **({"tuning": settings.tuned_by} if settings.tuned_by else {}),
        "data_checksum": dataset.checksum,
        "model_data_checksum": meta.get("data_checksum"),
        # What "nothing changed" compares; it also goes into the description on Kaggle (see submit).
        "config": meta.get("config")
        or submission.config_hash(  # a model saved before its config recorded one
            settings.task.name,
            meta["model"],
            meta.get("requested_params", meta["params"]),
            meta["seed"],
            meta.get("data_checksum") or dataset.checksum,
        ),
        "device": meta.get("device", ""),
        "backend": meta.get("backend", ""),
        "versions": versions(),
        **({"trained_on": meta["trained_on"]} if meta.get("trained_on") else {}),  # a Kaggle kernel (--remote kaggle)
        **(
            {"accelerator": meta["accelerator"]} if meta.get("accelerator") else {}
        ),  # which one (Kaggle's machineShape)
        "durations": {"train_seconds": meta.get("train_seconds"), "predict_seconds": round(seconds, 3)},
        "written_at": utc_now(),
    }
    submission.write_submission(path, dataset.test_ids, labels, settings.task, sidecar)
    log.info("predict: %d rows in %.2f s, checked", len(labels), seconds)
    return path
