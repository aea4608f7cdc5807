"""A Kaggle-compatible server on loopback, so the official client runs offline: demo, tests, dry runs.

It speaks the wire protocol the `kaggle`/`kagglesdk` client uses (JSON POSTs to
`/api/v1/<service>/<Method>`, redirects to file downloads, a PUT upload) for the calls this toolkit
makes, checks credentials, scores submissions the way Kaggle does (categorization accuracy on a
hidden, labeled test set split 25% public / 75% private), enforces a daily limit, and injects
faults (429, 500, slow or dropped responses, cut downloads) on demand.

A competition is made from any labeled Kaggle-layout zip: part of its train.csv becomes the hidden
test set; test.csv and sample_submission.csv are generated from it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from . import config, data, layout
from .config import Task

log = logging.getLogger("kaggle_digits.local_kaggle")

DEFAULT_PORT = 7777  # kagglesdk's KAGGLE_API_ENVIRONMENT=TEST endpoint: http://localhost:7777
DEMO_USER = "demo-user"
DEMO_KEY = "local-demo-key-0000"
DEMO_TOKEN = "KGAT_local_demo_token_0000"


@dataclass
class Submission:
    ref: int
    competition: str
    file_name: str
    description: str
    content: bytes
    date: datetime
    status: str = "PENDING"
    public_score: str = ""
    private_score: str = ""
    error_description: str = ""
    ready_at: float = 0.0


@dataclass
class Competition:
    """One served competition (or data set): the files users download and the hidden answers."""

    name: str
    task: Task
    files: dict[str, bytes]  # name -> bytes, what the download zip holds
    hidden_labels: np.ndarray | None = None  # the answers, in test.csv order
    hidden_ids: np.ndarray | None = None
    public_mask: np.ndarray | None = None
    rules_accepted: bool = True
    is_dataset: bool = False

    @property
    def archive(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in self.files.items():
                # A fixed timestamp: the same competition is the same bytes (and ETag) on every start.
                archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), content, zipfile.ZIP_DEFLATED)
        return buffer.getvalue()


def competition_from_labeled(source: Path, task: Task | None = None, name: str | None = None,
                             test_fraction: float = 0.2, seed: int = 0, max_rows: int | None = None) -> Competition:
    """Make a competition from a labeled Kaggle-layout zip or folder: hold part of train.csv back as the test set."""
    task = task or config.BUILTIN_TASKS[config.DEFAULT_TASK]
    labeled = data.load(source, task, use_cache=False)
    images, labels = labeled.train_images, labeled.train_labels
    if max_rows and len(labels) > max_rows:
        images, labels = images[:max_rows], labels[:max_rows]
    return competition_from_arrays(task, images, labels, name=name, test_fraction=test_fraction, seed=seed)


def competition_from_arrays(task: Task, images: np.ndarray, labels: np.ndarray, name: str | None = None,
                            test_fraction: float = 0.2, seed: int = 0) -> Competition:
    train, test = layout.split_holdout(labels, int(round(len(labels) * test_fraction)), seed)
    files = layout.task_files(task, images[train], labels[train], images[test], labels[test])
    rng = np.random.default_rng(seed + 1)
    public = np.zeros(len(test), dtype=bool)
    public[rng.choice(len(test), max(1, len(test) // 4), replace=False)] = True  # Kaggle's 25% public split
    hidden_ids = np.arange(1, len(test) + 1) if not task.test_id_column else np.arange(len(test))
    return Competition(
        name=name or task.ref.split("/")[-1],  # a data set is served under its slug
        task=task,
        files=files,
        hidden_labels=labels[test],
        hidden_ids=hidden_ids,
        public_mask=public,
        is_dataset=task.source == "dataset",
    )


@dataclass
class Fault:
    """An injected failure: answer `status` (or stall `delay` s, or drop the connection) `count` times."""

    method: str = "*"  # an API method name, "download" for file bodies, "upload" for the PUT, or "*"
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False  # close the connection without answering
    cut: bool = False  # downloads only: send half the body, then close
    count: int = 1


@dataclass
class State:
    competitions: dict[str, Competition]
    users: dict[str, str] = field(default_factory=lambda: {DEMO_USER: DEMO_KEY})  # legacy username -> key
    tokens: dict[str, str] = field(default_factory=lambda: {DEMO_TOKEN: DEMO_USER})  # access token -> username
    daily_limit: int = 5
    scoring_delay: float = 0.5
    # Behave like a leaner Kaggle-compatible server: no IntrospectToken, CreateSubmission without a ref.
    minimal: bool = False
    submissions: list[Submission] = field(default_factory=list)
    uploads: dict[str, bytes | None] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "POST CreateSubmission", "PUT upload", ... for tests
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method in (method, "*") and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    server_version = "LocalKaggle/1.0"
    protocol_version = "HTTP/1.1"
    state: State  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("%s " + format, self.address_string(), *args)

    # --- plumbing -------------------------------------------------------------------------------
    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"code": status, "message": message}, headers)

    def _apply_fault(self, method: str) -> bool:
        """True when the fault answered (or dropped) the request."""
        fault = self.state.take_fault(method)
        if fault is None or fault.cut:
            if fault is not None and fault.cut:
                self._cut = True
            return False
        if fault.delay:
            time.sleep(fault.delay)
        if fault.drop:
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        if fault.status:
            # Retry-After in whole seconds, as HTTP (and Kaggle) send it.
            headers = {"Retry-After": str(math.ceil(fault.retry_after))} if fault.retry_after is not None else None
            self._error(fault.status, "injected fault" if fault.status != 429 else "Too many requests", headers)
            return True
        return False

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

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _base(self) -> str:
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        return f"http://{host}"

    # --- HTTP verbs -----------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        path = urlparse(self.path).path
        body = self._body()
        if path == "/_local/faults":
            spec = json.loads(body or b"{}")
            with self.state.lock:
                self.state.faults.append(Fault(**spec))
            self._json(200, {"faults": len(self.state.faults)})
            return
        if not path.startswith("/api/v1/"):
            self._error(404, f"no such endpoint {path}")
            return
        service, _, method = path[len("/api/v1/"):].partition("/")
        self.state.requests.append(f"POST {method}")
        if self._apply_fault(method):
            return
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError:
            self._error(400, "request body is not JSON")
            return
        if service == "security.OAuthService" and method == "IntrospectToken" and not self.state.minimal:
            username = self.state.tokens.get(request.get("token", ""))
            self._json(200, {"active": bool(username), "username": username or "", "clientId": "local", "scope": "api"})
            return
        user = self._user()
        if user is None:
            self._error(401, "Unauthenticated: the access token or API key was not accepted")
            return
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            self._error(404, f"{service}/{method} is not implemented by the local Kaggle server")
            return
        handler(request, user)

    def do_PUT(self) -> None:  # noqa: N802
        path = urlparse(self.path).path
        body = self._body()
        self.state.requests.append("PUT upload")
        if self._apply_fault("upload"):
            return
        token = path.rsplit("/", 1)[-1]
        if not path.startswith("/upload/") or token not in self.state.uploads:
            self._error(404, "unknown upload URL")
            return
        self.state.uploads[token] = body
        self._json(200, {"ok": True})

    def do_GET(self) -> None:  # noqa: N802
        path = unquote(urlparse(self.path).path)
        self._cut = False
        if not path.startswith("/files/"):
            self._error(404, f"no such file {path}")
            return
        self.state.requests.append("GET download")
        if self._apply_fault("download"):
            return
        _, _, competition_name, file_name = path.split("/", 3)
        competition = self.state.competitions.get(competition_name)
        if competition is None:
            self._error(404, "not found")
            return
        content = competition.archive if file_name.endswith(".zip") and file_name not in competition.files else competition.files.get(file_name)
        if content is None:
            self._error(404, f"{file_name} not found")
            return
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        start = 0
        status = 200
        range_header = self.headers.get("Range", "")
        if range_header.startswith("bytes=") and self.headers.get("If-Range", etag) == etag:
            start = int(range_header[6:].split("-")[0] or 0)
            if start >= len(content):
                self._error(416, "range not satisfiable")
                return
            status = 206
        body = content[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/zip" if file_name.endswith(".zip") else "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", formatdate(1704067200, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.end_headers()
        if self._cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    # --- the API --------------------------------------------------------------------------------
    def _competition(self, request: dict[str, Any], key: str = "competitionName") -> Competition | None:
        name = request.get(key, "")
        competition = self.state.competitions.get(name)
        if competition is None or competition.is_dataset:
            self._error(404, f"Competition '{name}' not found")
            return None
        if not competition.rules_accepted:
            self._error(403, "Permission 'competitions.participate' was denied")
            return None
        return competition

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _api_DownloadDataFiles(self, request, user) -> None:  # noqa: N802 - Kaggle's method names
        competition = self._competition(request)
        if competition:
            self._redirect(f"{self._base()}/files/{competition.name}/{competition.name}.zip")

    def _api_DownloadDataFile(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if competition:
            name = request.get("fileName", "")
            if name not in competition.files:
                self._error(404, f"File '{name}' not found in {competition.name}")
                return
            self._redirect(f"{self._base()}/files/{competition.name}/{name}")

    def _api_DownloadDataset(self, request, user) -> None:  # noqa: N802 - datasets.DatasetApiService
        slug = request.get("datasetSlug", "")
        dataset = self.state.competitions.get(slug)
        if dataset is None or not dataset.is_dataset or dataset.task.ref != f"{request.get('ownerSlug')}/{slug}":
            self._error(404, f"Dataset '{request.get('ownerSlug')}/{slug}' not found")
            return
        self._redirect(f"{self._base()}/files/{slug}/{slug}.zip")

    def _api_ListDataFiles(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if competition:
            files = [{"ref": name, "name": name, "totalBytes": len(content), "creationDate": "2024-01-01T00:00:00.000Z"}
                     for name, content in competition.files.items()]
            self._json(200, {"files": files})

    def _api_GetSubmissionLimits(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if competition:
            today = self._today_count(competition.name)
            self._json(200, {"numToday": today, "numTotal": self.state.daily_limit,
                             "numAllowedNow": max(0, self.state.daily_limit - today)})

    def _api_StartSubmissionUpload(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if competition:
            token = hashlib.sha256(f"{time.time_ns()}-{request.get('fileName')}".encode()).hexdigest()[:24]
            self.state.uploads[token] = None
            self._json(200, {"token": token, "createUrl": f"{self._base()}/upload/{token}"})

    def _api_CreateSubmission(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if not competition:
            return
        token = request.get("blobFileTokens", "")
        content = self.state.uploads.get(token)
        if content is None:
            self._error(400, "The submission file was not uploaded (unknown or incomplete blob token)")
            return
        if self._today_count(competition.name) >= self.state.daily_limit:
            self._error(400, f"Submission not allowed: your team has used its {self.state.daily_limit} submissions for today")
            return
        with self.state.lock:
            submission = Submission(
                ref=100000 + len(self.state.submissions) + 1,
                competition=competition.name,
                file_name=f"submission-{len(self.state.submissions) + 1}.csv",
                description=request.get("submissionDescription", ""),
                content=content,
                date=datetime.now(timezone.utc).replace(tzinfo=None),
                ready_at=time.monotonic() + self.state.scoring_delay,
            )
            self.state.submissions.append(submission)
            del self.state.uploads[token]
        answer = {"message": f"Successfully submitted to {competition.name}"}
        if not self.state.minimal:
            answer["ref"] = submission.ref
        self._json(200, answer)

    def _api_GetSubmission(self, request, user) -> None:  # noqa: N802
        ref = int(request.get("ref") or 0)
        found = [submission for submission in self.state.submissions if submission.ref == ref]
        if not found:
            self._error(404, f"Submission {ref} not found")
            return
        self._json(200, self._describe(found[0], user))

    def _api_ListSubmissions(self, request, user) -> None:  # noqa: N802
        competition = self._competition(request)
        if competition:
            mine = [self._describe(s, user) for s in reversed(self.state.submissions) if s.competition == competition.name]
            self._json(200, {"submissions": mine})

    # --- scoring --------------------------------------------------------------------------------
    def _today_count(self, name: str) -> int:
        today = datetime.now(timezone.utc).date()
        return sum(1 for s in self.state.submissions if s.competition == name and s.date.date() == today)

    def _describe(self, submission: Submission, user: str) -> dict[str, Any]:
        if submission.status == "PENDING" and time.monotonic() >= submission.ready_at:
            _score(submission, self.state.competitions[submission.competition])
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
            "teamName": user,
            "url": f"/submissions/{submission.ref}",
        }


def _score(submission: Submission, competition: Competition) -> None:
    """Categorization accuracy, as Kaggle scores this competition; a malformed file becomes ERROR."""
    id_column, label_column = competition.task.submission_columns
    lines = submission.content.decode("utf-8", errors="replace").strip().splitlines()
    expected = len(competition.hidden_labels)

    def fail(reason: str) -> None:
        submission.status, submission.error_description = "ERROR", reason

    if not lines or lines[0].strip() != f"{id_column},{label_column}":
        return fail(f"Submission must have the header '{id_column},{label_column}'")
    try:
        rows = np.array([[int(value) for value in line.split(",")] for line in lines[1:]])
    except ValueError:
        return fail("Submission contains values that are not integers")
    if rows.ndim != 2 or rows.shape != (expected, 2):
        return fail(f"Submission must have {expected} rows (found {len(lines) - 1})")
    order = {image_id: index for index, image_id in enumerate(competition.hidden_ids.tolist())}
    if set(rows[:, 0].tolist()) != set(order):
        return fail(f"Submission has {id_column} values that are not in the test set, or duplicates")
    positions = np.array([order[image_id] for image_id in rows[:, 0]])
    correct = competition.hidden_labels[positions] == rows[:, 1]
    public = competition.public_mask[positions]
    submission.public_score = f"{correct[public].mean():.5f}"
    submission.private_score = f"{correct[~public].mean():.5f}"
    submission.status = "COMPLETE"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # Clients hang up mid-answer all the time here (an unchanged zip's body is never read, faults
        # drop connections): log it, do not print tracebacks over the user's terminal.
        log.debug("connection from %s ended early", client_address)


class LocalKaggleServer:
    """The server as a Python object: `with LocalKaggleServer(competitions) as server: ...`."""

    def __init__(self, competitions: list[Competition], host: str = "127.0.0.1", port: int = DEFAULT_PORT, **state: Any):
        self.state = State(competitions={competition.name: competition for competition in competitions}, **state)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = _QuietServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def inject(self, **fault: Any) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(**fault))

    def start(self) -> "LocalKaggleServer":
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="local-kaggle", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "LocalKaggleServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def builtin_competitions(source: Path | None = None) -> list[Competition]:
    """What `serve-local` and the demo serve: every built-in task.

    digit-recognizer is made from the embedded sample (or `source`). The real Fashion-MNIST and
    Kannada-MNIST data are not in the repository, so their competitions are stand-ins: the same
    sample's digits written in each task's exact file layout, so the whole flow runs offline.
    """
    digits = config.BUILTIN_TASKS["digit-recognizer"]
    sample = data.load(Path(source or config.SAMPLE_DIR / "digit-recognizer.zip"), digits, use_cache=False)
    return [
        competition_from_arrays(task, sample.train_images, sample.train_labels)
        for task in config.BUILTIN_TASKS.values()
    ]


def serve_builtin(port: int = DEFAULT_PORT, source: Path | None = None, **state: Any) -> LocalKaggleServer:
    """Start the server in a background thread; a busy port is one clear line."""
    from .errors import UsageError

    competitions = builtin_competitions(source)
    try:
        server = LocalKaggleServer(competitions, port=port, **state)
    except OSError as error:
        raise UsageError(f"cannot listen on 127.0.0.1:{port} ({error.strerror}). Fix: stop whatever uses it "
                         f"(another 'kaggle-digits serve-local'?) or pass --port") from None
    return server.start()
