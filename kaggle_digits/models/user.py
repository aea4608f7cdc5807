"""Your own model: the one door through which a user's code is loaded, and the adapters that make it a Model.

A model reference is a built-in name, `path/to/file.py:NAME` (loaded by path, as importlib's recipe does) or
`package.module:NAME` (imported, as uvicorn's "module:attribute" strings are). NAME may be:

1. scikit-learn style: a class, or a callable returning an object, with fit(X, y) and predict_proba(X) (or only
   predict). X is float32 (n, 784) in [0, 1]; y holds the labels 0..9. A Pipeline works.
2. Keras: a callable returning a keras.Model with input (28, 28, 1) float32 in [0, 1] and 10 outputs, trained by
   the toolkit's own loop (the cnn's schedule, augmentation, epochs and batch size, each a -p parameter, and the
   GPU preset when TensorFlow sees a GPU). A model that arrives compiled keeps its own compile.
3. A subclass of the toolkit's Model, for full control.

NAME's keyword parameters (with their defaults) are its -p parameters. Its identity is the SHA-256 of its source
file and of the files of its own folder that it imports (not the libraries' versions): an edited model is a new
configuration for the ledger, the guards and scheduled runs. Everything that runs the user's code goes through
`user_code`, which turns the user's exception into one line (UserCodeError, exit 2) and keeps their own traceback
frames to show.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import logging
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import config, lazy
from ..errors import ToolkitError, UsageError
from .base import History, Model
from .keras_models import CNNModel, CNNParams

log = logging.getLogger("kaggle_digits")

# "file.py:NAME" or "package.module:NAME"; NAME may be dotted (an attribute of an attribute).
_REFERENCE = re.compile(r"^(?P<target>.+?):(?P<attribute>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
_MODULE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


def is_reference(text: str) -> bool:
    """A user's model, not a built-in name: built-in names have no colon."""
    return ":" in text


class UserCodeError(UsageError):
    """The user's code failed, or broke the contract: one line, exit 2, and (when it raised) their own frames."""

    def __init__(self, message: str, frames: str = ""):
        super().__init__(message)
        self.frames = frames  # the user's part of the traceback, printed before the line by cli.main


@dataclass(frozen=True)
class Source:
    """Where a reference's code is, and its identity. `files` are relative to `root` (the folder that goes on
    sys.path): the model's file first, then the files of its own folder that it imports."""

    reference: str  # as given
    display: str  # "file.py:NAME" or "package.module:NAME": what the ledger, the sidecar and folder names use
    attribute: str
    root: Path
    files: tuple[str, ...]
    module: str  # the module's import name
    sha256: str

    @property
    def short(self) -> str:
        return self.sha256[:8]

    @property
    def is_file(self) -> bool:
        return self.reference.split(":")[0].endswith(".py")

    def texts(self) -> dict[str, bytes]:
        return {name: (self.root / name).read_bytes() for name in self.files}


def resolve(reference: str) -> Source:
    """Find the reference's code and hash it; nothing is imported (but a module's parent packages, to find it)."""
    if reference in _OBJECTS:
        return _OBJECTS[reference][0]
    match = _REFERENCE.match(reference)
    if not match:
        raise UsageError(
            f"model '{reference}' is not a model reference. Fix: use a built-in name (see 'kaggle-digits models'), "
            f"path/to/file.py:NAME or package.module:NAME"
        )
    target, attribute = match["target"], match["attribute"]
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise UsageError(
                f"model '{reference}': no such file {path}. Fix: check the path (relative to {Path.cwd()})"
            )
        root, first, module = path.resolve().parent, path.name, path.stem
        if not _MODULE.fullmatch(module):
            raise UsageError(f"model '{reference}': {path.name} is not a Python module name. Fix: rename the file")
        display = f"{path.name}:{attribute}"
    else:
        if not _MODULE.fullmatch(target):
            raise UsageError(f"model '{reference}': '{target}' is neither a file.py nor a module name")
        try:
            spec = importlib.util.find_spec(target)
        except (ImportError, ValueError) as error:
            spec, why = None, f" ({error})"
        else:
            why = ""
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise UsageError(
                f"model '{reference}': no module '{target}' on the Python path{why}. Fix: check its name, install "
                f"its package, or use path/to/file.py:{attribute}"
            )
        origin = Path(spec.origin).resolve()
        depth = target.count(".") + (1 if origin.name == "__init__.py" else 0)
        root = origin.parents[depth]
        first, module, display = origin.relative_to(root).as_posix(), target, f"{target}:{attribute}"
    digest = hashlib.sha256()
    try:
        files = _local_imports(root, first)
        for name in files:  # names and bytes: a renamed helper is a change too
            digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    except OSError as error:  # unreadable (permissions, a file vanishing meanwhile): one line, not a traceback
        raise UsageError(
            f"model '{reference}': cannot read {error.filename or first} ({error.strerror or error}). Fix: check "
            f"that the file is there and readable"
        ) from None
    return Source(reference, display, attribute, root, tuple(files), module, digest.hexdigest())


TOOLKIT = __name__.split(".")[0]  # "kaggle_digits": its import name, wherever a copy of it lies


def _local_imports(root: Path, first: str) -> list[str]:
    """`first` and, transitively, the files beside it that it imports (import x / from x import y / from . import
    y, where x.py or the package x/ is in the same folder): what makes up the model's code, as DVC hashes a
    stage's dependencies. Installed libraries are not part of it."""
    found, todo = [first], [first]
    while todo:
        name = todo.pop()
        folder = (root / name).parent
        try:
            tree = ast.parse((root / name).read_bytes(), filename=str(root / name))
        except (SyntaxError, ValueError):  # ValueError: a NUL byte; both are reported when the module is imported
            continue
        candidates = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                candidates += [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    candidates.append(node.module.split(".")[0])
                elif node.level == 1:
                    candidates += [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
        for candidate in candidates:
            # The toolkit itself is a library here, like numpy: a model file in the checkout's root sits beside
            # kaggle_digits/, and a toolkit upgrade must not make it a new model (nor travel as its code).
            if candidate == TOOLKIT:
                continue
            for path in (folder / f"{candidate}.py", *sorted((folder / candidate).rglob("*.py"))):
                if path.is_file() and "__pycache__" not in path.parts:
                    relative = path.relative_to(root).as_posix()
                    if relative not in found:
                        found.append(relative)
                        todo.append(relative)
    return found


# --- running the user's code --------------------------------------------------------------------------------


@contextlib.contextmanager
def user_code(source: Source, what: str) -> Iterator[None]:
    """Run the user's code: their exception becomes one line naming it (exit 2), with their own traceback frames."""
    try:
        yield
    except ToolkitError:
        raise  # the toolkit's own line (a contract broken, a name missing): already one line
    except SyntaxError as error:
        filename = error.filename or (str(source.root / source.files[0]) if source.files else source.display)
        where = f"{filename}, line {error.lineno}" if error.lineno else filename
        raise UserCodeError(
            f"model '{source.display}': syntax error in {where}: {error.msg}. Fix: correct the file"
        ) from None
    except Exception as error:
        if type(error).__module__.split(".")[0] in TUNER_MODULES:
            raise  # the tuner's own signal through their training (a pruned trial), not their code failing
        mine = {str((source.root / name).resolve()) for name in source.files}
        frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename in mine]
        text = "".join(traceback.format_list(frames)) if frames else ""
        where = f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})" if frames else ""
        raise UserCodeError(
            f"model '{source.display}' raised {type(error).__name__} in its {what}{where}: {error}. "
            f"Fix: this is your model's code" + ("; its traceback is above" if text else ""),
            frames=text,
        ) from None


TUNER_MODULES = ("optuna", "optuna_integration")  # a pruned trial's TrialPruned passes through user_code as it is


_CLASSES: dict[tuple[str, str], type[Model]] = {}
NOTEBOOK = "<notebook>"  # the reference's first part for an object handed over in Python (a notebook's class)
_OBJECTS: dict[str, tuple[Source, Any]] = {}


def model_class(reference: str) -> type[Model]:
    """The Model class for a user's reference (imported once per source version in a process)."""
    source = resolve(reference)
    if reference in _OBJECTS:
        key, target = (reference, source.sha256), _OBJECTS[reference][1]
    else:
        key, target = (str(source.root / source.files[0]), source.sha256), None
    if key not in _CLASSES:
        loaded = target if target is not None else _load_target(source)
        adapted = _adapter(source, loaded)
        space = _search_space(source, loaded)
        if space is not None:
            adapted.search_space = classmethod(lambda cls, trial: _drawn(source, space, trial))  # type: ignore
        _CLASSES[key] = adapted
    return _CLASSES[key]


def _search_space(source: Source, target: Any) -> Callable[[Any], Any] | None:
    """The user's `search_space(trial)`: on their class, else beside NAME in its module (for `kaggle-digits tune`)."""
    own = getattr(target, "search_space", None) if inspect.isclass(target) else None
    if own is not None and getattr(own, "__func__", None) is not getattr(Model.search_space, "__func__", None):
        return own
    module = sys.modules.get(getattr(target, "__module__", "") or source.module)
    space = getattr(module, "search_space", None)
    return space if callable(space) else None


def _drawn(source: Source, space: Callable[[Any], Any], trial: Any) -> dict[str, Any]:
    with user_code(source, "search_space"):
        values = space(trial)
    if not isinstance(values, dict) or not all(isinstance(key, str) for key in values):
        raise UserCodeError(
            f"model '{source.display}': search_space(trial) returned a {type(values).__name__}, not a dict of "
            f"parameter names to values. Fix: return e.g. {{'learning_rate': trial.suggest_float('learning_rate', "
            f"1e-4, 1e-2, log=True)}}"
        )
    return values


def register_object(target: Any) -> str:
    """A model handed over as an object (a class or factory defined in a notebook): its reference, "<notebook>:Name".

    Its identity is its source as `inspect` reads it; where it cannot (a class typed into some consoles), its module
    and name alone, said in a warning: an edit to it then goes unseen by the ledger and the guards."""
    name = getattr(target, "__qualname__", "") or getattr(target, "__name__", "")
    if not callable(target) or not re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", name):
        raise UsageError(
            f"a model object must be a class or a function defined at the top of a module or notebook cell (got "
            f"{type(target).__name__} {name!r}). Fix: define it at the top level, or put it in a file and pass "
            f"'file.py:NAME'"
        )
    try:
        text = inspect.getsource(target).encode()
    except (OSError, TypeError):
        text = f"{getattr(target, '__module__', '')}.{name}".encode()
        log.warning(
            "model %s: its source cannot be read (inspect), so its identity is its name alone: an edit to it is not "
            "a new configuration. Fix: put it in a file and pass 'file.py:%s'",
            name,
            name,
        )
    reference = f"{NOTEBOOK}:{name}"
    source = Source(reference, reference, name, Path.cwd(), (), NOTEBOOK, hashlib.sha256(text).hexdigest())
    _OBJECTS[reference] = (source, target)
    return reference


_OURS: set[str] = set()  # the module names this door has executed: theirs to replace when the source changes


def _module_name(relative: str) -> str:
    return relative[: -len(".py")].replace("/", ".").removesuffix(".__init__")


def _load_target(source: Source) -> Any:
    if any(word in text for text in source.texts().values() for word in (b"keras", b"tensorflow")):
        lazy.keras()  # first, through the door that keeps TensorFlow's start-up lines off the console
    root = str(source.root)
    if root in sys.path:
        sys.path.remove(root)
    # The model's own folder first: its imports of files beside it resolve there, and so does unpickling a fitted
    # estimator whose classes live there (joblib records the module's name).
    sys.path.insert(0, root)
    names = [source.module if index == 0 else _module_name(name) for index, name in enumerate(source.files)]
    for name, relative in zip(names, source.files, strict=True):
        loaded = sys.modules.get(name)
        if loaded is None:
            continue
        here = Path(getattr(loaded, "__file__", "") or "").resolve() == (source.root / relative).resolve()
        if name not in _OURS and not here:
            raise UsageError(
                f"model '{source.display}': a module named '{name}' is already imported from "
                f"{getattr(loaded, '__file__', None) or 'elsewhere'}. Fix: rename {relative}"
            )
        del sys.modules[name]  # executed afresh below: the code as it is now (its hash says which)
    # Ours to replace later, with the packages a module reference imports on the way (a notebook may load another
    # user's file of the same name afterwards).
    _OURS.update(names, *(name.rsplit(".", depth)[0] for name in names for depth in range(1, name.count(".") + 1)))
    with user_code(source, "module"):
        if source.is_file:
            spec = importlib.util.spec_from_file_location(source.module, source.root / source.files[0])
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[source.module] = module  # a stable name: pickled estimators find their classes again
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(source.module, None)
                raise
        else:
            module = importlib.import_module(source.module)
    target: Any = module
    for part in source.attribute.split("."):
        if not hasattr(target, part):
            raise UsageError(
                f"model '{source.display}': {source.files[0]} has no '{source.attribute}'. Fix: check the name after "
                f"the colon (defined there: {', '.join(_public(module)) or 'nothing public'})"
            )
        target = getattr(target, part)
    return target


def _public(module) -> list[str]:
    return sorted(name for name, value in vars(module).items() if not name.startswith("_") and callable(value))[:12]


# --- the adapters -------------------------------------------------------------------------------------------


def _keyword_parameters(source: Source, target: Any) -> list[tuple[str, Any]]:
    """NAME's keyword parameters with their defaults: its -p parameters, typed by the defaults."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    found = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.default is parameter.empty:
            raise UserCodeError(
                f"model '{source.display}': parameter '{parameter.name}' has no default. Fix: give it one (every "
                f"parameter is a -p {parameter.name}=VALUE with a default)"
            )
        found.append((parameter.name, parameter.default))
    return found


def _params_class(name: str, parameters: list[tuple[str, Any]]) -> type:
    fields = [(key, type(value) if value is not None else Any, _default(value)) for key, value in parameters]
    return dataclasses.make_dataclass(f"{name}Params", fields)


def _default(value: Any) -> Any:
    if isinstance(value, (list, dict, set)):  # a mutable default: each Params gets its own copy
        return dataclasses.field(default_factory=lambda: type(value)(value))
    return dataclasses.field(default=value)


def _adapter(source: Source, target: Any) -> type[Model]:
    identity = {"name": source.display, "source": source}
    if inspect.isclass(target) and issubclass(target, Model):
        if not dataclasses.is_dataclass(getattr(target, "Params", None)):
            raise UserCodeError(
                f"model '{source.display}': {target.__name__} has no Params dataclass. Fix: declare its parameters as "
                f"a @dataclass named Params inside it (an empty one when it has none)"
            )
        return type(target.__name__, (target,), identity)
    if inspect.isclass(target):
        if not callable(getattr(target, "fit", None)):
            raise UserCodeError(
                f"model '{source.display}': {target.__name__} has no fit(X, y). Fix: give it fit and predict_proba (or "
                f"predict), return a keras.Model, or subclass kaggle_digits.models.Model"
            )
        parameters = _keyword_parameters(source, target)
        return type(
            "SklearnStyle",
            (SklearnStyleModel,),
            {**identity, "factory": staticmethod(target), "Params": _params_class("User", parameters)},
        )
    if not callable(target):
        raise UserCodeError(
            f"model '{source.display}': {source.attribute} is a {type(target).__name__}, not a class or a function. "
            f"Fix: name a class, a function that returns a model, or a keras.Model factory"
        )
    parameters = _keyword_parameters(source, target)
    with user_code(source, "constructor"):
        built = target(**dict(parameters))
    if _is_keras(built):
        # The cnn's training settings (schedule, augmentation, epochs, batch size, the GPU preset), less its own
        # architecture; a parameter of the user's own with the same name is theirs.
        mine = dict(parameters)
        loop = [(f.name, f.default) for f in dataclasses.fields(CNNParams) if f.name not in NETWORK_FIELDS]
        params = _params_class("UserKeras", parameters + [(key, value) for key, value in loop if key not in mine])
        return type(
            "KerasStyle",
            (KerasStyleModel,),
            {**identity, "factory": staticmethod(target), "Params": params, "user_parameters": tuple(mine)},
        )
    if callable(getattr(built, "fit", None)):
        return type(
            "SklearnStyle",
            (SklearnStyleModel,),
            {**identity, "factory": staticmethod(target), "Params": _params_class("User", parameters)},
        )
    raise UserCodeError(
        f"model '{source.display}': {source.attribute}() returned a {type(built).__name__}, which has no fit(X, y) and "
        f"is not a keras.Model. Fix: return an estimator with fit and predict_proba, or a keras.Model"
    )


NETWORK_FIELDS = ("filters", "dropout")  # the cnn's architecture: a user's network is their own


def _is_keras(value: Any) -> bool:
    keras = sys.modules.get("keras")  # a factory that built a Keras model has imported it
    return keras is not None and isinstance(value, keras.Model)


# --- what the toolkit runs: the user's model as a toolkit Model ------------------------------------------------


def scaled(images: np.ndarray) -> np.ndarray:
    """The contract's X: float32 (n, 784) in [0, 1]."""
    return images.reshape(len(images), config.NUM_PIXELS).astype(np.float32) / 255.0


def checked_probabilities(source: Source, probabilities: Any, rows: int, what: str = "predict_proba") -> np.ndarray:
    """The rules every user model's output keeps: (n, 10), finite, each row a distribution over the digits."""
    try:
        values = np.asarray(probabilities, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.asarray([])
    if values.shape != (rows, config.NUM_CLASSES):
        raise UserCodeError(
            f"model '{source.display}': {what} returned shape {values.shape} for {rows} images; expected ({rows}, 10), "
            f"one column per digit 0..9. Fix: return one probability per class (all ten classes, in order)"
        )
    if not np.isfinite(values).all():
        raise UserCodeError(
            f"model '{source.display}': {what} returned values that are not finite (NaN or inf). Fix: check the "
            f"model's arithmetic (a division by zero, a log of 0, a diverged training)"
        )
    sums = values.sum(axis=1)
    # 1e-2: a float16 softmax (mixed precision on a GPU) sums to 1 only within a few thousandths.
    if (values < -1e-3).any() or not np.allclose(sums, 1.0, atol=1e-2):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise UserCodeError(
            f"model '{source.display}': {what} rows are not probabilities (row {worst} sums to {sums[worst]:.4g}). "
            f"Fix: end with a softmax, or return predict_proba of a classifier"
        )
    return values.astype(np.float32)


class UserModel(Model):
    """A model of the user's: its source (identity) and the callable that builds it."""

    source: ClassVar[Source]
    factory: ClassVar[Any] = None


class SklearnStyleModel(UserModel):
    """fit(X, y) and predict_proba(X) (or predict) on scaled pixels; saved with joblib in the toolkit's own folder."""

    SEED_NAMES = ("random_state", "seed")

    def _build(self):
        kwargs = dataclasses.asdict(self.params)
        for name in self.SEED_NAMES:  # the toolkit's seed, where the model takes one and the user left it open
            if name in kwargs and kwargs[name] is None:
                kwargs[name] = self.seed
        with user_code(self.source, "constructor"):
            estimator = self.factory(**kwargs)
            try:
                found = estimator.get_params(deep=True) if callable(getattr(estimator, "get_params", None)) else {}
            except AttributeError:  # an __init__ parameter not stored under its name: check-model says which
                found = {}
            open_seeds = {key: self.seed for key, value in found.items() if key.split("__")[-1] == "random_state"}
            open_seeds = {key: seed for key, seed in open_seeds.items() if found[key] is None}
            if open_seeds:
                estimator.set_params(**open_seeds)
        if not callable(getattr(estimator, "fit", None)):
            raise UserCodeError(
                f"model '{self.source.display}': what {self.source.attribute} builds has no fit(X, y). Fix: give it "
                f"fit and predict_proba (or predict)"
            )
        return estimator

    def fit(self, images, labels, validation=None, verbose=True) -> History:
        estimator = self._build()
        with user_code(self.source, "fit"):
            estimator.fit(scaled(images), np.asarray(labels, dtype=np.int64))
        self.estimator = estimator
        return History()

    @property
    def fitted(self) -> bool:
        return getattr(self, "estimator", None) is not None

    def _predict_proba(self, images):
        x, estimator = scaled(images), self.estimator
        if callable(getattr(estimator, "predict_proba", None)):
            with user_code(self.source, "predict_proba"):
                probabilities = np.asarray(estimator.predict_proba(x))
            classes = getattr(estimator, "classes_", None)
            if (
                classes is not None
                and probabilities.ndim == 2
                and probabilities.shape[1] == len(classes) < config.NUM_CLASSES
                and set(np.asarray(classes).tolist()) <= set(range(config.NUM_CLASSES))
            ):  # a class the training rows lacked: its column is zero, as scikit-learn would have it
                full = np.zeros((len(x), config.NUM_CLASSES))
                full[:, np.asarray(classes, dtype=np.int64)] = probabilities
                probabilities = full
            return checked_probabilities(self.source, probabilities, len(x))
        with user_code(self.source, "predict"):
            labels = np.asarray(estimator.predict(x))
        if labels.shape != (len(x),) or not np.all(np.isin(labels, np.arange(config.NUM_CLASSES))):
            outside = [value for value in labels.ravel().tolist() if value not in range(config.NUM_CLASSES)][:3]
            raise UserCodeError(
                f"model '{self.source.display}': predict returned "
                + (f"labels outside 0..9 (e.g. {outside})" if outside else f"shape {labels.shape} for {len(x)} images")
                + ". Fix: return one label 0..9 per image"
            )
        return np.eye(config.NUM_CLASSES, dtype=np.float32)[labels.astype(np.int64)]

    def save(self, folder: Path) -> None:
        lazy_joblib().dump(self.estimator, folder / "model.joblib")

    def _load_weights(self, folder: Path) -> None:
        # Only ever the toolkit's own file (unpickling runs code): the model folder it wrote itself.
        self.estimator = lazy_joblib().load(folder / "model.joblib")


def lazy_joblib():
    import joblib

    return joblib


class KerasStyleModel(UserModel, CNNModel):
    """The user's network, trained by the cnn's loop: its schedule, augmentation, epochs and batch size (each a -p
    parameter), mixed precision and the GPU preset on a GPU. A network that arrives compiled keeps its compile."""

    user_parameters: ClassVar[tuple[str, ...]] = ()

    def network(self):
        kwargs = {name: getattr(self.params, name) for name in self.user_parameters}
        with user_code(self.source, "network"):
            model = self.factory(**kwargs)
        if not _is_keras(model):
            raise UserCodeError(
                f"model '{self.source.display}': {self.source.attribute}() returned a {type(model).__name__}, not a "
                f"keras.Model. Fix: return the model"
            )
        inputs, outputs = tuple(model.input_shape[1:]), model.output_shape
        if inputs != (config.IMAGE_SIDE, config.IMAGE_SIDE, 1) or outputs[-1] != config.NUM_CLASSES:
            raise UserCodeError(
                f"model '{self.source.display}': the network takes {inputs} and gives {tuple(outputs[1:])}; expected "
                f"input (28, 28, 1) and 10 outputs. Fix: keras.Input((28, 28, 1)) and a last Dense(10, "
                f'activation="softmax")'
            )
        return model

    def keeps_its_compile(self, model) -> bool:
        return bool(getattr(model, "compiled", False))

    def fit(self, images, labels, validation=None, verbose=True) -> History:
        with user_code(self.source, "training"):
            return super().fit(images, labels, validation, verbose)

    def _predict_proba(self, images):
        with user_code(self.source, "prediction"):
            probabilities = super()._predict_proba(images)
        return checked_probabilities(self.source, probabilities, len(images), "the network")
