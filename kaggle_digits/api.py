"""The loop for notebooks: `from kaggle_digits.api import validate, submit`, on a model reference or an object.

The same code paths as the CLI (pipeline.validate, submit.submit): the same guards, ledger and lock, the same
files under the current folder (or KAGGLE_DIGITS_HOME). A model may be a reference ("cnn", "my_model.py:build")
or an object defined in the notebook (a class or a factory function); such an object's identity is its source as
`inspect` reads it, or, where it cannot, its name alone (said in a warning: an edit then goes unseen).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import config, pipeline
from . import submit as submitting
from .models import user
from .tasks import get_task
from .training import ValidationResult


def _settings(
    model: Any,
    params: dict[str, Any] | None,
    seed: int,
    task: str,
    data_dir: Path | str | None,
    holdout: float = config.DEFAULT_HOLDOUT,
    folds: int = 0,
    verbose: bool = True,
) -> pipeline.Settings:
    reference = model if isinstance(model, str) else user.register_object(model)
    settings = pipeline.Settings(
        task=get_task(task),
        data_dir=Path(data_dir) if data_dir is not None else None,
        model=reference,
        overrides={key: str(value) for key, value in (params or {}).items()},
        seed=seed,
        holdout=holdout,
        folds=folds,
        verbose=verbose,
    )
    settings.params()  # a bad parameter fails here, before any data is read
    return settings


def validate(
    model: Any,
    *,
    params: dict[str, Any] | None = None,
    data_dir: Path | str | None = None,
    seed: int = config.DEFAULT_SEED,
    task: str = config.DEFAULT_TASK,
    holdout: float = config.DEFAULT_HOLDOUT,
    folds: int = 0,
    verbose: bool = True,
) -> ValidationResult:
    """`make validate`: a stratified holdout (or k-fold) of train.csv; metrics.json and plots in data/reports/."""
    settings = _settings(model, params, seed, task, data_dir, holdout, folds, verbose)
    if settings.data_dir is None:
        settings = settings.with_data(submitting.fetch(settings)[0])
    result, _ = pipeline.validate(settings)
    return result


def submit(
    model: Any,
    *,
    params: dict[str, Any] | None = None,
    data_dir: Path | str | None = None,
    seed: int = config.DEFAULT_SEED,
    task: str = config.DEFAULT_TASK,
    upload: bool = True,
    force: bool = False,
    message: str = "",
    competition: str | None = None,
    verbose: bool = True,
) -> submitting.SubmitResult:
    """`make submit`: fetch, train once, predict, and (unless upload=False) the guards, the upload and the score."""
    settings = _settings(model, params, seed, task, data_dir, verbose=verbose)
    options = submitting.SubmitOptions(upload=upload, force=force, message=message, competition=competition)
    return submitting.submit(settings, options)
