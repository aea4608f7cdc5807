"""Kaggle at the edge: the official client (kagglesdk) with credentials, retries and clear failures.

Only this module talks to Kaggle. It builds `kagglesdk.KaggleClient(env=None)`, which honours
`KAGGLE_API_ENVIRONMENT` (`TEST` = http://localhost:7777, the toolkit's local server), and mounts a
retrying, time-limited transport on the client's own session. The `kaggle` package itself is not
imported: it authenticates (and may print or exit) at import time.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import Task
from .errors import AuthError, KaggleError

log = logging.getLogger("kaggle_digits")

TOKEN_HELP = (
    "create an API token at https://www.kaggle.com/settings (API section) and save it as ~/.kaggle/access_token "
    "(or export KAGGLE_API_TOKEN), or put the legacy kaggle.json in ~/.kaggle/"
)


@dataclass(frozen=True)
class Credentials:
    """Where the client's secret came from. The secret itself is never shown (see __repr__)."""

    source: str
    token: str | None = None
    username: str | None = None
    key: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r}, kind={'token' if self.token else 'key'}, secret=***)"

    __str__ = __repr__


def config_dir() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")


def find_credentials() -> Credentials:
    """The client's own order: an access token, then a legacy key (kaggle.json or the environment)."""
    tried = []
    token_env = os.environ.get("KAGGLE_API_TOKEN", "").strip()
    tried.append("KAGGLE_API_TOKEN")
    if token_env:
        if Path(token_env).is_file():
            token = Path(token_env).read_text().strip()
            if token:
                return Credentials(source=f"KAGGLE_API_TOKEN (file {token_env})", token=token)
        else:
            return Credentials(source="KAGGLE_API_TOKEN", token=token_env)
    folder = config_dir()
    for name in ("access_token", "access_token.txt"):
        path = folder / name
        tried.append(str(path))
        if path.is_file() and path.read_text().strip():
            _warn_if_readable(path)
            return Credentials(source=str(path), token=path.read_text().strip())
    username, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    tried.append("KAGGLE_USERNAME + KAGGLE_KEY")
    if username and key:
        return Credentials(source="KAGGLE_USERNAME + KAGGLE_KEY", username=username, key=key)
    path = folder / "kaggle.json"
    tried.append(str(path))
    if path.is_file():
        try:
            content = json.loads(path.read_text())
            username, key = content["username"], content["key"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise AuthError(f"{path}: not a kaggle.json with 'username' and 'key'. Fix: download it again, or {TOKEN_HELP}") from None
        _warn_if_readable(path)
        return Credentials(source=str(path), username=username, key=key)
    raise AuthError(f"no Kaggle credentials found (tried {', '.join(tried)}). Fix: {TOKEN_HELP}")


def _warn_if_readable(path: Path) -> None:
    if path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("warning: %s is readable by other users of this machine. Fix: chmod 600 %s", path, path)


@dataclass
class RetryPolicy:
    """Bounded retries for what is transient: 429 (honouring Retry-After up to a cap), 5xx, drops, timeouts."""

    retries: int = 5
    backoff: float = 1.0  # seconds; doubles each retry (urllib3's backoff_factor)
    retry_after_cap: float = 60.0  # Kaggle's Retry-After is not always right: never wait longer than this
    timeout: float = 60.0  # per request (connect and each read)

    @classmethod
    def from_environment(cls) -> "RetryPolicy":
        """KAGGLE_DIGITS_RETRIES / _BACKOFF / _TIMEOUT tune it (tests make it quick)."""
        policy = cls()
        for name, attribute in (("RETRIES", "retries"), ("BACKOFF", "backoff"), ("TIMEOUT", "timeout")):
            value = os.environ.get(f"KAGGLE_DIGITS_{name}")
            if value:
                setattr(policy, attribute, type(getattr(policy, attribute))(value))
        return policy

    def adapter(self):
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        cap = self.retry_after_cap

        class LoggedRetry(Retry):
            def parse_retry_after(self, value: str) -> float:
                from urllib3.exceptions import InvalidHeader

                try:
                    return min(super().parse_retry_after(value), cap)
                except InvalidHeader:
                    return min(self.get_backoff_time() or 1.0, cap)  # a malformed Retry-After: back off instead

            def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
                new = super().increment(method, url, response, error, _pool, _stacktrace)
                reason = f"HTTP {response.status}" if response is not None and response.status else type(error).__name__
                attempt = len(new.history)
                where = (url or "").split("?")[0].rsplit("/", 1)[-1]
                log.warning("Kaggle: %s on %s; retrying (%d of %d)", reason, where, attempt, new.total + attempt)
                return new

        retry = LoggedRetry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            backoff_factor=self.backoff,
            backoff_max=self.retry_after_cap,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=None,  # Kaggle's API is all POSTs; a rejected or failed call is safe to repeat
            respect_retry_after_header=True,
            raise_on_status=False,  # hand back the last answer: the caller turns it into a clear message
        )
        timeout = self.timeout

        class TimedAdapter(HTTPAdapter):
            def send(self, request, **kwargs):
                if kwargs.get("timeout") is None:
                    kwargs["timeout"] = timeout
                return super().send(request, **kwargs)

        return TimedAdapter(max_retries=retry)


class Kaggle:
    """One task's competition (or data set) through the official client."""

    def __init__(self, task: Task, credentials: Credentials | None = None, policy: RetryPolicy | None = None,
                 competition: str | None = None):
        from kagglesdk import KaggleClient
        from kagglesdk.kaggle_env import get_endpoint, get_env

        self.task = task
        self.name = competition or task.ref
        self.credentials = credentials or find_credentials()
        self.policy = policy or RetryPolicy.from_environment()
        try:
            self.endpoint = get_endpoint(get_env())
        except Exception as error:  # kagglesdk raises a bare Exception for an unknown environment
            from .errors import UsageError

            raise UsageError(f"KAGGLE_API_ENVIRONMENT: {error}. Fix: unset it, or use TEST (the local server) or LOCALHOST") from None
        creds = self.credentials
        self.client = KaggleClient(env=None, username=creds.username, password=creds.key, api_token=creds.token)
        # The retrying transport goes on the client's own requests session (kagglesdk offers no hook
        # for it), so every call the official client makes gets retries and timeouts.
        http = self.client.http_client()
        http._init_session()
        self.session = http._session
        adapter = self.policy.adapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.competitions = self.client.competitions.competition_api_client

    @property
    def page(self) -> str:
        if self.task.source == "dataset":
            return f"https://www.kaggle.com/datasets/{self.name}"
        return f"https://www.kaggle.com/competitions/{self.name}"

    # --- error handling -------------------------------------------------------------------------
    def call(self, what: str, function: Callable[[], Any]) -> Any:
        """Run one client call; turn every failure into one clear line with the right exit code."""
        import requests

        try:
            return function()
        except requests.exceptions.HTTPError as error:
            response = error.response
            status = response.status_code if response is not None else 0
            detail = str(error).split(" for url")[0]
            if status == 401:
                raise AuthError(
                    f"Kaggle rejected the credentials from {self.credentials.source} (HTTP 401 while {what}). Fix: {TOKEN_HELP}"
                ) from None
            if status == 403:
                raise KaggleError(
                    f"Kaggle denied access to '{self.name}' (HTTP 403: {detail}). Fix: accept the rules at {self.page}/rules "
                    f"(while signed in as this account), then run again"
                ) from None
            if status == 404:
                kind = "data set" if self.task.source == "dataset" else "competition"
                raise KaggleError(
                    f"Kaggle has no {kind} '{self.name}' (HTTP 404 while {what}). Fix: check the name, as in {self.page}"
                ) from None
            if status == 429 or status >= 500:
                raise KaggleError(
                    f"Kaggle kept failing while {what} (HTTP {status} after {self.policy.retries} retries). Fix: try again later"
                ) from None
            raise KaggleError(f"Kaggle refused {what} (HTTP {status}: {detail})") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise KaggleError(
                f"cannot reach Kaggle at {self.endpoint} while {what} ({type(error).__name__}, after {self.policy.retries} retries). "
                f"Fix: check the network (or KAGGLE_API_ENVIRONMENT), then run again"
            ) from None

    def check_credentials(self) -> str:
        """An access token is checked up front (IntrospectToken); a legacy key on the first call."""
        if not self.credentials.token:
            return self.credentials.username or ""
        from kagglesdk.security.types.oauth_service import IntrospectTokenRequest

        import requests

        request = IntrospectTokenRequest()
        request.token = self.credentials.token

        def introspect():
            try:
                return self.client.security.oauth_client.introspect_token(request)
            except requests.exceptions.HTTPError as error:
                if error.response is not None and error.response.status_code in (404, 405, 501):
                    return None  # a server without introspection: the token is checked by the first real call
                raise

        answer = self.call("checking the access token", introspect)
        if answer is None:
            return ""
        if not answer.active:
            raise AuthError(f"Kaggle rejected the access token from {self.credentials.source} (inactive or expired). Fix: {TOKEN_HELP}")
        return answer.username

    # --- data -----------------------------------------------------------------------------------
    def open_download(self):
        """The streamed answer to DownloadDataFiles (or DownloadDataset): headers first, body on demand."""
        if self.task.source == "dataset":
            from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest

            owner, slug = self.name.split("/", 1)
            request = ApiDownloadDatasetRequest()
            request.owner_slug, request.dataset_slug = owner, slug
            response = self.call("starting the download", lambda: self.client.datasets.dataset_api_client.download_dataset(request))
        else:
            from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

            request = ApiDownloadDataFilesRequest()
            request.competition_name = self.name
            response = self.call("starting the download", lambda: self.competitions.download_data_files(request))
        return response

    def download(self, target: Path, force: bool = False, quiet: bool = False) -> tuple[Path, bool]:
        """Download the zip to `target` atomically (via a .part file, resuming cut transfers).

        Returns (path, changed). When the remote zip has the ETag and size recorded for the local one,
        nothing is downloaded unless `force`.
        """
        import requests
        from tqdm import tqdm

        marker = target.with_name(target.name + ".json")
        response = self.open_download()
        size = int(response.headers.get("Content-Length") or 0) or None
        identity = {"etag": response.headers.get("ETag"), "size": size, "last_modified": response.headers.get("Last-Modified")}
        if not force and target.exists() and marker.exists() and identity["etag"]:
            try:
                recorded = json.loads(marker.read_text())
            except json.JSONDecodeError:
                recorded = {}
            if recorded.get("etag") == identity["etag"] and recorded.get("size") == size and target.stat().st_size == size:
                response.close()
                return target, False
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        written = 0
        url = response.url
        attempts = 0
        with open(part, "wb") as handle, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, disable=quiet,
                                              desc=f"download {target.name}", leave=False) as progress:
            while True:
                try:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        handle.write(chunk)
                        written += len(chunk)
                        progress.update(len(chunk))
                    if size is None or written >= size:
                        break
                    raise requests.exceptions.ChunkedEncodingError(f"connection closed at {written} of {size} bytes")
                except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                    attempts += 1
                    if attempts > self.policy.retries:
                        response.close()
                        part.unlink(missing_ok=True)
                        raise KaggleError(
                            f"download of {target.name} kept breaking off ({error}; {attempts - 1} resumes). Fix: run again later"
                        ) from None
                    log.warning("Kaggle: download broke off at %d bytes (%s); resuming (%d of %d)", written, type(error).__name__, attempts, self.policy.retries)
                    headers = {"Range": f"bytes={written}-"}
                    if identity["etag"]:
                        headers["If-Range"] = identity["etag"]
                    response = self.call("resuming the download", lambda: _checked(self.session.get(url, headers=headers, stream=True)))
                    if response.status_code == 200:  # the server sent the whole file again: start over
                        handle.seek(0)
                        handle.truncate()
                        written = 0
                        progress.reset()
            handle.flush()
            os.fsync(handle.fileno())
        if size is not None and part.stat().st_size != size:
            part.unlink(missing_ok=True)
            raise KaggleError(f"download of {target.name} is {written} bytes, expected {size}. Fix: run again")
        os.replace(part, target)
        marker.write_text(json.dumps(identity))
        return target, True

    # --- submissions ----------------------------------------------------------------------------
    def limits(self) -> dict[str, int]:
        from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionLimitsRequest

        request = ApiGetSubmissionLimitsRequest()
        request.competition_name = self.name
        answer = self.call("checking today's submission limit", lambda: self.competitions.get_submission_limits(request))
        return {"today": answer.num_today, "total": answer.num_total, "allowed_now": answer.num_allowed_now}

    def submit(self, path: Path, message: str) -> int:
        """StartSubmissionUpload, PUT the bytes, CreateSubmission; returns Kaggle's submission ref."""
        from kagglesdk.competitions.types.competition_api_service import (
            ApiCreateSubmissionRequest,
            ApiStartSubmissionUploadRequest,
        )

        start = ApiStartSubmissionUploadRequest()
        start.competition_name = self.name
        start.file_name = path.name
        start.content_length = path.stat().st_size
        start.last_modified_epoch_seconds = int(path.stat().st_mtime)
        upload = self.call("starting the upload", lambda: self.competitions.start_submission_upload(start))
        content = path.read_bytes()
        self.call("uploading the file", lambda: _checked(self.session.put(upload.create_url, data=content,
                                                                          headers={"Content-Type": "application/octet-stream"})))
        create = ApiCreateSubmissionRequest()
        create.competition_name = self.name
        create.blob_file_tokens = upload.token
        create.submission_description = message
        answer = self.call("creating the submission", lambda: self.competitions.create_submission(create))
        if answer.ref:
            return int(answer.ref)
        # Some answers carry only a message: find the submission by its (unique) description instead.
        found = [item for item in self.submissions() if item["description"] == message]
        if found:
            return int(found[0]["ref"])
        raise KaggleError(f"Kaggle did not accept the submission: {answer.message or 'no reason given'}")

    def submission(self, ref: int) -> dict[str, Any]:
        from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionRequest

        request = ApiGetSubmissionRequest()
        request.ref = ref
        return _describe(self.call("reading the submission's status", lambda: self.competitions.get_submission(request)))

    def submissions(self) -> list[dict[str, Any]]:
        from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest

        request = ApiListSubmissionsRequest()
        request.competition_name = self.name
        answer = self.call("listing submissions", lambda: self.competitions.list_submissions(request))
        return [_describe(submission) for submission in answer.submissions]

    def wait(self, ref: int, timeout: float = 900.0, poll: float = 1.0, max_poll: float = 30.0) -> dict[str, Any]:
        """Poll until scored; the interval grows from `poll` to `max_poll` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.submission(ref)
            if state["status"] != "PENDING":
                return state
            if time.monotonic() + poll > deadline:
                return state
            time.sleep(poll)
            poll = min(poll * 1.5, max_poll)


def _checked(response):
    response.raise_for_status()
    return response


def _describe(submission) -> dict[str, Any]:
    status = submission.status.name if hasattr(submission.status, "name") else str(submission.status)
    return {
        "ref": submission.ref,
        "date": submission.date.isoformat(timespec="seconds") if submission.date else "",
        "description": submission.description,
        "status": status,
        "public_score": submission.public_score or "",
        "private_score": submission.private_score or "",
        "error": submission.error_description or "",
        "file_name": submission.file_name,
    }
