"""`kaggle-digits demo` (`make demo`): the whole `make submit` flow, offline, on the embedded sample.

Starts the local Kaggle-compatible server on 127.0.0.1:7777, then runs `kaggle-digits submit` in a
fresh folder (./data/demo/) with the official client pointed at it (KAGGLE_API_ENVIRONMENT=TEST) and
the server's demo token, so no Kaggle account, credentials or network are needed. Your own Kaggle
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


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run(submit_args: list[str]) -> int:
    """Returns `submit`'s own exit code; a server that cannot start raises (the CLI reports it)."""
    workdir = config.DEMO_DIR
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh competitor each time: no ledger, no cached model
    workdir.mkdir(parents=True)
    start = time.perf_counter()
    server = local_kaggle.serve_builtin(port=local_kaggle.DEFAULT_PORT)
    print(
        f"demo: local Kaggle server on http://127.0.0.1:{server.port} (competition digit-recognizer, from the embedded sample)", flush=True
    )
    environment = {
        **os.environ,
        "KAGGLE_API_ENVIRONMENT": "TEST",
        "KAGGLE_API_TOKEN": local_kaggle.DEMO_TOKEN,
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
    finally:
        server.stop()
    took = time.perf_counter() - start
    if code == 0:
        print(f"demo: done in {took:.0f} s; files under {_shown(workdir)}/ (submissions/, data/reports/)")
    else:
        print(f"demo: 'kaggle-digits submit' exited with {code} after {took:.0f} s", file=sys.stderr)
    return code
