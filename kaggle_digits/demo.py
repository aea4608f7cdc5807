"""`kaggle-digits demo` (`make demo`): the whole `make submit` flow, offline, on the embedded sample.

Starts the local Kaggle-compatible server on 127.0.0.1:7777, then runs `kaggle-digits submit` in a
fresh folder (./data/demo/) with the official client pointed at it (KAGGLE_API_ENVIRONMENT=TEST) and
the token the server made at its start, so no Kaggle account, credentials or network are needed. Your own Kaggle
credentials are neither read nor sent. It works in any folder: the sample is package data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import config, local_kaggle
from .errors import UsageError


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


MARKER = ".kaggle-digits-demo"  # written in every folder the demo makes: the only kind it ever deletes


def fresh_folder(workdir: Path) -> None:
    """A fresh competitor each time (no ledger, no cached model): the demo's previous folder is replaced,
    but only a folder the demo made (it holds MARKER). Anything else is left alone, with one line saying so."""
    if workdir.exists() or workdir.is_symlink():
        if workdir.is_symlink() or not workdir.is_dir() or not (workdir / MARKER).is_file():
            raise UsageError(
                f"the demo folder {workdir} exists and was not made by the demo (no {MARKER} in it); nothing was "
                f"deleted. "
                f"Fix: point KAGGLE_DIGITS_DEMO_DIR at a new folder, or remove {workdir} yourself"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by 'kaggle-digits demo', which deletes this folder on its next run\n")


def run(submit_args: list[str]) -> int:
    """Returns `submit`'s exit code (then `leaderboard`'s); a server that cannot start raises (the CLI says so)."""
    workdir = config.DEMO_DIR
    fresh_folder(workdir)
    start = time.perf_counter()
    server = local_kaggle.serve_builtin(port=local_kaggle.DEFAULT_PORT)
    print(
        f"demo: local Kaggle server on http://127.0.0.1:{server.port} (competition digit-recognizer, from the "
        f"embedded sample)",
        flush=True,
    )
    environment = {
        **os.environ,
        "KAGGLE_API_ENVIRONMENT": "TEST",
        "KAGGLE_API_TOKEN": server.state.token,  # this start's secret, handed to the server's own child only
        "KAGGLE_CONFIG_DIR": str(workdir.resolve() / ".kaggle"),  # never the user's real ~/.kaggle
        # REMOTE=kaggle: the local server's kernels answer at once; no need to poll as gently as kaggle.com.
        "KAGGLE_DIGITS_KERNEL_POLL": os.environ.get("KAGGLE_DIGITS_KERNEL_POLL", "1"),
    }
    environment.pop("KAGGLE_USERNAME", None)
    environment.pop("KAGGLE_KEY", None)
    environment.pop("KAGGLE_DIGITS_HOME", None)  # the demo's own folder is its home
    command = [sys.executable, "-m", "kaggle_digits", "submit", *submit_args]
    print(f"demo: running 'kaggle-digits submit {' '.join(submit_args)}' in {_shown(workdir)}/", flush=True)
    try:
        code = subprocess.call(command, cwd=workdir, env=environment, stdin=subprocess.DEVNULL)
        if code == 0 and "--no-upload" not in submit_args:
            # Where that score stands on the server's public leaderboard (synthetic rivals, leak plateau and all).
            print("demo: running 'kaggle-digits leaderboard'", flush=True)
            board = [sys.executable, "-m", "kaggle_digits", "leaderboard", "-q"]
            code = subprocess.call(board, cwd=workdir, env=environment, stdin=subprocess.DEVNULL)
    finally:
        server.stop()
    took = time.perf_counter() - start
    if code == 0:
        print(f"demo: done in {took:.0f} s; files under {_shown(workdir)}/ (submissions/, data/reports/)")
    else:
        print(f"demo: 'kaggle-digits submit' exited with {code} after {took:.0f} s", file=sys.stderr)
    return code
