"""Small helpers every stage uses: atomic writes, UTC time stamps, version stamps, artifact folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from . import config

# Whose versions go into every model config and submission sidecar (what produced this file).
STAMPED_PACKAGES = ("kaggle-digits", "numpy", "pandas", "scikit-learn", "tensorflow", "keras", "kaggle", "kagglesdk")


def write_atomically(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_folder_atomically(folder: Path, fill: Callable[[Path], Any]) -> None:
    """Fill a temporary sibling folder, then swap it in: a killed run never leaves half a folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.staging-"))
    try:
        fill(staging)
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
            os.rmdir(old)
            folder.rename(old)
        staging.rename(folder)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def versions() -> dict[str, str]:
    found = {}
    for package in STAMPED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def artifact_dir(base: Path, model_name: str, task_name: str = config.DEFAULT_TASK, variant: str = "") -> Path:
    """<base>/<model>[-<task>][-<variant>]: a model's reports (config.REPORTS_DIR) or weights (config.MODELS_DIR).

    The default task keeps the bare model name, so data/models/cnn is the digit recognizer's cnn;
    `variant` names a second report of the same model (evaluate's, beside validate's).
    """
    suffix = "" if task_name == config.DEFAULT_TASK else f"-{task_name}"
    return base / f"{model_name}{suffix}{f'-{variant}' if variant else ''}"
