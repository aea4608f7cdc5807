"""The model registry: a name on the command line picks a model class and its default parameters."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import UsageError
from .base import History, Model, NotFittedError, parse_overrides
from .keras_models import CNNModel, DeotteModel, EnsembleModel, FastCNNModel, MLPModel, SoftmaxModel
from .sklearn_models import KNeighborsModel, LogisticRegressionModel, RandomForestModel

REGISTRY: dict[str, type[Model]] = {
    model.name: model
    for model in (
        SoftmaxModel,
        LogisticRegressionModel,
        RandomForestModel,
        KNeighborsModel,
        MLPModel,
        FastCNNModel,
        CNNModel,
        EnsembleModel,
        DeotteModel,
    )
}

__all__ = ["REGISTRY", "History", "Model", "NotFittedError", "create", "params_for", "params_dict"]


def model_class(name: str) -> type[Model]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown model '{name}'. Fix: choose one of {', '.join(REGISTRY)}") from None


def params_for(name: str, overrides: dict[str, str] | None = None):
    """The model's parameters with the overrides; `-p epochs=N` (or members=N) alone holds on a GPU too."""
    overrides = overrides or {}
    params = parse_overrides(model_class(name).Params, overrides, name)
    for setting in ("epochs", "members"):
        preset = f"gpu_{setting}"
        if setting in overrides and preset not in overrides and hasattr(params, preset):
            params = dataclasses.replace(params, **{preset: 0})
    return params


def as_trained(name: str, params: Any, gpu: bool | None = None) -> Any:
    """What model `name` trains with on this machine (or on a GPU / the CPU, when `gpu` says which)."""
    return model_class(name).as_trained(params, gpu)


def params_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params)


def create(name: str, params: Any, seed: int) -> Model:
    return model_class(name)(params, seed)
