"""Kernels (Kaggle's notebooks and scripts) as the official client meets them, run here in subprocesses.

What kaggle.com does and this mirrors (read from kagglesdk, the official CLI and its users' issues):

- SaveKernel (`kaggle kernels push`) is not idempotent: every call is a new version with a new
  session, and the versions before it keep running (Kaggle/kaggle-cli#388). Bad competition sources
  come back in `invalidCompetitionSources`, not as an HTTP error.
- GetKernelSessionStatus and ListKernelSessionOutput act on the latest version unless given
  `versionLabel` as `v<N>`; a bare `<N>` is 404 (Kaggle/kaggle-cli#1200). For a moment after a push,
  the latest version's status is still the previous session's (the stale-session trap
  Kaggle/kaggle-cli#1177 guards against): a client must pin the version it pushed.
- Output files are listed with signed URLs on the storage host, never served by the API host; the
  log is a JSON list of `{"stream_name", "time", "data"}` entries.
- CancelKernelSession takes a kernel session id that no public response carries; DeleteKernel
  (client 1.8+) removes the kernel and stops its sessions.
- GetAcceleratorQuotaStatistics reports the weekly GPU quota: time used, time reserved (held by the
  sessions running now), time allowed, refresh time. A GPU push past it is refused.
- The accelerator is `machineShape` (NvidiaTeslaT4 = T4 x2, ...); `enableGpu` alone gets a P100
  (a server bug the maintainers confirmed, Kaggle/kaggle-cli#821). Each session records its shape.
- At most 2 batch GPU sessions of an account run at once; a GPU push past that is refused with HTTP
  200 and `error` = "Maximum batch GPU session count of 2 reached." (Kaggle/kaggle-cli#185), not queued.
- Titles over 50 characters have been answered with 500; a status or output asked of a kernel the
  account does not have is 403, not 404 (Kaggle/kaggle-cli#951). GetKernel answers the kernel's
  metadata with `currentVersionNumber`; ListKernels lists an account's kernels, paged.

A session runs the pushed script with Kaggle's layout: the competition under `../input/<name>/`
(read-only data), the working folder `./` (what is kept as output). Internet off is enforced by
pointing every proxy variable at a closed port; the toolkit's own package is hidden from the
script, since a Kaggle image does not have it: a pushed script must carry what it needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .. import config
from .plumbing import State

# Kaggle's limit for a batch session (CPU or GPU); `sessionTimeoutSeconds` can shorten it.
SESSION_LIMIT_SECONDS = 12 * 3600
GPU_QUOTA_SECONDS = 30 * 3600  # a week's GPU quota for a verified account
TITLE_MAX = 50
GPU_SESSION_CAP_ERROR = "Maximum batch GPU session count of {cap} reached."
# Kaggle's accelerator names (kagglesdk's machine_shape, the CLI's --accelerator help); P100 is what
# `enableGpu` without a shape gets. TPUs are accepted and run as any other session here.
MACHINE_SHAPES = ("NvidiaTeslaT4", "NvidiaTeslaP100", "NvidiaL4", "TpuV5E8", "Tpu1VmV38")
OUTPUT_BUCKET = "kaggle-kernel-output"
# The only variables of the server's environment a session gets (the rest, the user's, stays out).
KERNEL_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "TF_CPP_MIN_LOG_LEVEL")
_VERSION_LABEL = re.compile(r"^v(\d+)$")
# Runs before the pushed script: the toolkit's package is not on a Kaggle image, so it is not here either.
_BOOTSTRAP = """
import importlib.machinery, runpy, sys
image_paths = list(sys.path)
class NotOnKaggle:
    def find_spec(self, name, path=None, target=None):
        if name != "kaggle_digits" and not name.startswith("kaggle_digits."):
            return None
        # Only a copy the script brought (a path it added) is found; the one installed here is not.
        where = path if path is not None else [entry for entry in sys.path if entry not in image_paths]
        spec = importlib.machinery.PathFinder.find_spec(name, where)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed on a Kaggle image)")
        return spec
sys.meta_path.insert(0, NotOnKaggle())
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass
class KernelSession:
    id: int
    version: int
    status: str = "QUEUED"  # then RUNNING, and COMPLETE, ERROR or CANCEL_ACKNOWLEDGED
    failure_message: str = ""
    root: Path | None = None  # holds input/ and working/, as /kaggle does
    log: list[dict[str, Any]] = field(default_factory=list)
    gpu: bool = False
    machine_shape: str = ""  # the accelerator the session got ("" for the CPU)
    started: float | None = None
    finished: float | None = None
    process: subprocess.Popen | None = None
    pushed_at: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.status in ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")


@dataclass
class Kernel:
    owner: str
    slug: str
    title: str
    sessions: list[KernelSession] = field(default_factory=list)  # one per version, oldest first


@dataclass
class KernelSettings:
    """How this local Kaggle runs kernels; tests shrink the delays and the quota."""

    queue_delay: float = 0.3  # QUEUED this long before the script starts
    stale_status_delay: float = 0.5  # the latest version reads as the previous session for this long
    gpu_quota_seconds: float | None = (
        GPU_QUOTA_SECONDS  # None: the answer carries no gpuQuota (an account Kaggle says nothing of)
    )
    gpu_used_seconds: float = 0.0  # sessions that ended before this server started (a test sets it)
    gpu_reserved_seconds: float = 0.0  # held by sessions of the account running elsewhere (a notebook; a test sets it)
    concurrent_gpu_sessions: int = 2  # a GPU push past this many running sessions is refused
    # The interpreter standing in for the Kaggle image (`make test-kaggle-image` sets one with its versions).
    python: str = field(default_factory=lambda: config.KERNEL_PYTHON or sys.executable)


def _utc(seconds_from_now: float = 0.0) -> str:
    moment = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=seconds_from_now)
    return moment.isoformat(timespec="milliseconds") + "Z"


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"  # protobuf's Duration in JSON, as kagglesdk's TimeDeltaSerializer reads it


class KernelRunner:
    """The kernels of one server: versions, sessions and their subprocesses."""

    def __init__(self, state: State, settings: KernelSettings):
        self.state, self.settings = state, settings
        self.kernels: dict[tuple[str, str], Kernel] = {}
        self.sessions: dict[int, KernelSession] = {}
        self.scratch = Path(tempfile.mkdtemp(prefix="local-kaggle-kernels-"))
        self.lock = threading.Lock()

    # --- quota ---------------------------------------------------------------------------------
    def gpu_seconds(self) -> tuple[float, float]:
        """(used, reserved): sessions that ended, and the time held by those running now."""
        now = time.monotonic()
        used = self.settings.gpu_used_seconds
        reserved = self.settings.gpu_reserved_seconds
        for session in self.sessions.values():
            if session.gpu and session.started is not None:
                if session.finished is not None:
                    used += session.finished - session.started
                else:
                    reserved += now - session.started
        return used, reserved

    def quota(self) -> dict[str, Any]:
        used, reserved = self.gpu_seconds()
        tpu = {"timeUsed": _duration(0), "totalTimeAllowed": _duration(20 * 3600)}
        if self.settings.gpu_quota_seconds is None:
            return {"quotaRefreshTime": _utc(3 * 24 * 3600), "tpuQuota": tpu}
        return {
            "quotaRefreshTime": _utc(3 * 24 * 3600),
            "gpuQuota": {
                "timeUsed": _duration(used),
                "timeReserved": _duration(reserved),
                "totalTimeAllowed": _duration(self.settings.gpu_quota_seconds),
                "minimumTimeAllowed": _duration(self.settings.gpu_quota_seconds),
                "hasEverRun": used + reserved > 0,
            },
            "tpuQuota": tpu,
        }

    # --- push ----------------------------------------------------------------------------------
    def save(self, request: dict[str, Any], user: str) -> tuple[int, dict[str, Any]]:
        slug = request.get("slug") or ""
        owner, _, name = slug.partition("/")
        if not owner or not name or "/" in name:
            return 400, {"code": 400, "message": f"Invalid kernel slug '{slug}': expected <owner>/<kernel-slug>"}
        if owner != user:
            return 403, {"code": 403, "message": f"Permission 'kernels.create' was denied for '{owner}'"}
        if (request.get("language") or "") != "python" or (request.get("kernelType") or "") != "script":
            # kaggle.com runs notebooks and R too; this server runs what the toolkit pushes, and says so.
            return 400, {
                "code": 400,
                "message": "The local Kaggle server runs Python scripts only (language python, kernel_type script)",
            }
        competitions: list[str] = []
        invalid: list[str] = []
        for source in request.get("competitionDataSources") or []:
            competition = self.state.competitions.get(source)
            (competitions if competition is not None and not competition.is_dataset else invalid).append(source)
        try:  # checked before anything is made: a bad value is a 400, never a session left QUEUED
            timeout = min(int(request.get("sessionTimeoutSeconds") or SESSION_LIMIT_SECONDS), SESSION_LIMIT_SECONDS)
        except (TypeError, ValueError):
            return 400, {
                "code": 400,
                "message": f"Invalid sessionTimeoutSeconds {request.get('sessionTimeoutSeconds')!r}",
            }
        if timeout <= 0:
            return 400, {"code": 400, "message": f"Invalid sessionTimeoutSeconds {timeout}"}
        title = request.get("newTitle") or name
        if len(title) > TITLE_MAX:
            return 500, {"code": 500, "message": "Internal error"}  # what kaggle.com has answered for a long title
        shape = request.get("machineShape") or ""
        if shape and shape not in MACHINE_SHAPES:
            return 400, {"code": 400, "message": f"Unknown machine shape '{shape}'"}
        if not shape and request.get("enableGpu"):
            shape = "NvidiaTeslaP100"  # kaggle.com's default GPU for enableGpu alone (Kaggle/kaggle-cli#821)
        gpu = shape.startswith("Nvidia")
        with self.lock:  # the cap and the quota are checked and the session made in one step
            if gpu:
                used, reserved = self.gpu_seconds()
                allowed = self.settings.gpu_quota_seconds
                if allowed is not None and used + reserved >= allowed:
                    return 200, {
                        "ref": "",
                        "url": "",
                        "error": f"You have exceeded your weekly GPU quota. It resets at "
                        f"{self.quota()['quotaRefreshTime']}.",
                    }
                if self._gpu_sessions_in_flight() >= self.settings.concurrent_gpu_sessions:
                    return 200, {
                        "ref": "",
                        "url": "",
                        "error": GPU_SESSION_CAP_ERROR.format(cap=self.settings.concurrent_gpu_sessions),
                    }
            kernel = self.kernels.setdefault((owner, name), Kernel(owner, name, title))
            session = KernelSession(
                id=700000 + len(self.sessions) + 1, version=len(kernel.sessions) + 1, gpu=gpu, machine_shape=shape
            )
            kernel.sessions.append(session)
            self.sessions[session.id] = session
        quick_save = request.get("kernelExecutionType") == "QUICK_SAVE"
        if quick_save:
            session.status, session.finished = "COMPLETE", time.monotonic()
        else:
            root = self.scratch / f"session-{session.id}"
            (root / "working").mkdir(parents=True)
            for competition_name in competitions:
                folder = root / "input" / competition_name
                folder.mkdir(parents=True)
                for file_name, content in self.state.competitions[competition_name].files.items():
                    (folder / file_name).write_bytes(content)
            (root / "script.py").write_text(request.get("text") or "")
            session.root = root
            internet = request.get("enableInternet")
            threading.Thread(
                target=self._run,
                args=(session, timeout, internet is None or bool(internet)),
                name=f"kernel-{session.id}",
                daemon=True,
            ).start()
        url = f"https://www.kaggle.com/code/{owner}/{name}"
        return 200, {
            "ref": f"/code/{owner}/{name}",
            "url": url,
            "versionNumber": session.version,
            "kernelId": 400000 + len(self.kernels),
            "invalidCompetitionSources": invalid,
            "invalidDatasetSources": [],
            "invalidKernelSources": [],
            "invalidTags": [],
        }

    # --- a session -----------------------------------------------------------------------------
    def _run(self, session: KernelSession, timeout: int, internet: bool) -> None:
        time.sleep(self.settings.queue_delay)
        if session.done:  # cancelled or deleted while queued
            return
        assert session.root is not None, "SaveKernel made its folders"
        # A minimal environment, as a fresh Kaggle session has: nothing of the user's (tokens, paths, proxies)
        # reaches code that came over the wire. What is kept is what makes the interpreter run here.
        env = {key: value for key, value in os.environ.items() if key in KERNEL_ENVIRONMENT}
        env.update(
            {
                "HOME": str(session.root),
                "KAGGLE_KERNEL_RUN_TYPE": "Batch",
                "KAGGLE_URL_BASE": "https://www.kaggle.com",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if not internet:
            closed = "http://127.0.0.1:9"  # the discard port, closed: every request through the proxy fails
            env.update(
                {
                    "http_proxy": closed,
                    "https_proxy": closed,
                    "HTTP_PROXY": closed,
                    "HTTPS_PROXY": closed,
                    "no_proxy": "",
                }
            )
        if not session.gpu:
            env["CUDA_VISIBLE_DEVICES"] = ""  # no accelerator was asked for
        with self.lock:
            session.status, session.started = "RUNNING", time.monotonic()
            session.process = subprocess.Popen(
                [self.settings.python, "-c", _BOOTSTRAP, str(session.root / "script.py")],
                cwd=session.root / "working",
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        readers = [
            threading.Thread(target=self._read, args=(session, stream, name), daemon=True)
            for stream, name in ((session.process.stdout, "stdout"), (session.process.stderr, "stderr"))
        ]
        for reader in readers:
            reader.start()
        try:
            code = session.process.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            session.process.kill()
            code, timed_out = session.process.wait(), True
        for reader in readers:
            reader.join(timeout=5)
        with self.lock:
            session.finished = time.monotonic()
            if session.status in ("CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"):  # cancelled, or its kernel deleted
                session.status = "CANCEL_ACKNOWLEDGED"
            elif timed_out:
                session.status, session.failure_message = (
                    "ERROR",
                    f"Your notebook exceeded its {timeout}-second run-time limit",
                )
            elif code != 0:
                session.status, session.failure_message = (
                    "ERROR",
                    f"Your notebook hit an unhandled error while executing (exit code {code})",
                )
            else:
                session.status = "COMPLETE"

    def _read(self, session: KernelSession, stream, name: str) -> None:
        for line in stream:
            session.log.append(
                {"stream_name": name, "time": round(time.monotonic() - (session.started or 0), 3), "data": line}
            )

    def _gpu_sessions_in_flight(self) -> int:
        return sum(1 for session in self.sessions.values() if session.gpu and not session.done)

    def cancel(self, session_id: int) -> str:
        session = self.sessions.get(session_id)
        if session is None:
            return f"Kernel session {session_id} not found"
        with self.lock:
            if session.done:
                return ""
            if session.process is None:
                session.status, session.finished = "CANCEL_ACKNOWLEDGED", time.monotonic()
                return ""
            session.status = "CANCEL_REQUESTED"
            session.process.terminate()
        return ""

    def delete(self, request: dict[str, Any], user: str) -> tuple[int, str]:
        """DeleteKernel: the kernel and its versions go; a session still running stops."""
        owner, name = request.get("userName") or "", request.get("kernelSlug") or ""
        with self.lock:
            kernel = self.kernels.get((owner, name))
            if kernel is None or owner != user:
                return 403, "Permission 'kernels.delete' was denied"
            del self.kernels[(owner, name)]
            for session in kernel.sessions:
                if not session.done:
                    session.status, session.finished = "CANCEL_ACKNOWLEDGED", time.monotonic()
                    if session.process is not None:
                        session.process.kill()
        return 200, ""

    # --- reading back --------------------------------------------------------------------------
    def kernel(self, request: dict[str, Any], user: str) -> Kernel | None:
        """The kernel a request names, if the caller may see it (private kernels: their owner only)."""
        owner, name = request.get("userName") or "", request.get("kernelSlug") or ""
        kernel = self.kernels.get((owner, name))
        return kernel if kernel is not None and kernel.sessions and owner == user else None

    def metadata(self, kernel: Kernel) -> dict[str, Any]:
        latest = kernel.sessions[-1]
        return {
            "id": 400000 + list(self.kernels).index((kernel.owner, kernel.slug)) + 1,
            "ref": f"{kernel.owner}/{kernel.slug}",
            "title": kernel.title,
            "author": kernel.owner,
            "slug": kernel.slug,
            "language": "python",
            "kernelType": "script",
            "isPrivate": True,
            "enableGpu": latest.gpu,
            "enableInternet": False,
            "currentVersionNumber": latest.version,
            "machineShape": latest.machine_shape,
        }

    def find(self, request: dict[str, Any], user: str) -> tuple[int, str, KernelSession | None]:
        owner, name = request.get("userName") or "", request.get("kernelSlug") or ""
        kernel = self.kernel(request, user)
        if kernel is None:
            # kaggle.com answers 403 for a kernel the account cannot see, whether or not it exists
            # (Kaggle/kaggle-cli#951).
            return 403, f"Permission 'kernels.get' was denied for '{owner}/{name}'", None
        label = request.get("versionLabel") or ""
        if label:
            match = _VERSION_LABEL.match(label)
            if not match or not 1 <= int(match.group(1)) <= len(kernel.sessions):
                return 404, f"Version '{label}' of kernel '{owner}/{name}' not found", None
            return 200, "", kernel.sessions[int(match.group(1)) - 1]
        latest = kernel.sessions[-1]
        if len(kernel.sessions) > 1 and time.monotonic() - latest.pushed_at < self.settings.stale_status_delay:
            return 200, "", kernel.sessions[-2]  # the new version is not visible yet
        return 200, "", latest

    def outputs(self, session: KernelSession) -> list[tuple[str, Path]]:
        if session.root is None or not session.done:
            return []
        working = session.root / "working"
        return sorted((path.relative_to(working).as_posix(), path) for path in working.rglob("*") if path.is_file())

    def output_file(self, session_id: int, name: str) -> bytes | None:
        session = self.sessions.get(session_id)
        if session is None:
            return None
        for relative, path in self.outputs(session):
            if relative == name:
                return path.read_bytes()
        return None

    def close(self) -> None:
        for session in self.sessions.values():
            if session.process is not None and session.process.poll() is None:
                session.process.kill()
        shutil.rmtree(self.scratch, ignore_errors=True)


def log_text(session: KernelSession) -> str:
    return json.dumps(session.log)
