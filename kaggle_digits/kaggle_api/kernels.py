"""Kaggle's Kernels API through the official client: push a script, follow its session, bring back its output.

The calls are those behind `kaggle kernels push`, `status` and `output` (kagglesdk's KernelsApiService),
with what kaggle.com does that the CLI leaves to its users (see local_kaggle/kernels.py for the sources):
SaveKernel is never resent (each call is a new version); status and output are always asked of the
version pushed (`v<N>`), since the latest version reads as the previous session for a while after a
push; output files come from signed storage URLs, fetched without credentials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests

from ..errors import KaggleError, KaggleUnavailable
from .sdk import sdk

DONE = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")


@dataclass(frozen=True)
class PushedKernel:
    owner: str
    slug: str
    version: int
    url: str

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.slug}"

    @property
    def label(self) -> str:
        return f"v{self.version}"  # the only form the API accepts; a bare number is 404


@dataclass(frozen=True)
class KernelState:
    status: str  # QUEUED, RUNNING, COMPLETE, ERROR, CANCEL_REQUESTED, CANCEL_ACKNOWLEDGED
    failure: str = ""

    @property
    def done(self) -> bool:
        return self.status in DONE


@dataclass(frozen=True)
class GpuQuota:
    used_seconds: float
    allowed_seconds: float
    refresh: datetime | None

    @property
    def left_seconds(self) -> float:
        return max(0.0, self.allowed_seconds - self.used_seconds)


@dataclass(frozen=True)
class KernelOutput:
    files: list[Path]
    log: list[dict]  # {"stream_name", "time", "data"}, as Kaggle keeps a session's log

    def tail(self, lines: int = 15) -> list[str]:
        text = "".join(str(entry.get("data", "")) for entry in self.log)
        return text.rstrip("\n").splitlines()[-lines:]


class Kernels:
    """The Kernels API of one authenticated `Kaggle`."""

    def __init__(self, kaggle):
        self.kaggle = kaggle
        self.api = kaggle.client.kernels.kernels_api_client

    def gpu_quota(self) -> GpuQuota:

        answer = self.kaggle.call(
            "reading the GPU quota", lambda: self.api.get_accelerator_quota_statistics(sdk().ApiGetAcceleratorQuotaStatisticsRequest())
        )
        quota = answer.gpu_quota
        used = quota.time_used.total_seconds() if quota and quota.time_used else 0.0
        allowed = quota.total_time_allowed.total_seconds() if quota and quota.total_time_allowed else 0.0
        return GpuQuota(used, allowed, answer.quota_refresh_time)

    def push(self, owner: str, slug: str, title: str, script: str, competition: str, gpu: bool, timeout_seconds: int) -> PushedKernel:
        """One SaveKernel: a new private version of a script kernel that runs at once, internet off."""

        request = sdk().ApiSaveKernelRequest()
        request.slug, request.new_title, request.text = f"{owner}/{slug}", title, script
        request.language, request.kernel_type = "python", "script"
        request.is_private, request.enable_gpu, request.enable_internet = True, gpu, False
        request.competition_data_sources = [competition]
        request.session_timeout_seconds = int(timeout_seconds)
        answer = self.kaggle.call(
            f"pushing the kernel {owner}/{slug}",
            lambda: self.api.save_kernel(request),
            not_found=f"Kaggle has no competition '{competition}' to attach to the kernel. Fix: check the name",
        )
        if answer.error:
            raise KaggleError(f"Kaggle refused the kernel {owner}/{slug}: {answer.error}")
        if competition in (answer.invalid_competition_sources or []):
            raise KaggleError(
                f"Kaggle could not attach '{competition}' to the kernel {owner}/{slug} (not a competition this "
                f"account can use). Fix: accept its rules at https://www.kaggle.com/competitions/{competition}/rules"
            )
        # Follow the kernel Kaggle says it saved ("/code/<owner>/<slug>"), not the one asked for.
        parts = (answer.ref or "").strip("/").split("/")
        if len(parts) == 3 and parts[0] == "code":
            owner, slug = parts[1], parts[2]
        return PushedKernel(owner, slug, int(answer.version_number or 0), answer.url or f"https://www.kaggle.com/code/{owner}/{slug}")

    def status(self, pushed: PushedKernel) -> KernelState:

        request = sdk().ApiGetKernelSessionStatusRequest()
        request.user_name, request.kernel_slug, request.version_label = pushed.owner, pushed.slug, pushed.label
        answer = self.kaggle.call(
            f"reading the status of {pushed.ref} {pushed.label}",
            lambda: self.api.get_kernel_session_status(request),
            not_found=f"Kaggle has no version {pushed.label} of the kernel {pushed.ref}",
        )
        status = answer.status.name if answer.status is not None else "QUEUED"
        return KernelState(status, answer.failure_message or "")

    def output(self, pushed: PushedKernel, target: Path, keep: tuple[str, ...] = (), files: bool = True) -> KernelOutput:
        """Every output file whose name starts with one of `keep` (all when empty) into `target`, and the log
        (only the log with `files=False`)."""

        wanted, token = files, ""
        log: list = []
        saved: list[Path] = []
        target_root = target.resolve()
        while True:
            request = sdk().ApiListKernelSessionOutputRequest()
            request.user_name, request.kernel_slug, request.version_label = pushed.owner, pushed.slug, pushed.label
            request.page_size, request.page_token = 50, token
            answer = self.kaggle.call(
                f"listing the output of {pushed.ref} {pushed.label}",
                lambda: self.api.list_kernel_session_output(request),  # noqa: B023 (called at once)
            )
            if answer.log and not log:
                try:
                    log = json.loads(answer.log)
                except json.JSONDecodeError:
                    log = [{"stream_name": "stdout", "time": 0, "data": answer.log}]
            for item in answer.files or []:
                name = item.file_name or ""
                if not wanted or (keep and not name.startswith(keep)):
                    continue
                path = (target / name).resolve()
                if target_root not in path.parents:  # a name from the kernel is not trusted: no "../"
                    raise KaggleError(f"the kernel's output names a file outside its folder ({name!r}); nothing was kept")
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    response = self.kaggle.storage.get(item.url)
                except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                    raise KaggleUnavailable(
                        f"cannot reach Kaggle's storage for the kernel output {name} ({type(error).__name__}, "
                        f"after retries). Fix: check the network, then run again"
                    ) from None
                if response.status_code != 200:
                    response.close()
                    raise KaggleError(
                        f"Kaggle's storage answered HTTP {response.status_code} for the kernel output {name}. "
                        f"Fix: run again (the signed URLs expire)"
                    )
                with response, open(path, "wb") as out:
                    for chunk in response.iter_content(1 << 20):
                        out.write(chunk)
                saved.append(path)
            token = answer.next_page_token or ""
            if not token or not wanted:
                return KernelOutput(saved, log)
