"""The heavy libraries, each imported at one door here, on first use.

TensorFlow/Keras take seconds to load, scikit-learn about one, pandas and matplotlib about half a
second each: `--help`, the data checks and the Kaggle commands must not pay for what they do not
use. Every other module imports these through the functions below, never at its top. (kagglesdk,
the Kaggle edge's own library, has its door in kaggle_api/sdk.py: nothing else may talk to Kaggle.)
"""

from __future__ import annotations

import functools
import json
import os
import sys
from types import ModuleType
from typing import Any

from . import config
from .errors import UsageError

# TensorFlow's C++ start-up chatter is noise on a terminal and in cron mail.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@functools.cache
def tensorflow() -> ModuleType:
    """TensorFlow, with its C++ start-up lines (oneDNN, CUDA probing) kept off stderr.

    They are printed before absl's logging starts, so TF_CPP_MIN_LOG_LEVEL cannot silence them;
    pointing file descriptor 2 at /dev/null for the import is the only way. KAGGLE_DIGITS_DEBUG shows them.
    """
    if "tensorflow" in sys.modules or config.DEBUG:
        import tensorflow as tf

        return tf
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # probes CUDA now, while its complaints go nowhere
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    # Its Python-side advice (e.g. on retracing when an ensemble's members predict in turn) is not for users.
    tf.get_logger().setLevel("ERROR")
    return tf


def keras_backend() -> str:
    """The Keras 3 backend this process will use, read as Keras reads it (KERAS_BACKEND, else keras.json's
    "backend", else tensorflow) without importing Keras: TensorFlow is imported only where it is the backend."""
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen:
        return chosen
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as handle:
            return str(json.load(handle).get("backend") or "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


@functools.cache
def keras() -> ModuleType:
    """Keras 3 on its configured backend (tensorflow, jax or torch): the toolkit's Keras models run on each."""
    if keras_backend() == "tensorflow":
        tensorflow()  # first: its import is the one that is silenced
    import keras

    return keras


@functools.cache
def sklearn() -> ModuleType:
    """scikit-learn with the submodules the toolkit uses (splits, metrics, the classic models)."""
    import sklearn.ensemble
    import sklearn.exceptions
    import sklearn.linear_model
    import sklearn.metrics
    import sklearn.model_selection
    import sklearn.neighbors

    return sklearn


@functools.cache
def pandas() -> ModuleType:
    """Only parsing a CSV needs it."""
    import pandas

    return pandas


@functools.cache
def pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")  # files only: works headless, under cron and in CI
    import matplotlib.pyplot

    return matplotlib.pyplot


@functools.cache
def scipy_stats() -> ModuleType:
    """For the benchmark's intervals."""
    import scipy.stats

    return scipy.stats


@functools.cache
def scipy_ndimage() -> ModuleType:
    """For distorting the training images once, before training (the `distorted_copies` option)."""
    import scipy.ndimage

    return scipy.ndimage


@functools.cache
def optuna() -> ModuleType:
    """Optuna (`kaggle-digits tune`), with its per-trial INFO lines off: the tuner prints its own, one per trial."""
    import warnings

    try:
        import optuna
    except ModuleNotFoundError:
        raise UsageError(
            "kaggle-digits tune needs Optuna, which is not installed. Fix: pip install 'kaggle-digits[tune]' (make "
            "install has it)"
        ) from None

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Its matplotlib plots and the journal's file lock are marked experimental; they are what tune uses, by choice.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # A -p value outside the space's range is the user's explicit choice, and `--show-space` shows the range.
    warnings.filterwarnings("ignore", message="Fixed parameter .* is out of range", category=UserWarning)
    return optuna


@functools.cache
def keras_pruning_callback() -> type:
    """optuna-integration's Keras 3 callback (any backend): reports each epoch's metric, prunes a hopeless trial."""
    keras()  # first: TensorFlow's start-up lines are silenced at its own door
    from optuna_integration import KerasPruningCallback

    return KerasPruningCallback


@functools.cache
def make_url() -> Any:
    """SQLAlchemy's URL parser (Optuna's own dependency): how `tune --storage` reads a database URL, and masks it."""
    from sqlalchemy.engine import make_url

    return make_url
