"""`check-model` and `new-model`: a user's model against the contract, on the embedded sample, in the spirit of
scikit-learn's check_estimator; and starter files that pass it.

Each rule that fails is one line (UserCodeError, exit 2) naming the rule and the fix; nothing is written.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from . import config, data, models
from .errors import UsageError
from .models.user import SklearnStyleModel, UserCodeError, checked_probabilities, resolve

FIT_ROWS = 400  # enough for every digit to appear, few enough for a small model to fit in seconds
PREDICT_ROWS = 200


def check_model(reference: str, overrides: dict[str, str], seed: int = config.DEFAULT_SEED) -> list[str]:
    """Fit on a few hundred rows of the embedded sample and check the contract; returns one line per rule kept."""
    if not models.is_reference(reference):
        raise UsageError(
            f"check-model checks a model of yours (path/to/file.py:NAME or package.module:NAME), not the built-in "
            f"'{reference}'. Fix: name your file, e.g. 'kaggle-digits check-model my_model.py:build'"
        )
    started = time.perf_counter()
    source = resolve(reference)
    model_class = models.model_class(reference)
    quick = dict(overrides)
    if any(field.name == "epochs" for field in dataclasses.fields(model_class.Params)):
        quick.setdefault("epochs", "1")  # the contract, not the accuracy: one epoch says as much
    params = models.params_for(reference, quick)
    kept = [f"parameters: {_listed(params) or '(none)'}"]
    sample = data.load(config.SAMPLE_ZIP, config.BUILTIN_TASKS[config.DEFAULT_TASK], use_cache=False)
    train_x, train_y = sample.train_images[:FIT_ROWS], sample.train_labels[:FIT_ROWS]
    test_x = sample.train_images[FIT_ROWS : FIT_ROWS + PREDICT_ROWS]

    first = models.create(reference, params, seed)
    first.fit(train_x, train_y, None, verbose=False)
    probabilities = checked_probabilities(source, first.predict_proba(test_x), len(test_x))
    kept.append(f"fit on {FIT_ROWS} rows; predict_proba gives ({len(test_x)}, 10), finite, rows summing to 1")
    _every_parameter_stored(source, first, params)
    if (
        isinstance(first, SklearnStyleModel)
        and isinstance(first.factory, type)
        and callable(getattr(first.estimator, "get_params", None))
    ):
        kept.append("every parameter is stored under its name (get_params)")

    second = models.create(reference, params, seed)
    second.fit(train_x, train_y, None, verbose=False)
    if not np.allclose(second.predict_proba(test_x), probabilities, atol=1e-5):
        raise UserCodeError(
            f"check-model {source.display}: rule 'same seed, same model' failed: two fits with seed {seed} predict "
            f"differently. Fix: draw every random number from the seed (a `random_state=None` or `seed=None` "
            f"parameter gets the toolkit's seed; a Model subclass has self.seed)"
        )
    kept.append(f"the same seed ({seed}) gives the same predictions")

    with tempfile.TemporaryDirectory(prefix="kaggle-digits-check-") as folder:
        first.save(Path(folder))
        loaded = type(first).load(Path(folder), params, seed)
        if not np.allclose(loaded.predict_proba(test_x), probabilities, atol=1e-5):
            raise UserCodeError(
                f"check-model {source.display}: rule 'save and load' failed: the loaded model predicts differently "
                f"from the one saved. Fix: save everything predict needs (a Model subclass: save/_load_weights)"
            )
    kept.append("a save and load round trip predicts the same")
    kept.append(f"{source.display} (source {source.short}) keeps the contract ({time.perf_counter() - started:.0f} s)")
    return kept


def _listed(params) -> str:
    return " ".join(f"{key}={value}" for key, value in models.params_dict(params).items())


def _every_parameter_stored(source, model, params) -> None:
    """scikit-learn's rule: __init__ stores each keyword argument under its own name, so get_params, clone and a
    set_params of a search see every parameter (the fitted estimator is asked)."""
    if not isinstance(model, SklearnStyleModel) or not callable(getattr(model.estimator, "get_params", None)):
        return
    if not isinstance(model.factory, type):  # a function builds the estimator: its parameters are the function's
        return
    try:
        stored = model.estimator.get_params(deep=False)
    except AttributeError:  # scikit-learn reads each __init__ parameter back by its name: one is missing
        stored = {}
    for key, value in models.params_dict(params).items():
        if key not in stored:
            raise UserCodeError(
                f"check-model {source.display}: rule 'every parameter is stored' failed: '{key}' is a parameter of "
                f"{source.attribute}.__init__ but get_params() has no '{key}'. Fix: in __init__, self.{key} = {key}"
            )
        if stored[key] != value and not (key in SklearnStyleModel.SEED_NAMES and value is None):
            raise UserCodeError(
                f"check-model {source.display}: rule 'every parameter is stored' failed: '{key}' was given {value!r} "
                f"but get_params() says {stored[key]!r}. Fix: store it unchanged (self.{key} = {key}); change it in "
                f"fit instead"
            )


# --- new-model: starter files that pass check-model ---------------------------------------------------------

STARTERS = {
    "sklearn": (
        "pca_logreg",
        '''"""A model of your own for kaggle-digits, scikit-learn style (see docs/your-model.md).

The contract: NAME (here `pca_logreg`) is a class, or a function that returns an object, with fit(X, y) and
predict_proba(X) (or only predict). X is float32, shape (n, 784), pixels scaled to [0, 1]; y holds the labels
0..9. Every keyword parameter, with its default, is a `-p key=value` (typed by the default); a `random_state`
left at None gets the toolkit's seed, so the same seed gives the same model. This file's SHA-256 (and that of
the files beside it that it imports) is the model's identity: edit it, and `make resubmit` submits again.

    kaggle-digits check-model {path}:pca_logreg
    make validate MODEL={path}:pca_logreg
"""

from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


def pca_logreg(components: int = 40, C: float = 1.0, max_iter: int = 300, random_state: int | None = None):
    return make_pipeline(
        PCA(n_components=components, random_state=random_state),
        LogisticRegression(C=C, max_iter=max_iter),
    )
''',
    ),
    "keras": (
        "small_cnn",
        '''"""A model of your own for kaggle-digits, Keras style (see docs/your-model.md).

The contract: NAME (here `small_cnn`) returns a keras.Model with input (28, 28, 1), float32 in [0, 1], and 10
outputs (a softmax). The toolkit trains it with the cnn's loop: warm-up then cosine, label smoothing, augmentation,
epochs and batch size, each a `-p key=value` (see `kaggle-digits models {path}:small_cnn`), and the GPU preset
when a GPU is visible. Return it compiled (with a loss on one-hot targets) to keep your own optimizer and loss.
Every keyword parameter below is a `-p key=value` too. This file's SHA-256 is the model's identity.

    kaggle-digits check-model {path}:small_cnn
    make validate MODEL={path}:small_cnn
"""

import keras


def small_cnn(filters: int = 16, dense: int = 64):
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(filters, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(2 * filters, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", dtype="float32")(x)  # float32 under mixed precision too
    return keras.Model(inputs, outputs)
''',
    ),
}


def new_model(path: Path, kind: str) -> str:
    """Write a starter file of `kind` at `path` (never over an existing file); returns its reference."""
    if kind not in STARTERS:
        raise UsageError(f"new-model --kind {kind}: expected one of {', '.join(STARTERS)}")
    if path.suffix != ".py" or not path.stem.isidentifier():
        raise UsageError(f"new-model {path}: expected a Python file name such as my_model.py. Fix: name it so")
    if path.exists():
        raise UsageError(f"new-model {path}: the file exists; nothing was written. Fix: choose another name")
    name, text = STARTERS[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x") as handle:  # "x": never over a file that appeared meanwhile
        handle.write(text.replace("{path}", path.as_posix()))
    return f"{path.as_posix()}:{name}"
