"""`make demo`: the whole `make submit` flow, offline, on the embedded sample.

Starts the local Kaggle-compatible server on 127.0.0.1:7777, then runs `kaggle-digits submit` in a
fresh folder (data/demo/) with the official client pointed at it (KAGGLE_API_ENVIRONMENT=TEST) and
the server's demo token, so no Kaggle account, credentials or network are needed. Your own Kaggle
credentials are neither read nor sent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import config, local_kaggle
from .errors import ToolkitError


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(config.REPO_ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    workdir = Path(os.environ.get("KAGGLE_DIGITS_DEMO_DIR") or config.REPO_ROOT / "data" / "demo")
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh competitor each time: no ledger, no cached model
    workdir.mkdir(parents=True)
    start = time.perf_counter()
    try:
        server = local_kaggle.serve_builtin(port=local_kaggle.DEFAULT_PORT)
    except ToolkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(f"demo: local Kaggle server on http://127.0.0.1:{server.port} (competition digit-recognizer, from the embedded sample)", flush=True)
    environment = {
        **os.environ,
        "KAGGLE_API_ENVIRONMENT": "TEST",
        "KAGGLE_API_TOKEN": local_kaggle.DEMO_TOKEN,
        "KAGGLE_CONFIG_DIR": str(workdir / ".kaggle"),  # never the user's real ~/.kaggle
        # REMOTE=kaggle: the local server's kernels answer at once; no need to poll as gently as kaggle.com.
        "KAGGLE_DIGITS_KERNEL_POLL": os.environ.get("KAGGLE_DIGITS_KERNEL_POLL", "1"),
    }
    environment.pop("KAGGLE_USERNAME", None)
    environment.pop("KAGGLE_KEY", None)
    command = [sys.executable, "-m", "kaggle_digits", "submit", *extra]
    print(f"demo: running 'kaggle-digits submit {' '.join(extra)}' in {_shown(workdir)}/", flush=True)
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


if __name__ == "__main__":
    sys.exit(main())
