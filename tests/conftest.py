"""Shared fixtures: the embedded sample, Kaggle-layout folders made from it, and a CLI runner."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kaggle_digits import config, data, layout, local_kaggle

REPO = Path(__file__).resolve().parent.parent
SAMPLE_ZIP = config.SAMPLE_ZIP
DIGITS = config.BUILTIN_TASKS["digit-recognizer"]
# The local server accepts only a secret made at its start; the tests' servers take these, made afresh for
# each test session (nothing published), so a client in a subprocess can be handed them beforehand.
TEST_TOKEN = local_kaggle.new_token()
TEST_KEY = secrets.token_hex(20)
SECRETS = {"token": TEST_TOKEN, "key": TEST_KEY}


def pytest_configure(config):
    """A shell that starts a job in the background (`make test &`, nohup, some CI runners) starts it with SIGINT
    ignored, and its children inherit that: the tests' Ctrl-C to a CLI process would then do nothing. A handler
    here (not an ignore) means every child starts with the default, as from a terminal."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def sample():
    """The embedded sample, parsed once (no cache written)."""
    return data.load(SAMPLE_ZIP, DIGITS, use_cache=False)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder, as a user's checkout would: data/, submissions/ are created there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def scored(server, timeout: float = 30) -> None:
    """Until the server has scored every submission it holds (each is PENDING until its ready_at)."""
    deadline = time.monotonic() + timeout
    while any(time.monotonic() < item.ready_at for item in server.state.submissions) and time.monotonic() < deadline:
        time.sleep(0.05)


def write_competition(
    folder: Path, sample, n_train: int = 600, n_test: int = 200, task=DIGITS, as_zip: bool = False
) -> Path:
    """A small Kaggle-layout competition drawn from the sample's labeled rows."""
    files = layout.task_files(
        task,
        sample.train_images[:n_train],
        sample.train_labels[:n_train],
        sample.train_images[n_train : n_train + n_test],
        sample.train_labels[n_train : n_train + n_test],
    )
    folder.mkdir(parents=True, exist_ok=True)
    if as_zip:
        path = folder / task.archive_name
        layout.write_zip(path, files)
        return path
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture
def small_competition(workdir, sample):
    return write_competition(workdir / "comp", sample)


def run_cli(
    *args: str, cwd: Path, env: dict | None = None, timeout: float = 300, stdin=subprocess.DEVNULL
) -> subprocess.CompletedProcess:
    """The command a user types, in a fresh process: real exit codes, real output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "kaggle_digits", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=stdin,
    )


# The KAGGLE_DIGITS_* settings that config reads once, at import: an in-process run sets them on config instead.
SETTINGS_READ_AT_IMPORT = {
    "KAGGLE_DIGITS_RETRIES": ("RETRIES", int),
    "KAGGLE_DIGITS_BACKOFF": ("BACKOFF", float),
    "KAGGLE_DIGITS_TIMEOUT": ("TIMEOUT", float),
    "KAGGLE_DIGITS_SETTLE_GRACE": ("SETTLE_GRACE_SECONDS", float),
    "KAGGLE_DIGITS_KERNEL_POLL": ("KERNEL_POLL_SECONDS", float),
}


@pytest.fixture
def cli_run(monkeypatch, capsys):
    """The command a user types, run in this process (`cli.main`, the one door to exit codes): what `run_cli`
    checks, without a new interpreter and its imports each time. The environment, the working folder and the
    settings are this call's only; stdout and stderr are this call's. Use `run_cli` for what needs a process
    of its own: a kill, two at once, cron's bare environment, BLAS threads, a setting refused at import."""
    from kaggle_digits import cli

    def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            patch.chdir(cwd)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
                if name in SETTINGS_READ_AT_IMPORT:
                    attribute, kind = SETTINGS_READ_AT_IMPORT[name]
                    patch.setattr(config, attribute, kind(value))
                else:
                    assert not name.startswith("KAGGLE_DIGITS_"), f"{name} is read at import: use run_cli"
            try:
                code = cli.main(list(args))
            except SystemExit as refused:  # argparse's own refusals
                code = refused.code if isinstance(refused.code, int) else 2
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["kaggle-digits", *args], code, out, err)

    return run


@pytest.fixture
def kd(cli_run):
    """`cli_run`, checking every time that no secret appears in what it printed or wrote (the folder the
    client's own credentials live in aside)."""

    def run(*args: str, cwd: Path, env: dict, secret: str = TEST_TOKEN, secrets: tuple[str, ...] = ()):
        result = cli_run(*args, cwd=cwd, env=env)
        for hidden in secrets or (secret,):
            assert hidden not in result.stdout + result.stderr
            for path in cwd.rglob("*"):
                if path.is_file() and path.suffix in {".csv", ".json", ".log", ".txt"}:
                    if "kaggle-config" not in path.parts:
                        assert hidden not in path.read_text(errors="ignore"), path
        return result

    return run


def official_kaggle(*args: str, env: dict, cwd: Path) -> str:
    """The official `kaggle` CLI of this venv (it comes with the test extra), run to success: its stdout."""
    kaggle_cli = shutil.which("kaggle", path=str(Path(sys.executable).parent))
    assert kaggle_cli, "the official client's CLI is installed with the test extra"
    result = subprocess.run(
        [kaggle_cli, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def read_submission(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    assert lines[0] == "ImageId,Label"
    return np.array([[int(v) for v in line.split(",")] for line in lines[1:]])


@pytest.fixture
def kaggle_env(tmp_path_factory):
    """The official client pointed at the local server with the demo token, and none of this machine's own
    credentials in reach: HOME (~/.kaggle/access_token, credentials.json), the config folder and XDG all
    point into empty folders of the test's own, outside the working folder."""
    outside = tmp_path_factory.mktemp("kaggle-home")
    (outside / "home").mkdir()
    (outside / "kaggle-config").mkdir()
    return {
        "HOME": str(outside / "home"),
        "XDG_CONFIG_HOME": str(outside / "xdg"),
        "KAGGLE_CONFIG_DIR": str(outside / "kaggle-config"),
        "KAGGLE_API_ENVIRONMENT": "TEST",
        "KAGGLE_API_TOKEN": TEST_TOKEN,
        "KAGGLE_USERNAME": "",
        "KAGGLE_KEY": "",
        "KAGGLE_DIGITS_BACKOFF": "0.05",
        "KAGGLE_DIGITS_SETTLE_GRACE": "0",  # a rerun settles a dead run's open row at once (the default waits 300 s)
    }


@pytest.fixture
def server():
    """The local Kaggle server on 127.0.0.1:7777 with a small digit-recognizer competition from the sample."""
    competition = local_kaggle.competition_from_labeled(SAMPLE_ZIP, max_rows=1500)
    with local_kaggle.LocalKaggleServer([competition], scoring_delay=0.2, **SECRETS) as running:
        yield running
    # Whatever the test did, no credential ever reached the storage host.
    assert running.state.storage_auth_seen == [], running.state.storage_auth_seen


@pytest.fixture
def local_client(monkeypatch):
    """The toolkit's Kaggle client in this process, on the local server, as the website or another machine
    would act beside a command under test: `local_client()` for digit-recognizer, `local_client(task)` else."""
    from kaggle_digits.kaggle_api import Credentials, Kaggle, RetryPolicy

    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")  # kagglesdk reads it when the client is built

    def client(task=DIGITS) -> Kaggle:
        return Kaggle(task, Credentials(source="test", token=TEST_TOKEN), RetryPolicy(backoff=0.05))

    return client
