"""Paths, defaults and the descriptions of the Kaggle tasks the toolkit knows; the settings read and checked once."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

# Everything is relative to the working directory, so `make` targets and the CLI agree on where
# files go; KAGGLE_DIGITS_HOME moves the lot (tests use it to run in a temporary folder).
# Every KAGGLE_DIGITS_* environment variable is read here (and listed in the README's table). A bad value
# never stops an import (`--help` still works): it is noted, the default is used, and `cli.main` refuses
# to run with it, in one line naming the variable, its value and what is allowed, exit 2 (check_settings).
SETTING_ERRORS: list[str] = []


def _refuse(name: str, raw: str, allowed: str, default: object) -> None:
    SETTING_ERRORS.append(
        f"{name}={raw!r} is not allowed: {allowed}. Fix: correct it, or unset it for the default ({default})"
    )


def _folder(name: str, default: Path) -> Path:
    """A folder the toolkit writes under: it may not exist yet (it is made), but it may not be a file."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    if Path(raw).exists() and not Path(raw).is_dir():
        _refuse(name, raw, "a folder (this names a file)", default)
        return default
    return Path(raw)


def _program(name: str) -> str | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    if not (Path(raw).is_file() and os.access(raw, os.X_OK)):
        _refuse(name, raw, "the path of an executable interpreter, e.g. .venv-kaggle-image/bin/python", "unset")
        return None
    return raw


def _flag(name: str) -> bool:
    """On with 1, true, yes or on; off with 0, false, no, off or unset (KAGGLE_DIGITS_DEBUG=0 is off)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return False
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value not in ("0", "false", "no", "off"):
        _refuse(name, raw, "1, true, yes or on to turn it on; 0, false, no or off", "off")
    return False


HOME = _folder("KAGGLE_DIGITS_HOME", Path("."))
DATA_DIR = HOME / "data"
RAW_DIR = DATA_DIR / "raw"
CACHE_DIR = DATA_DIR / "cache"
MODELS_DIR = DATA_DIR / "models"
REPORTS_DIR = DATA_DIR / "reports"
LOGS_DIR = DATA_DIR / "logs"
TUNING_DIR = DATA_DIR / "tuning"  # the default study storage (a journal file) and each study's pictures
LOCKS_DIR = DATA_DIR / ".locks"  # the lock files that processes of one checkout share (a fetch's)
SUBMISSIONS_DIR = HOME / "submissions"
LEDGER_PATH = SUBMISSIONS_DIR / "ledger.csv"
LOCAL_TOKEN_PATH = DATA_DIR / "local-kaggle" / "token"  # serve-local's token of this start (mode 600)
# The full-size download beside the repository (the team's shared copy): what `make bench` and `make sample`
# read when no DATA is given and `make data` has not run.
SHARED_DOWNLOAD = Path("..") / "shared" / "data" / "digit-recognizer.zip"

# The embedded sample is package data: it is there after any install (editable or not), in any folder.
SAMPLE_ZIP = Path(str(resources.files("kaggle_digits") / "sample" / "digit-recognizer.zip"))


def _number(name: str, default: float, minimum: float, allowed: str, integer: bool = False) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        _refuse(name, raw, allowed, f"{default:g}")
        return default
    return value


# --remote kaggle: seconds between two status polls of a kernel session (Kaggle rate-limits hard polling).
KERNEL_POLL_SECONDS = _number("KAGGLE_DIGITS_KERNEL_POLL", 15.0, 0.01, "a positive number of seconds, e.g. 15")
# --remote kaggle: the interpreter the local server runs kernels with (`make test-kaggle-image` points it
# at a virtual environment with the Kaggle image's versions). Unset: the one running the server.
KERNEL_PYTHON = _program("KAGGLE_DIGITS_KERNEL_PYTHON")
DEBUG = _flag("KAGGLE_DIGITS_DEBUG")  # tracebacks for internal errors; TensorFlow's own log lines
DEMO_DIR = _folder("KAGGLE_DIGITS_DEMO_DIR", HOME / "data" / "demo")  # where `demo` runs its fresh competitor
# The Kaggle client's retry policy (kaggle_api/retries.py); tests make it quick. None: the policy's defaults.
RETRIES = int(_number("KAGGLE_DIGITS_RETRIES", 5, 0, "a whole number of retries, 0 or more, e.g. 5", integer=True))
BACKOFF = _number("KAGGLE_DIGITS_BACKOFF", 1.0, 0.0, "the first backoff in seconds, 0 or more, e.g. 1")
TIMEOUT = _number("KAGGLE_DIGITS_TIMEOUT", 60.0, 0.001, "a positive number of seconds per request, e.g. 60")
# A ledger row whose upload never showed on Kaggle's list is marked FAILED (its file may go up again) only
# this long after the upload began: Kaggle's list can lag behind a create. Tests set 0.
SETTLE_GRACE_SECONDS = _number("KAGGLE_DIGITS_SETTLE_GRACE", 300.0, 0.0, "a number of seconds, 0 or more, e.g. 300")

# --remote kaggle: the accelerators a kernel can ask for by name (`machineShape`; Kaggle's own list, in the
# official client's `kernels push --accelerator` help and Kaggle/kaggle-cli#1198, #1156). `enableGpu` alone
# gets a P100 on kaggle.com, which the current image's CUDA builds no longer run on; TPUs are left out:
# the toolkit's Keras training does not use one.
REMOTE_TIMEOUT_SECONDS = 4 * 3600.0  # --remote-timeout: how long a kernel may run (Kaggle stops it then too)
REMOTE_SESSIONS = 2  # --remote-sessions: the ensemble's member kernels in flight (kaggle.com allows 2 GPU sessions)
ACCELERATORS = {"NvidiaTeslaT4": "GPU T4 x2", "NvidiaL4": "GPU L4"}
DEFAULT_ACCELERATOR = "NvidiaTeslaT4"
# kaggle.com refuses a GPU push past its concurrent-session cap: the first wait is 4 polls (a minute), doubling up to
# this.
KERNEL_CAP_BACKOFF_MAX = 600.0
KERNEL_TITLE_MAX = 50  # kaggle.com has answered 500 for longer titles (the kernel's title is its slug)

# Seconds submit and the scheduled run wait for Kaggle's score before saying "still being scored".
SCORING_WAIT_SECONDS = 900.0

DEFAULT_TASK = "digit-recognizer"
DEFAULT_MODEL = "cnn"
DEFAULT_SEED = 42
DEFAULT_HOLDOUT = 0.1

# kaggle-digits tune: trials of one run when neither --trials nor --timeout is given; how long after its worker's
# last sign of life a RUNNING trial counts as failed (Optuna's heartbeat grace on a database; a worker that is gone
# from this machine is failed at once on the journal file); the database's connect timeout (an unreachable one is
# a line within seconds, not a hang).
TUNE_TRIALS = 20
STORAGE_VARIABLE = "KAGGLE_DIGITS_STORAGE"  # tune's --storage default (keeps a password off command lines)
TUNE_STALE_SECONDS = 120
TUNE_HEARTBEAT_SECONDS = 30
TUNE_CONNECT_TIMEOUT_SECONDS = 5
# Getting Started leaderboards (Digit Recognizer's) drop submissions older than two months, and a team
# with none newer; re-uploading the last scored file after 30 days keeps the place with a month to spare.
KEEP_ALIVE_DAYS = 30.0

NUM_PIXELS = 784
IMAGE_SIDE = 28
NUM_CLASSES = 10

DIGIT_NAMES = tuple(str(digit) for digit in range(10))
FASHION_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class Task:
    """Where a 28x28 CSV task comes from, how its files look and what a submission looks like."""

    name: str
    source: str  # "competition" or "dataset": which of the client's APIs serves it
    ref: str  # competition name, or owner/dataset-slug
    train_file: str = "train.csv"
    test_file: str = "test.csv"
    sample_submission_file: str | None = "sample_submission.csv"
    label_column: str = "label"
    first_pixel_index: int = 0  # Kaggle names pixels pixel0.. in competitions, pixel1.. in Fashion-MNIST
    test_id_column: str | None = None  # a column of ids in test.csv (Kannada-MNIST's `id`)
    test_labeled: bool = False  # the test file carries labels: evaluate, no submission
    submission_columns: tuple[str, str] | None = ("ImageId", "Label")
    class_names: tuple[str, ...] = DIGIT_NAMES
    description: str = ""
    extra_files: tuple[str, ...] = field(default=())  # shipped but unused (Dig-MNIST.csv, ubyte files)

    @property
    def pixel_columns(self) -> list[str]:
        return [f"pixel{index}" for index in range(self.first_pixel_index, self.first_pixel_index + NUM_PIXELS)]

    @property
    def train_header(self) -> list[str]:
        return [self.label_column, *self.pixel_columns]

    @property
    def test_header(self) -> list[str]:
        if self.test_labeled:
            return self.train_header
        if self.test_id_column:
            return [self.test_id_column, *self.pixel_columns]
        return self.pixel_columns

    @property
    def submits(self) -> bool:
        return self.submission_columns is not None

    @property
    def submission_header(self) -> tuple[str, str]:
        """The submission's two columns; only asked of a task that submits."""
        assert self.submission_columns is not None, f"task {self.name} has no submissions"
        return self.submission_columns

    @property
    def archive_name(self) -> str:
        """The zip name the client saves: the competition name, or the data set's slug."""
        return self.ref.split("/")[-1] + ".zip"


# Each layout was checked against what Kaggle ships (file names, column names, id columns).
BUILTIN_TASKS: dict[str, Task] = {
    "digit-recognizer": Task(
        name="digit-recognizer",
        source="competition",
        ref="digit-recognizer",
        description="Kaggle's Digit Recognizer (MNIST): submit ImageId,Label",
    ),
    "fashion-mnist": Task(
        name="fashion-mnist",
        source="dataset",
        ref="zalando-research/fashionmnist",
        train_file="fashion-mnist_train.csv",
        test_file="fashion-mnist_test.csv",
        sample_submission_file=None,
        first_pixel_index=1,
        test_labeled=True,
        submission_columns=None,
        class_names=FASHION_NAMES,
        description="Zalando's Fashion-MNIST data set: labeled train and test files, evaluate only",
        extra_files=(
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ),
    ),
    "kannada-mnist": Task(
        name="kannada-mnist",
        source="competition",
        ref="Kannada-MNIST",
        test_id_column="id",
        submission_columns=("id", "label"),
        description="Kannada-MNIST competition: test.csv has an id column; submit id,label",
        extra_files=("Dig-MNIST.csv",),
    ),
}
