"""Kaggle's API through the official client (kagglesdk): credentials, retries, downloads, uploads.

It builds `kagglesdk.KaggleClient(env=None)`, which honours `KAGGLE_API_ENVIRONMENT` (`TEST` =
http://localhost:7777, the toolkit's local server), sets the one credential it found on the client's
session (and says which), and mounts a retrying, time-limited transport there. Files move through
`storage.Storage`, which never carries a credential. The `kaggle` package itself is not imported:
it authenticates (and may print or exit) at import time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from ..config import SCORING_WAIT_SECONDS, Task
from ..errors import AuthError, KaggleError, KaggleUnavailable, SubmissionOutcomeUnknown, ToolkitError, UsageError
from ..submission_state import SubmissionState
from . import credentials as found
from .credentials import TOKEN_HELP, Credentials
from .retries import RetryPolicy
from .sdk import sdk
from .storage import Storage

log = logging.getLogger("kaggle_digits")

UPLOAD_ATTEMPTS = 3  # each one a fresh StartSubmissionUpload, as the official client starts over
MAX_PAGES = 200  # a listing's pages: far past any team's submissions (20 a page), never forever
LEADERBOARD_PAGE_SIZE = 200  # the most GetLeaderboard answers per page (the official CLI: "max is 200")
VISIBILITY_GRACE = 120.0  # seconds GetSubmission may answer 404 right after a create: still pending


@dataclass(frozen=True)
class Limits:
    """GetSubmissionLimits: `total` is the team's lifetime count, not a daily cap; `allowed_now` is what counts."""

    today: int
    total: int
    allowed_now: int

    @property
    def joined(self) -> bool:
        return (self.today, self.total, self.allowed_now) != (0, 0, 0)  # all zeros: rules not accepted


@dataclass(frozen=True)
class LeaderboardEntry:
    """One team's row on the public leaderboard (GetLeaderboard), in the order Kaggle ranks them."""

    team_id: int
    team_name: str
    score: str  # as Kaggle writes it, e.g. "0.99439"
    date: str = ""


class Kaggle:
    """One task's competition (or data set) through the official client."""

    def __init__(
        self,
        task: Task,
        credentials: Credentials | None = None,
        policy: RetryPolicy | None = None,
        competition: str | None = None,
    ):

        self.task = task
        self.name = competition or task.ref
        self.policy = policy or RetryPolicy.from_environment()
        try:
            self.endpoint = sdk().get_endpoint(sdk().get_env())
        except Exception as error:  # kagglesdk raises a bare Exception for an unknown environment
            raise UsageError(
                f"KAGGLE_API_ENVIRONMENT: {error}. Fix: unset it, or use TEST (the local server) or LOCALHOST"
            ) from None
        self._bearer = sdk().KaggleHttpClient.BearerAuth
        self.client = sdk().KaggleClient(env=None)
        # The transport goes on the client's own requests session (kagglesdk offers no hook for it),
        # so every call the official client makes gets retries and timeouts. CreateSubmission gets a
        # transport of its own (requests picks the longest matching prefix): it is never resent.
        http = self.client.http_client()
        http._init_session()
        self.session = http._session
        adapter = self.policy.adapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # SaveKernel too: each call is a new kernel version with a session of its own.
        for service, method in (
            ("competitions.CompetitionApiService", "CreateSubmission"),
            ("kernels.KernelsApiService", "SaveKernel"),
        ):
            self.session.mount(http._get_request_url(service, method), self.policy.adapter(idempotent=False))
        self.storage = Storage(self.policy)
        self.competitions = self.client.competitions.competition_api_client
        self.username = ""
        self.username_checked = False  # True once Kaggle itself named the account (IntrospectToken)
        if credentials is not None:
            self._use(credentials)
        else:
            self._authenticate()

    # --- credentials ----------------------------------------------------------------------------
    def _use(self, credentials: Credentials) -> None:
        """Exactly this credential on every API request (kagglesdk would otherwise pick its own:
        with a legacy key it still prefers ~/.kaggle/access_token when one exists)."""
        self.credentials = credentials
        self.session.auth = (
            self._bearer(credentials.token) if credentials.token else (credentials.username, credentials.key)
        )
        self.username = credentials.username or ""

    @property
    def is_kaggle(self) -> bool:
        """Whether the endpoint is kaggle.com's own API (KAGGLE_API_ENVIRONMENT unset or PROD)."""
        return self.endpoint == sdk().get_endpoint(sdk().KaggleEnv.PROD)

    def _authenticate(self) -> None:
        """The official client's order: an access token that IntrospectToken accepts, a legacy key, OAuth.

        Toward any endpoint but kaggle.com's, the stored credentials stay home: only a token given explicitly
        in KAGGLE_API_TOKEN is used, with no fallback (whatever listens on localhost could be anyone's)."""
        if not self.is_kaggle:
            self._authenticate_elsewhere()
            return
        rejected = None
        token = found.access_token()
        if token is not None:
            self._use(token)
            username = self._introspect(token)
            if username:
                self.username, self.username_checked = username, True
                return
            rejected = token
        legacy = found.legacy_key()
        if legacy is not None:
            if rejected:
                log.warning(
                    "Kaggle: the access token from %s is not valid (unknown, inactive or expired); "
                    "using the key from %s instead, as the official client does",
                    rejected.source,
                    legacy.source,
                )
            self._use(legacy)
            return
        self.credentials = rejected or Credentials(source="no credentials")
        self.session.auth = None
        oauth = self.call("refreshing the 'kaggle auth login' credentials", lambda: found.oauth(self.client))
        if oauth is not None:
            if rejected:
                log.warning(
                    "Kaggle: the access token from %s is not valid; using %s instead", rejected.source, oauth.source
                )
            self._use(oauth)
            return
        if rejected:
            raise AuthError(
                f"Kaggle rejected the access token from {rejected.source} (unknown, inactive or expired), "
                f"and no other credentials were found. Fix: {TOKEN_HELP}"
            )
        raise AuthError(f"no Kaggle credentials found (tried {found.places_tried()}). Fix: {TOKEN_HELP}")

    def _authenticate_elsewhere(self) -> None:
        token = found.explicit_token()
        log.info(
            "Kaggle: %s is not kaggle.com: only a token given in KAGGLE_API_TOKEN is sent there; stored credentials "
            "(~/.kaggle, kaggle.json, credentials.json, KAGGLE_USERNAME/KAGGLE_KEY) are not",
            self.endpoint,
        )
        self.session.auth = None  # kagglesdk filled in what it found on disk: none of it goes out
        if token is None:
            self.credentials = Credentials(source="no credentials")
            raise AuthError(
                f"no token for {self.endpoint}: toward an endpoint other than kaggle.com only KAGGLE_API_TOKEN is "
                f"used, "
                f"never stored credentials. Fix: export KAGGLE_API_TOKEN (the local server's is in the file it names "
                f"at start), "
                f"or unset KAGGLE_API_ENVIRONMENT to use Kaggle itself"
            )
        self._use(token)
        username = self._introspect(token)
        if not username:
            raise AuthError(
                f"{self.endpoint} rejected the token from {token.source}; no other credentials are tried there. Fix: "
                f"check it"
            )
        self.username, self.username_checked = username, True

    def _introspect(self, token: Credentials) -> str | None:
        """The user name, or None when Kaggle says the token is not valid (400, 403 or 404 there, as
        the official client's `_introspect_token` reads it)."""

        request = sdk().IntrospectTokenRequest()
        request.token = token.token

        def introspect():
            try:
                return self.client.security.oauth_client.introspect_token(request)
            except requests.exceptions.HTTPError as error:
                if error.response is not None and error.response.status_code in (400, 403, 404):
                    return None
                raise

        answer = self.call("checking the access token", introspect)
        if answer is None or not answer.active or not answer.username:
            return None
        return answer.username

    def account(self) -> str:
        """Who the calls go out as, for the log: " as NAME" when Kaggle named the account, and saying so when it
        did not (a legacy key's user name is the file's word until Kaggle's first answer); "" when unknown."""
        if not self.username:
            return ""
        return f" as {self.username}" if self.username_checked else f" as {self.username} (not yet checked by Kaggle)"

    @property
    def page(self) -> str:
        if self.task.source == "dataset":
            return f"https://www.kaggle.com/datasets/{self.name}"
        return f"https://www.kaggle.com/competitions/{self.name}"

    # --- error handling -------------------------------------------------------------------------
    def call(
        self,
        what: str,
        function: Callable[[], Any],
        not_found: str | None = None,
        denied: str | None = None,
        absent_ok: bool = False,
    ) -> Any:
        """Run one client call; turn every failure into one clear line with the right exit code.

        `not_found` and `denied` replace the competition-centred lines for 404 and 403 (kernels);
        `absent_ok` answers None for either (a kernel the account does not have yet)."""
        try:
            return function()
        except requests.exceptions.HTTPError as error:
            status = error.response.status_code if error.response is not None else 0
            from_api = error.response is not None and str(error.response.url or "").startswith(self.endpoint)
            if from_api and status in (403, 404) and absent_ok:
                return None
            if from_api and status == 403 and denied:
                raise KaggleError(denied) from None
            raise self._http_failure(error, what, not_found) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise self._unreachable(error, what) from None

    def _http_failure(
        self, error: requests.exceptions.HTTPError, what: str, not_found: str | None = None
    ) -> ToolkitError:
        response = error.response
        status = response.status_code if response is not None else 0
        if response is not None and not str(response.url or "").startswith(self.endpoint):
            return _storage_failure(status, what)  # a signed URL on the storage host, not the API
        detail = str(error).split(" for url")[0]
        if status == 401:
            return AuthError(
                f"Kaggle rejected the credentials from {self.credentials.source} (HTTP 401 while {what}). Fix: "
                f"{TOKEN_HELP}"
            )
        if status == 403:
            return KaggleError(
                f"Kaggle denied access to '{self.name}' (HTTP 403: {detail}). Fix: accept the rules at "
                f"{self.page}/rules "
                f"(while signed in as this account), then run again"
            )
        if status == 404:
            kind = "data set" if self.task.source == "dataset" else "competition"
            return KaggleError(
                not_found
                or f"Kaggle has no {kind} '{self.name}' (HTTP 404 while {what}). Fix: check the name, as in {self.page}"
            )
        if status == 429 or status >= 500:
            return KaggleUnavailable(
                f"Kaggle kept failing while {what} (HTTP {status} after {self.policy.retries} retries). Fix: try "
                f"again later"
            )
        return KaggleError(f"Kaggle refused {what} (HTTP {status}: {detail})")

    def _unreachable(self, error: Exception, what: str) -> KaggleError:
        return KaggleUnavailable(
            f"cannot reach Kaggle at {self.endpoint} while {what} ({type(error).__name__}, after "
            f"{self.policy.retries} retries). "
            f"Fix: check the network (or KAGGLE_API_ENVIRONMENT), then run again"
        )

    # --- data -----------------------------------------------------------------------------------
    def open_download(self) -> requests.Response:
        """The streamed answer to DownloadDataFiles (or DownloadDataset), followed to storage: headers first."""
        if self.task.source == "dataset":
            owner, slug = self.name.split("/", 1)
            request = sdk().ApiDownloadDatasetRequest()
            request.owner_slug, request.dataset_slug = owner, slug
            return self.call(
                "starting the download", lambda: self.client.datasets.dataset_api_client.download_dataset(request)
            )

        request = sdk().ApiDownloadDataFilesRequest()
        request.competition_name = self.name
        return self.call("starting the download", lambda: self.competitions.download_data_files(request))

    def _resume(self, url: str, written: int, etag: str | None) -> tuple[requests.Response, str]:
        """A Range request to storage, with no credentials; a fresh signed URL from the API when it expired."""
        headers = {"Range": f"bytes={written}-", **({"If-Range": etag} if etag else {})}
        response = self._storage_get(url, headers)
        if response.status_code in (401, 403):  # Cloud Storage's answer to an expired signed URL
            response.close()
            log.warning("Kaggle: the signed download URL expired; asking Kaggle for a fresh one")
            answer = self.open_download()
            url = answer.url
            answer.close()  # only its URL is wanted: the ranged request takes the rest
            response = self._storage_get(url, headers)
        if response.status_code not in (200, 206):
            response.close()
            raise _storage_failure(response.status_code, "resuming the download")
        return response, url

    def _storage_get(self, url: str, headers: dict[str, str]) -> requests.Response:
        try:
            return self.storage.get(url, headers)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise self._unreachable(error, "resuming the download") from None

    def download(self, target: Path, force: bool = False, quiet: bool = False) -> tuple[Path, bool]:
        """Download the zip to `target` atomically (via a .part file, resuming cut transfers).

        Returns (path, changed). When the remote zip has the ETag and size recorded for the local one,
        nothing is downloaded unless `force`.
        """
        marker = target.with_name(target.name + ".json")
        response = self.open_download()
        size = int(response.headers.get("Content-Length") or 0) or None
        identity = {
            "etag": response.headers.get("ETag"),
            "size": size,
            "last_modified": response.headers.get("Last-Modified"),
        }
        if not force and target.exists() and marker.exists() and identity["etag"]:
            try:
                recorded = json.loads(marker.read_text())
                recorded = recorded if isinstance(recorded, dict) else {}
            except (OSError, ValueError):  # a damaged marker: download again, and write a good one
                recorded = {}
            if (
                recorded.get("etag") == identity["etag"]
                and recorded.get("size") == size
                and target.stat().st_size == size
            ):
                response.close()
                return target, False
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        written = 0
        url = response.url
        attempts = 0
        with (
            open(part, "wb") as handle,
            tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=quiet,
                desc=f"download {target.name}",
                leave=False,
            ) as progress,
        ):
            while True:
                try:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        handle.write(chunk)
                        written += len(chunk)
                        progress.update(len(chunk))
                    if size is None or written >= size:
                        break
                    raise requests.exceptions.ChunkedEncodingError(f"connection closed at {written} of {size} bytes")
                except (
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ConnectionError,
                    requests.exceptions.Timeout,
                ) as error:
                    attempts += 1
                    if attempts > self.policy.retries:
                        response.close()
                        part.unlink(missing_ok=True)
                        raise KaggleUnavailable(
                            f"download of {target.name} kept breaking off ({type(error).__name__}; {attempts - 1} "
                            f"resumes). "
                            f"Fix: run again later"
                        ) from None
                    log.warning(
                        "Kaggle: download broke off at %d bytes (%s); resuming (%d of %d)",
                        written,
                        type(error).__name__,
                        attempts,
                        self.policy.retries,
                    )
                    try:
                        response, url = self._resume(url, written, str(identity["etag"]))
                    except KaggleError:
                        part.unlink(missing_ok=True)
                        raise
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
    def limits(self) -> Limits:
        """Today's allowance; refuses, with the rules URL, a competition the account has not joined."""

        request = sdk().ApiGetSubmissionLimitsRequest()
        request.competition_name = self.name
        answer = self.call(
            "checking today's submission limit", lambda: self.competitions.get_submission_limits(request)
        )
        limits = Limits(
            today=answer.num_today or 0, total=answer.num_total or 0, allowed_now=answer.num_allowed_now or 0
        )
        if not limits.joined:
            raise KaggleError(
                f"this account has not joined '{self.name}' on Kaggle (its submission limits are all zero), so it "
                f"cannot "
                f"submit. Fix: accept the rules at {self.page}/rules (while signed in as this account), then run again"
            )
        return limits

    def _upload(self, path: Path) -> str:
        """StartSubmissionUpload and one PUT to the storage URL it returns; on any failure a fresh start.

        Returns the blob token CreateSubmission takes. Only 200/201 mean the file is stored.
        """

        content = path.read_bytes()
        reason = ""
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            start = sdk().ApiStartSubmissionUploadRequest()
            start.competition_name = self.name
            start.file_name = path.name
            start.content_length = len(content)
            start.last_modified_epoch_seconds = int(path.stat().st_mtime)
            upload = self.call("starting the upload", partial(self.competitions.start_submission_upload, start))
            try:
                response = self.storage.put(upload.create_url, content)
                if response.status_code in (200, 201):
                    return upload.token
                reason = f"HTTP {response.status_code}"
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                reason = type(error).__name__
            if attempt < UPLOAD_ATTEMPTS:
                log.warning(
                    "Kaggle: storage did not take the upload (%s); starting over with a new upload (%d of %d)",
                    reason,
                    attempt,
                    UPLOAD_ATTEMPTS - 1,
                )
        raise KaggleUnavailable(
            f"could not upload {path.name} to Kaggle's storage ({reason}, {UPLOAD_ATTEMPTS} attempts); "
            f"nothing was submitted. Fix: run again later"
        )

    def submit(self, path: Path, message: str) -> int:
        """Upload, then CreateSubmission once; returns Kaggle's submission ref.

        CreateSubmission is not idempotent: when its answer is lost (a read timeout, a reset
        connection, a 5xx) the submission may exist, so it raises SubmissionOutcomeUnknown instead of
        trying again; the caller settles it from Kaggle's list (the message carries the run id).
        """

        token = self._upload(path)
        create = sdk().ApiCreateSubmissionRequest()
        create.competition_name = self.name
        create.blob_file_tokens = token
        create.submission_description = message
        unknown = (
            f"the answer to CreateSubmission for {path.name} was lost ({{}}): Kaggle may or may not have the "
            f"submission. It is recorded as UNKNOWN and settled from Kaggle's own list on the next run, and never "
            f"uploaded twice. Fix: run 'make status' (or the same command again) in a minute"
        )
        try:
            answer = self.competitions.create_submission(create)
        except requests.exceptions.HTTPError as error:
            status = error.response.status_code if error.response is not None else 0
            if status >= 500:
                raise SubmissionOutcomeUnknown(unknown.format(f"HTTP {status}")) from None
            raise self._http_failure(error, "creating the submission") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            if _never_sent(error):
                raise self._unreachable(error, "creating the submission") from None
            raise SubmissionOutcomeUnknown(unknown.format(type(error).__name__)) from None
        if answer.ref:
            return int(answer.ref)
        # Some answers carry only a message: find the submission by its (unique) description instead.
        try:
            found_refs = [item.ref for item in self.submissions() if item.description == message]
        except KaggleError as error:  # created, but which ref is not known: settled from the list next time
            raise SubmissionOutcomeUnknown(unknown.format(f"no ref in the answer, and {error}")) from None
        if found_refs:
            return int(found_refs[0])
        # Accepted (a refusal comes as an HTTP error), but not listed yet: kaggle.com's list lags behind a create.
        # Not a failure either: settled from the list next time, like a lost answer, and never uploaded twice.
        raise SubmissionOutcomeUnknown(
            unknown.format(
                f"the answer carried no ref ({answer.message or 'no message'}) and the list does not show it yet"
            )
        )

    def submission(self, ref: int) -> SubmissionState | None:
        """One submission's state; None while Kaggle does not know the ref (yet)."""

        request = sdk().ApiGetSubmissionRequest()
        request.ref = ref

        def get():
            try:
                return self.competitions.get_submission(request)
            except requests.exceptions.HTTPError as error:
                if error.response is not None and error.response.status_code == 404:
                    return None
                raise

        answer = self.call("reading the submission's status", get)
        return _describe(answer) if answer is not None else None

    def _pages(self, what: str, read_page: Callable[[str], Any]) -> Iterator[Any]:
        """Every page of a paged listing, following nextPageToken; never forever (MAX_PAGES, a repeated token)."""
        token, seen = "", set()
        for _ in range(MAX_PAGES):
            answer = self.call(f"reading {what}", partial(read_page, token))
            yield answer
            token = answer.next_page_token
            if not token or token in seen:  # a repeated token would loop forever
                return
            seen.add(token)
        raise KaggleError(
            f"Kaggle's {what} for '{self.name}' goes on past {MAX_PAGES} pages; stopped reading it. "
            f"Fix: try again later"
        )

    def submissions(self) -> list[SubmissionState]:
        """Every submission of the team on this competition, newest first: all pages."""

        def read_page(token: str):
            request = sdk().ApiListSubmissionsRequest()
            request.competition_name = self.name
            if token:
                request.page_token = token
            return self.competitions.list_submissions(request)

        pages = self._pages("the submission list", read_page)
        return [_describe(item) for page in pages for item in page.submissions]

    def leaderboard(self) -> list[LeaderboardEntry]:
        """The whole public leaderboard (all pages), best first, as Kaggle ranks it (ties: earlier submission first)."""

        def read_page(token: str):
            request = sdk().ApiGetLeaderboardRequest()
            request.competition_name = self.name
            request.page_size = LEADERBOARD_PAGE_SIZE
            if token:
                request.page_token = token
            return self.competitions.get_leaderboard(request)

        return [
            LeaderboardEntry(row.team_id, row.team_name or "", row.score or "", utc_text(row.submission_date))
            for page in self._pages("the public leaderboard", read_page)
            for row in page.submissions
            if row is not None
        ]

    def wait(
        self, ref: int, timeout: float = SCORING_WAIT_SECONDS, poll: float = 1.0, max_poll: float = 30.0
    ) -> SubmissionState:
        """Poll until scored; the interval grows from `poll` to `max_poll` seconds.

        Right after CreateSubmission, GetSubmission may answer 404 for a while: that is pending.
        """
        started = time.monotonic()
        deadline = started + timeout
        while True:
            state = self.submission(ref)
            if state is None:
                if time.monotonic() - started > VISIBILITY_GRACE:
                    raise KaggleError(
                        f"Kaggle does not know submission {ref} {VISIBILITY_GRACE:.0f} s after creating it. Fix: run "
                        f"'make status' later"
                    )
                state = SubmissionState(ref=ref, status="PENDING")
            if state.status != "PENDING" or time.monotonic() + poll > deadline:
                return state
            time.sleep(poll)
            poll = min(poll * 1.5, max_poll)


def _never_sent(error: Exception) -> bool:
    """True when the connection could not even be opened: the request cannot have reached Kaggle."""
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _storage_failure(status: int, what: str) -> KaggleError:
    if status in (401, 403):
        return KaggleUnavailable(
            f"Kaggle's storage refused the signed URL (HTTP {status}, expired?) while {what}. Fix: run again"
        )
    if status == 429 or status >= 500:
        return KaggleUnavailable(f"Kaggle's storage kept failing while {what} (HTTP {status}). Fix: try again later")
    return KaggleError(f"Kaggle's storage answered HTTP {status} while {what}. Fix: run again")


def utc_text(moment: datetime | None) -> str:
    """Kaggle's dates are UTC without a zone: say so."""
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(submission) -> SubmissionState:
    status = submission.status.name if hasattr(submission.status, "name") else str(submission.status)
    return SubmissionState(
        ref=submission.ref,
        status=status,
        public_score=submission.public_score or "",
        private_score=submission.private_score or "",
        error=submission.error_description or "",
        date=utc_text(submission.date),
        description=submission.description or "",
        file_name=submission.file_name or "",
        team_name=submission.team_name or "",
    )
