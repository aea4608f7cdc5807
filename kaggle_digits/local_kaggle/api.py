"""The API host: the JSON-over-POST protocol of kagglesdk, as kaggle.com answers it.

Where kaggle.com is strict, so is this: files are never served here but by redirect to signed
storage URLs on another host; GetSubmission answers 404 for a moment after a create;
CreateSubmission is not idempotent (the same blob token twice makes two submissions);
GetSubmissionLimits counts `numTotal` over the team's lifetime and is all zeros for a competition
whose rules were not accepted; ListSubmissions is paged.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import secrets
import time
import zipfile
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from . import storage
from .competitions import Competition, Submission, leaderboard, score
from .kernels import OUTPUT_BUCKET, log_text
from .plumbing import MAX_BODY, MAX_FAULT_COUNT, MAX_FAULT_DELAY, MAX_FAULTS, BaseHandler, Fault, Upload

LEADERBOARD_MAX_PAGE = 200  # GetLeaderboard's largest page (the official CLI: "max is 200")


class ApiHandler(BaseHandler):
    def _user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return self.state.tokens.get(header[7:].strip())
        if header.startswith("Basic "):
            try:
                username, key = base64.b64decode(header[6:]).decode().split(":", 1)
            except (ValueError, UnicodeDecodeError):
                return None
            return username if self.state.users.get(username) == key else None
        return None

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        path = urlparse(self.path).path
        authorization = self.headers.get("Authorization", "")
        if authorization:
            self.state.credentials_seen.append(authorization)
        if path == "/_local/faults":
            self._faults()
            return
        if not path.startswith("/api/v1/"):
            self.close_connection = True  # the body is never read
            self.error(404, f"no such endpoint {path}")
            return
        service, _, method = path[len("/api/v1/") :].partition("/")
        self.state.requests.append(f"POST {method}")
        introspect = service == "security.OAuthService" and method == "IntrospectToken"
        # Credentials before the body: a caller without this start's secret gets 401 and nothing is read.
        user = self._user()
        if not introspect:
            self.state.api_auth.append(f"{authorization.split(' ')[0] or 'none'} {user}")
            if user is None:
                self.close_connection = True
                self.error(401, "Unauthenticated: the access token or API key was not accepted")
                return
        raw = self.body(64 << 10 if introspect else MAX_BODY)
        if raw is None or self.apply_fault(method):  # the body is read first: the connection stays usable
            return
        request = self._parse_json(raw)
        if request is None:
            return
        if introspect:
            token = str(request.get("token", ""))
            self.state.credentials_seen.append(f"introspect {token}")
            username = self.state.tokens.get(token)
            self.json(200, {"active": bool(username), "username": username or "", "clientId": "local", "scope": "api"})
            return
        assert user is not None
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            self.error(404, f"{service}/{method} is not implemented by the local Kaggle server")
            return
        try:
            handler(request, user)
        except (ValueError, TypeError, binascii.Error) as error:  # a field of the wrong type or shape
            self.error(400, f"bad request to {method}: {type(error).__name__}: {error}")

    def _json_body(self, limit: int) -> dict[str, Any] | None:
        """The body as a JSON object, or None after answering 400 (malformed) or 413 (too large)."""
        body = self.body(limit)
        return None if body is None else self._parse_json(body)

    def _parse_json(self, body: bytes) -> dict[str, Any] | None:
        try:
            request = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.error(400, "request body is not JSON")
            return None
        if not isinstance(request, dict):
            self.error(400, "request body is not a JSON object")
            return None
        return request

    def _faults(self) -> None:
        """POST /_local/faults: the tests' fault injection, behind the same secret and with caps."""
        if self._user() is None:
            self.close_connection = True
            self.error(401, "Unauthenticated: the access token or API key was not accepted")
            return
        spec = self._json_body(64 << 10)
        if spec is None:
            return
        try:
            fault = Fault(**spec)
            fault.count = int(fault.count)
            fault.delay = float(fault.delay)
            if not (1 <= fault.count <= MAX_FAULT_COUNT and 0 <= fault.delay <= MAX_FAULT_DELAY):
                raise ValueError(f"count 1..{MAX_FAULT_COUNT}, delay 0..{MAX_FAULT_DELAY:g} s")
        except (TypeError, ValueError) as error:
            self.error(400, f"bad fault: {error}")
            return
        with self.state.lock:
            if len(self.state.faults) >= MAX_FAULTS:
                self.error(429, f"at most {MAX_FAULTS} faults may be pending")
                return
            self.state.faults.append(fault)
        self.json(200, {"faults": len(self.state.faults)})

    def do_GET(self) -> None:  # noqa: N802
        self.error(404, "files are served by the storage host, through the URLs the API redirects to")

    do_PUT = do_GET

    # --- helpers --------------------------------------------------------------------------------
    def _competition(self, request: dict[str, Any], joined: bool = True) -> Competition | None:
        name = request.get("competitionName", "")
        competition = self.state.competitions.get(name)
        if competition is None or competition.is_dataset:
            self.error(404, f"Competition '{name}' not found")
            return None
        if joined and not competition.rules_accepted:
            self.error(403, "Permission 'competitions.participate' was denied")
            return None
        return competition

    def _redirect(self, location: str) -> None:
        self.send_body(302, b"", "text/plain", {"Location": location})

    def _page(self, request: dict[str, Any], items: list, max_size: int) -> tuple[list, str] | None:
        """One page of `items` as kaggle.com pages its lists (pageSize, an opaque pageToken); None after a 400."""
        size = min(int(request.get("pageSize") or self.state.page_size), max_size)
        try:
            start = int(base64.urlsafe_b64decode(request.get("pageToken") or "MA==").decode())  # "0"
        except (ValueError, binascii.Error, UnicodeDecodeError):
            self.error(400, "Invalid page token")
            return None
        following = start + size
        token = base64.urlsafe_b64encode(str(following).encode()).decode() if following < len(items) else ""
        return items[start:following], token

    def _mine(self, name: str) -> list[Submission]:
        return [submission for submission in self.state.submissions if submission.competition == name]

    # --- data -----------------------------------------------------------------------------------
    def _api_DownloadDataFiles(self, request, user) -> None:  # noqa: N802 - Kaggle's method names
        competition = self._competition(request)
        if competition:
            self._redirect(storage.signed_download_url(self.state, competition.name, f"{competition.name}.zip"))

    def _api_DownloadDataFile(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if competition:
            name = request.get("fileName", "")
            if name not in competition.files:
                self.error(404, f"File '{name}' not found in {competition.name}")
                return
            self._redirect(storage.signed_download_url(self.state, competition.name, name))

    def _api_DownloadDataset(self, request, user) -> None:  # noqa: N802 - datasets.DatasetApiService
        slug = request.get("datasetSlug", "")
        dataset = self.state.competitions.get(slug)
        if dataset is None or not dataset.is_dataset or dataset.task.ref != f"{request.get('ownerSlug')}/{slug}":
            self.error(404, f"Dataset '{request.get('ownerSlug')}/{slug}' not found")
            return
        self._redirect(storage.signed_download_url(self.state, slug, f"{slug}.zip"))

    def _api_ListDataFiles(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if competition:
            files = [
                {"ref": name, "name": name, "totalBytes": len(content), "creationDate": "2024-01-01T00:00:00.000Z"}
                for name, content in competition.files.items()
            ]
            self.json(200, {"files": files})

    # --- submissions ----------------------------------------------------------------------------
    def _api_GetSubmissionLimits(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request, joined=False)
        if not competition:
            return
        if not competition.rules_accepted:  # kaggle.com: all zeros for a competition the user has not joined
            self.json(200, {"numToday": 0, "numTotal": 0, "numAllowedNow": 0})
            return
        today = self._today_count(competition.name)
        self.json(
            200,
            {
                "numToday": today,
                "numTotal": len(self._mine(competition.name)),
                "numAllowedNow": max(0, self.state.daily_limit - today),
            },
        )

    def _api_StartSubmissionUpload(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if competition:
            upload = Upload(
                token=secrets.token_hex(12),
                upload_id=secrets.token_urlsafe(24),
                size=int(request.get("contentLength") or 0),
                file_name=request.get("fileName") or "submission.csv",
            )
            with self.state.lock:
                self.state.uploads[upload.token] = upload
            self.json(200, {"token": upload.token, "createUrl": storage.resumable_upload_url(self.state, upload)})

    def _api_CreateSubmission(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if not competition:
            return
        upload = self.state.uploads.get(request.get("blobFileTokens", ""))
        if upload is None or upload.content is None:
            self.error(400, "The submission file was not uploaded (unknown or incomplete blob token)")
            return
        if self._today_count(competition.name) >= self.state.daily_limit:
            self.error(
                400, f"Submission not allowed: your team has used its {self.state.daily_limit} submissions for today"
            )
            return
        # Not idempotent, like kaggle.com: the same blob token again is one more submission.
        with self.state.lock:
            number = len(self.state.submissions) + 1
            now = time.monotonic()
            submission = Submission(
                ref=100000 + number,
                competition=competition.name,
                file_name=upload.file_name,
                description=request.get("submissionDescription", ""),
                content=upload.content,
                date=datetime.now(timezone.utc).replace(tzinfo=None),
                team=self.state.teams.get(user, user),
                visible_at=now + self.state.visibility_delay,
                listed_at=now + self.state.listing_delay,
                ready_at=now + self.state.scoring_delay,
            )
            self.state.submissions.append(submission)
        answer: dict[str, Any] = {"message": f"Successfully submitted to {competition.name}"}
        if not self.state.ref_less_create:
            answer["ref"] = submission.ref
        self.json(200, answer)

    def _api_GetSubmission(self, request, user) -> None:  # noqa: N802
        ref = int(request.get("ref") or 0)
        found = [s for s in self.state.submissions if s.ref == ref and time.monotonic() >= s.visible_at]
        if not found:
            self.error(404, f"Submission {ref} not found")
            return
        self.json(200, self._describe(found[0], user))

    def _api_ListSubmissions(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if not competition:
            return
        now = time.monotonic()
        # Newest first, as kaggle.com lists them, and only once listed (its list lags behind a create).
        mine = [item for item in reversed(self._mine(competition.name)) if now >= item.listed_at]
        paged = self._page(request, mine, self.state.page_size)
        if paged is not None:
            page, token = paged
            self.json(200, {"submissions": [self._describe(s, user) for s in page], "nextPageToken": token})

    def _api_GetLeaderboard(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request, joined=False)  # anyone may read a public leaderboard
        if not competition:
            return
        for submission in self._mine(competition.name):
            self._settle(submission)
        board = leaderboard(competition, self._mine(competition.name))
        paged = self._page(request, board, LEADERBOARD_MAX_PAGE)
        if paged is not None:
            page, token = paged
            rows = [
                {
                    "teamId": team.team_id,
                    "teamName": team.name,
                    "submissionDate": team.date.isoformat(timespec="milliseconds") + "Z",
                    "score": team.score,
                }
                for team in page
            ]
            self.json(200, {"submissions": rows, "nextPageToken": token})

    def _api_DownloadLeaderboard(self, request, user) -> None:  # noqa: N802
        """The whole public leaderboard as a zip of one CSV (`kaggle competitions leaderboard --download`)."""
        competition = self._competition(request, joined=False)
        if not competition:
            return
        for submission in self._mine(competition.name):
            self._settle(submission)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["TeamId", "TeamName", "SubmissionDate", "Score"])
        for team in leaderboard(competition, self._mine(competition.name)):
            writer.writerow([team.team_id, team.name, team.date.strftime("%Y-%m-%d %H:%M:%S"), team.score])
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{competition.name}-publicleaderboard.csv", text.getvalue())
        self.send_body(
            200,
            buffer.getvalue(),
            "application/zip",
            {"Content-Disposition": f'attachment; filename="{competition.name}.zip"'},
        )

    # --- scoring --------------------------------------------------------------------------------
    def _settle(self, submission: Submission) -> None:
        """Scored once its delay has passed, whoever asks first (a poll, a list, the leaderboard)."""
        if submission.status == "PENDING" and time.monotonic() >= submission.ready_at:
            score(submission, self.state.competitions[submission.competition])

    def _today_count(self, name: str) -> int:
        today = datetime.now(timezone.utc).date()
        return sum(1 for s in self._mine(name) if s.date.date() == today)

    def _describe(self, submission: Submission, user: str) -> dict[str, Any]:
        self._settle(submission)
        return {
            "ref": submission.ref,
            "totalBytes": len(submission.content),
            "date": submission.date.isoformat(timespec="milliseconds") + "Z",
            "description": submission.description,
            "errorDescription": submission.error_description,
            "fileName": submission.file_name,
            "publicScore": submission.public_score,
            "privateScore": submission.private_score,
            "status": submission.status,
            "submittedBy": user,
            "teamName": submission.team or user,
            "url": f"/submissions/{submission.ref}",
        }

    # --- kernels (kernels.py runs them) -----------------------------------------------------------
    def _api_SaveKernel(self, request, user) -> None:  # noqa: N802 - kernels.KernelsApiService
        status, answer = self.state.kernels.save(request, user)
        self.json(status, answer)

    def _api_GetKernelSessionStatus(self, request, user) -> None:  # noqa: N802
        status, message, session = self.state.kernels.find(request, user)
        if session is None:
            self.error(status, message)
            return
        self.json(200, {"status": session.status, "failureMessage": session.failure_message})

    def _api_ListKernelSessionOutput(self, request, user) -> None:  # noqa: N802
        status, message, session = self.state.kernels.find(request, user)
        if session is None:
            self.error(status, message)
            return
        paged = self._page(request, self.state.kernels.outputs(session), self.state.page_size)
        if paged is None:
            return
        files, token = paged
        page = [
            {
                "fileName": name,
                "url": storage.signed_download_url(self.state, str(session.id), name, bucket=OUTPUT_BUCKET),
            }
            for name, _ in files
        ]
        self.json(200, {"files": page, "log": log_text(session) if session.done else "", "nextPageToken": token})

    def _api_GetKernel(self, request, user) -> None:  # noqa: N802
        kernel = self.state.kernels.kernel(request, user)
        if kernel is None:
            self.error(
                403, f"Permission 'kernels.get' was denied for '{request.get('userName')}/{request.get('kernelSlug')}'"
            )
            return
        self.json(
            200,
            {
                "metadata": self.state.kernels.metadata(kernel),
                "blob": {"source": "", "language": "python", "kernelType": "script"},
            },
        )

    def _api_ListKernels(self, request, user) -> None:  # noqa: N802
        owner, search = request.get("user") or "", (request.get("search") or "").lower()
        kernels = [
            self.state.kernels.metadata(kernel)
            for (author, slug), kernel in list(self.state.kernels.kernels.items())
            # Private kernels are listed to their owner only; `search` matches the title.
            if author == user and (not owner or owner == author) and search in kernel.title.lower() and kernel.sessions
        ]
        paged = self._page(request, kernels, 100)
        if paged is not None:
            page, token = paged
            self.json(200, {"kernels": page, "nextPageToken": token})

    def _api_DeleteKernel(self, request, user) -> None:  # noqa: N802
        status, message = self.state.kernels.delete(request, user)
        if status != 200:
            self.error(status, message)
            return
        self.json(200, {})

    def _api_CancelKernelSession(self, request, user) -> None:  # noqa: N802
        self.json(200, {"errorMessage": self.state.kernels.cancel(int(request.get("kernelSessionId") or 0))})

    def _api_GetAcceleratorQuotaStatistics(self, request, user) -> None:  # noqa: N802
        self.json(200, self.state.kernels.quota())
