"""Kaggle's Kernels API through the official client: push a script, follow its session, bring back its output.

The calls are those behind `kaggle kernels push`, `status` and `output` (kagglesdk's KernelsApiService),
with what kaggle.com does that the CLI leaves to its users (see local_kaggle/kernels.py for the sources):
SaveKernel is never resent (each call is a new version); status and output are always asked of the
version pushed (`v<N>`), since the latest version reads as the previous session for a while after a
push; output files come from signed storage URLs, fetched without credentials. Where kaggle.com
answers 403 for a kernel (a wrong slug, or one of another account) it reads as "no such kernel for
this account"; the push names its accelerator (`machineShape`), since `enableGpu` alone gets a P100.
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
# kaggle.com refuses a GPU push past the account's running batch sessions (HTTP 200, `error` set), and
# does not queue it (Kaggle/kaggle-cli#185); the caller waits for a slot.
SESSION_CAP_MESSAGE = "Maximum batch GPU session count"
MAX_PAGES = 50  # a listing stops here, whatever page tokens keep coming


class SessionCapReached(KaggleError):
    """kaggle.com refused the push: the account already runs its maximum of GPU batch sessions."""


class PushUnanswered(KaggleUnavailable):
    """SaveKernel's answer never came: the version may or may not have been made (look before pushing again)."""


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
    # QUEUED, RUNNING, COMPLETE, ERROR, CANCEL_REQUESTED, CANCEL_ACKNOWLEDGED, NEW_SCRIPT (a version
    # without its session yet), or a status this client does not know (followed until the timeout).
    status: str
    failure: str = ""

    @property
    def done(self) -> bool:
        return self.status in DONE


@dataclass(frozen=True)
class GpuQuota:
    used_seconds: float  # sessions that ended, and...
    reserved_seconds: float  # ...the time held by sessions running now: both count against the quota
    allowed_seconds: float | None  # None: Kaggle did not say (an unknown quota is not an empty one)
    refresh: datetime | None

    @property
    def known(self) -> bool:
        return self.allowed_seconds is not None

    @property
    def left_seconds(self) -> float | None:
        if self.allowed_seconds is None:
            return None
        return max(0.0, self.allowed_seconds - self.used_seconds - self.reserved_seconds)


@dataclass(frozen=True)
class OwnKernel:
    """One of the account's kernels, as ListKernels describes it."""

    owner: str
    slug: str
    version: int


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
            "reading the GPU quota",
            lambda: self.api.get_accelerator_quota_statistics(sdk().ApiGetAcceleratorQuotaStatisticsRequest()),
        )
        quota = answer.gpu_quota

        def seconds(value) -> float:
            return value.total_seconds() if value else 0.0

        allowed = seconds(quota.total_time_allowed) if quota and quota.total_time_allowed else None
        used = seconds(quota.time_used) if quota else 0.0
        reserved = seconds(quota.time_reserved) if quota else 0.0
        return GpuQuota(used, reserved, allowed, answer.quota_refresh_time)

    def current_version(self, owner: str, slug: str) -> int:
        """The kernel's newest version number (GetKernel), 0 when the account has no such kernel yet."""
        request = sdk().ApiGetKernelRequest()
        request.user_name, request.kernel_slug = owner, slug
        # kaggle.com answers 403 (or 404) for a kernel the account does not have: version 0.
        answer = self.kaggle.call(
            f"reading the kernel {owner}/{slug}", lambda: self.api.get_kernel(request), absent_ok=True
        )
        return int(answer.metadata.current_version_number or 0) if answer is not None and answer.metadata else 0

    def push(
        self,
        owner: str,
        slug: str,
        title: str,
        script: str,
        competition: str,
        machine_shape: str | None,
        timeout_seconds: int,
    ) -> PushedKernel:
        """One SaveKernel: a new private version of a script kernel that runs at once, internet off, on the
        accelerator `machine_shape` (None: the CPU). Never resent: a lost answer raises PushUnanswered."""

        request = sdk().ApiSaveKernelRequest()
        request.slug, request.new_title, request.text = f"{owner}/{slug}", title, script
        request.language, request.kernel_type = "python", "script"
        request.is_private, request.enable_internet = True, False
        # enableGpu alone gets a P100 on kaggle.com (Kaggle/kaggle-cli#821): the accelerator goes by name.
        request.enable_gpu = machine_shape is not None
        if machine_shape:
            request.machine_shape = machine_shape
        request.competition_data_sources = [competition]
        request.session_timeout_seconds = int(timeout_seconds)
        try:
            answer = self.kaggle.call(
                f"pushing the kernel {owner}/{slug}",
                lambda: self.api.save_kernel(request),
                not_found=f"Kaggle has no competition '{competition}' to attach to the kernel. Fix: check the name",
            )
        except KaggleUnavailable as error:
            raise PushUnanswered(str(error)) from None
        if answer.error:
            if SESSION_CAP_MESSAGE.lower() in answer.error.lower():
                raise SessionCapReached(answer.error)
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
        return PushedKernel(owner, slug, int(answer.version_number or 0), answer.url or kernel_url(owner, slug))

    def status(self, pushed: PushedKernel) -> KernelState:
        request = sdk().ApiGetKernelSessionStatusRequest()
        request.user_name, request.kernel_slug, request.version_label = pushed.owner, pushed.slug, pushed.label
        try:
            answer = self.kaggle.call(
                f"reading the status of {pushed.ref} {pushed.label}",
                lambda: self.api.get_kernel_session_status(request),
                not_found=f"Kaggle has no version {pushed.label} of the kernel {pushed.ref}",
                denied=no_such_kernel(pushed.ref),
            )
        except KeyError as unknown:  # kagglesdk cannot parse a status newer than itself: followed, by name
            return KernelState(str(unknown.args[0]) if unknown.args else "UNKNOWN")
        status = answer.status.name if answer.status is not None else "QUEUED"
        return KernelState(status, answer.failure_message or "")

    def own_kernels(self, owner: str, prefix: str) -> list[OwnKernel]:
        """The account's kernels whose slug starts with `prefix` (ListKernels, the account's own view, paged)."""
        found: list[OwnKernel] = []
        token = ""
        for _ in range(MAX_PAGES):
            request = sdk().ApiListKernelsRequest()
            request.group = sdk().KernelsListViewType.PROFILE
            request.user, request.search, request.page_size, request.page_token = owner, prefix, 100, token
            request.language, request.kernel_type, request.output_type = "all", "all", "all"
            answer = self.kaggle.call(
                f"listing the kernels of {owner}", lambda request=request: self.api.list_kernels(request)
            )
            for kernel in answer.kernels or []:
                author, _, slug = (kernel.ref or "").strip("/").rpartition("/")
                author = author.rpartition("/")[2] or kernel.author or owner
                if slug.startswith(prefix) and author == owner:
                    found.append(OwnKernel(author, slug, int(kernel.current_version_number or 0)))
            token = answer.next_page_token or ""
            if not token:
                break
        return found

    def delete(self, owner: str, slug: str) -> None:
        """DeleteKernel: the kernel and its versions are gone, and a running session stops (and stops billing)."""
        request = sdk().ApiDeleteKernelRequest()
        request.user_name, request.kernel_slug = owner, slug
        answer = self.kaggle.call(
            f"deleting the kernel {owner}/{slug}",
            lambda: self.api.delete_kernel(request),
            denied=no_such_kernel(f"{owner}/{slug}"),
        )
        if answer.error_message:
            raise KaggleError(f"Kaggle did not delete the kernel {owner}/{slug}: {answer.error_message}")

    def output(
        self, pushed: PushedKernel, target: Path, keep: tuple[str, ...] = (), files: bool = True
    ) -> KernelOutput:
        """Every output file whose name starts with one of `keep` (all when empty) into `target`, and the log
        (only the log with `files=False`)."""

        wanted, token = files, ""
        log: list = []
        saved: list[Path] = []
        target_root = target.resolve()
        for _ in range(MAX_PAGES):
            request = sdk().ApiListKernelSessionOutputRequest()
            request.user_name, request.kernel_slug, request.version_label = pushed.owner, pushed.slug, pushed.label
            request.page_size, request.page_token = 50, token
            answer = self.kaggle.call(
                f"listing the output of {pushed.ref} {pushed.label}",
                lambda: self.api.list_kernel_session_output(request),  # noqa: B023 (called at once)
                denied=no_such_kernel(pushed.ref),
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
                    raise KaggleError(
                        f"the kernel's output names a file outside its folder ({name!r}); nothing was kept"
                    )
                if not item.url:
                    raise KaggleError(
                        f"Kaggle listed the kernel output {name} without a URL to fetch it from. Fix: run again later"
                    )
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
                break
        return KernelOutput(saved, log)


def kernel_url(owner: str, slug: str) -> str:
    return f"https://www.kaggle.com/code/{owner}/{slug}"


def no_such_kernel(ref: str) -> str:
    # kaggle.com answers 403, not 404, for a kernel slug the account does not have (Kaggle/kaggle-cli#951).
    return (
        f"Kaggle has no kernel {ref} for this account (HTTP 403). "
        f"Fix: check the account (the user name in the credentials) and the kernel's name"
    )
