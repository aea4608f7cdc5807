"""Small helpers every stage uses: atomic writes, UTC time stamps, version stamps, artifact folders."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout

from . import config

log = logging.getLogger("kaggle_digits")

# Whose versions go into every model config and submission sidecar (what produced this file).
STAMPED_PACKAGES = (
    "kaggle-digits",
    "numpy",
    "pandas",
    "scikit-learn",
    "tensorflow",
    "keras",
    "jax",  # Keras' other backends, where they are installed
    "torch",
    "kaggle",
    "kagglesdk",
)


_LOCKS: dict[str, FileLock] = {}


@contextlib.contextmanager
def exclusive(lock_path: Path, what: str) -> Iterator[None]:
    """Hold an OS-level lock on `lock_path` (released by the kernel if this process dies); when another
    process holds it, say so on one line and wait. Reentrant within a process (one lock object per path)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    # One lock object per path (a FileLock object is reentrant): kept here rather than through filelock's own
    # is_singleton, which older filelocks (a Kaggle image's, say) do not have; this runs in kernels too.
    key = str(lock_path.resolve())
    if key not in _LOCKS:
        _LOCKS[key] = FileLock(key)
    lock = _LOCKS[key]
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("%s: another kaggle-digits process is using it; waiting for it", what)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def alive(pid: Any) -> bool:
    """Whether a process of this machine with that id still runs."""
    try:
        os.kill(int(pid), 0)
        return True
    except PermissionError:
        return True  # it exists, under another user
    except (OSError, TypeError, ValueError):
        return False


def write_atomically(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file.

    The file gets the mode a plain open() would give it (the umask's), not the temporary file's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.chmod(handle.fileno(), 0o666 & ~_umask())
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_folder_atomically(folder: Path, fill: Callable[[Path], Any]) -> None:
    """Fill a temporary sibling folder, then swap it in: a killed run never leaves half a folder.

    The swap (two renames) happens under the folder's lock, after recover_folder: a run killed between
    the two renames left the previous folder aside, and it is put back before anything else."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # The process id in the name tells recover_folder whose staging folder it is (a dead run's is removed).
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.staging-{os.getpid()}-"))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 is not what a plain mkdir gives
    try:
        fill(staging)
        with exclusive(_swap_lock(folder), f"folder {folder}"):
            recover_folder(folder)
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            if folder.exists():
                folder.rename(old)
            staging.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def recover_folder(folder: Path) -> None:
    """Undo what a folder swap killed half-way left: the previous folder (.<name>.old-*) goes back when the
    folder is missing; leftover old folders, and staging folders of processes no longer running, go."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        return
    with exclusive(_swap_lock(folder), f"folder {folder}"):
        olds = sorted(folder.parent.glob(f".{folder.name}.old-*"), key=lambda path: path.stat().st_mtime, reverse=True)
        for old in olds:
            if not folder.exists():
                old.rename(folder)
                log.warning("recovered %s: a run was stopped while replacing it; the previous version is back", folder)
            else:
                shutil.rmtree(old, ignore_errors=True)
        for staging in folder.parent.glob(f".{folder.name}.staging-*"):
            owner = staging.name.rsplit(".staging-", 1)[1].split("-", 1)[0]
            if not alive(owner):
                shutil.rmtree(staging, ignore_errors=True)


def recover_folders(parent: Path) -> None:
    """recover_folder for every folder under `parent` that a killed swap left traces of (startup)."""
    if not parent.is_dir():
        return
    names = {path.name[1:].split(".old-")[0].split(".staging-")[0] for path in parent.glob(".*.old-*")}
    names |= {path.name[1:].split(".staging-")[0] for path in parent.glob(".*.staging-*")}
    for name in sorted(names):
        recover_folder(parent / name)


def _swap_lock(folder: Path) -> Path:
    """The lock of a folder's swap: in the checkout's lock folder (config.LOCKS_DIR), keyed by the folder's absolute
    path. Every process of the checkout finds it there, whatever its TMPDIR (cron's and a terminal's differ under
    macOS or pam_tmpdir), and nothing is added beside the folder (a models folder is copied and listed whole)."""
    return config.LOCKS_DIR / f"swap-{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32]}.lock"


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
