"""The one small interface every model speaks, Keras or scikit-learn, so pipelines swap them by name."""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..errors import UsageError


class NotFittedError(UsageError):
    """predict before fit (or load): scikit-learn's check_is_fitted, as one line instead of an AttributeError."""


@dataclasses.dataclass
class History:
    """Per-epoch curves (Keras models) and the epoch validation liked best."""

    curves: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    best_epoch: int | None = None
    # Models that estimate themselves while training (the ensemble: members on different folds).
    out_of_fold_accuracy: float | None = None
    out_of_fold_rows: int = 0


ModelType = TypeVar("ModelType", bound="Model")


class Model(ABC):
    """fit / predict_proba / predict / save / load over uint8 pixel rows of 784."""

    name: ClassVar[str]
    Params: ClassVar[type]
    # True when fit() on all rows also yields an honest accuracy estimate (History.out_of_fold_accuracy),
    # so a submission needs no separate validation training.
    estimates_itself: ClassVar[bool] = False

    def __init__(self, params: Any, seed: int):
        self.params = params
        self.seed = seed

    @classmethod
    def device(cls) -> str:
        """Where this model trains on this machine: "CPU", or "GPU" for a Keras model when TensorFlow sees one."""
        return "CPU"

    @classmethod
    def keras_backend(cls) -> str:
        """The Keras backend a Keras model trains with here ("tensorflow", "jax", "torch"); "" for any other model."""
        return ""

    @classmethod
    def as_trained(cls, params: Any, gpu: bool | None = None) -> Any:
        """The parameters fit() really trains with on this device (`gpu`: on that device instead): a preset may
        grow on a GPU (the cnn's gpu_epochs). What the saved config, metrics.json and the configuration record."""
        return params

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any] | None:
        """The main parameters' ranges for `kaggle-digits tune`, in Optuna's define-by-run form: keyword parameters
        drawn with trial.suggest_*. None: no space declared (a user's model declares one as search_space(trial))."""
        return None

    @abstractmethod
    def fit(self, images: np.ndarray, labels: np.ndarray, validation=None, verbose: bool = True) -> History:
        """Train; `validation` is (images, labels) for curves and early stopping, or None for a final fit."""

    @property
    @abstractmethod
    def fitted(self) -> bool:
        """True once fit() or load() has given the model its weights."""

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, 10)."""
        if not self.fitted:
            raise NotFittedError(
                f"model '{self.name}' is not trained yet: call fit() or Model.load() before predicting. "
                f"Fix: 'make train MODEL={self.name}' (or 'kaggle-digits train --model {self.name}') first"
            )
        return self._predict_proba(images)

    @abstractmethod
    def _predict_proba(self, images: np.ndarray) -> np.ndarray: ...

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(images), axis=1).astype(np.uint8)

    @abstractmethod
    def save(self, folder: Path) -> None: ...

    @abstractmethod
    def _load_weights(self, folder: Path) -> None: ...

    @classmethod
    def load(cls: type[ModelType], folder: Path, params: Any, seed: int) -> ModelType:
        model = cls(params, seed)
        model._load_weights(folder)
        return model


def parse_overrides(params_type: type, overrides: dict[str, str], model_name: str):
    """Apply `key=value` strings from the command line onto a params dataclass, typed by its defaults."""
    params = params_type()
    fields = {field.name: field for field in dataclasses.fields(params_type)}
    changes = {}
    for key, raw in overrides.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise UsageError(
                f"model '{model_name}' has no parameter '{key}'. Fix: use one of {', '.join(sorted(fields))}"
            )
        current = getattr(params, name)
        try:
            value: Any
            if isinstance(current, bool):
                if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                    raise ValueError(raw)
                value = raw.lower() in {"1", "true", "yes"}
            elif isinstance(current, (list, tuple)):
                value = type(current)(type(current[0])(part) for part in raw.split(","))
            elif current is None:
                value = json.loads(raw)
            else:
                value = type(current)(raw)
        except ValueError:
            raise UsageError(
                f"parameter '{key}={raw}' of model '{model_name}': expected {type(current).__name__} "
                f"(default {current!r}). Fix: pass e.g. {key}={current!r}"
            ) from None
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (value < 0 or (name == "epochs" and value < 1))
        ):
            raise UsageError(
                f"parameter '{key}={raw}' of model '{model_name}' must be "
                f"{'at least 1' if name == 'epochs' else 'positive'}"
            )
        changes[name] = value
    return dataclasses.replace(params, **changes)
