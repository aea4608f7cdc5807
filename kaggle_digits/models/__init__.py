"""The model registry: a name on the command line picks a model class and its default parameters.

A reference with a colon (`file.py:NAME`, `package.module:NAME`) is a user's model: `user.py` is the one door
through which such code is loaded; everything above treats it like a built-in."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..errors import UsageError
from .base import History, Model, NotFittedError, parse_overrides
from .keras_models import CNNModel, DeotteModel, EnsembleModel, FastCNNModel, MLPModel, SoftmaxModel
from .sklearn_models import KNeighborsModel, LogisticRegressionModel, RandomForestModel
from .user import UserCodeError, is_reference
from .user import model_class as user_model_class
from .user import resolve as resolve_user_model

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

__all__ = ["REGISTRY", "History", "Model", "NotFittedError", "UserCodeError", "create", "params_for", "params_dict"]


def model_class(name: str) -> type[Model]:
    if is_reference(name):
        return user_model_class(name)
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown model '{name}'. Fix: choose one of {', '.join(REGISTRY)}, or name your own: "
            f"path/to/file.py:NAME or package.module:NAME (see docs/your-model.md)"
        ) from None


def display_name(name: str) -> str:
    """How a model is named in files, the ledger and on Kaggle: a built-in's name; a user's "file.py:NAME" (its
    folder left out: the same file elsewhere, in a Kaggle kernel say, is the same model)."""
    return resolve_user_model(name).display if is_reference(name) else name


def source_sha256(name: str) -> str:
    """The SHA-256 of a user model's source (its file and the files beside it that it imports); "" for a built-in."""
    return resolve_user_model(name).sha256 if is_reference(name) else ""


def label(name: str) -> str:
    """The model as the ledger and the submission's description name it: a user's carries its source's short hash."""
    sha = source_sha256(name)
    return f"{display_name(name)}@{sha[:8]}" if sha else name


def file_name(name: str) -> str:
    """The model's part of folder and file names (data/models/<it>, <time>-<it>.csv): a built-in's name; a user's
    file stem and NAME ("my_model-build"), in characters every file system takes."""
    if not is_reference(name):
        return name
    target, _, attribute = display_name(name).rpartition(":")
    stem = target[:-3] if target.endswith(".py") else target
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stem}-{attribute}").strip("-")


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
