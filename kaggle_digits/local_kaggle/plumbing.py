"""What both hosts share: the server's state, injected faults, and the HTTP plumbing of a handler."""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .competitions import Competition, Submission

log = logging.getLogger("kaggle_digits.local_kaggle")

DEMO_USER = "demo-user"
MAX_BODY = 32 << 20  # bytes a request body may have (a pushed kernel script is ~200 kB; an upload goes to storage)
MAX_FAULTS = 100  # injected faults pending at once, each at most MAX_FAULT_COUNT times and MAX_FAULT_DELAY s
MAX_FAULT_COUNT = 1000
MAX_FAULT_DELAY = 30.0


def new_token() -> str:
    """A secret made at each start (nothing published works): handed to the server's own children."""
    return "KGAT_local_" + secrets.token_urlsafe(24)


@dataclass
class Fault:
    """An injected failure, `count` times: answer `status`, stall `delay` s, or drop the connection.

    `method` is an API method name, "download" or "upload" (the storage host), or "*".
    """

    method: str = "*"
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False  # close the connection without answering (nothing was done)
    lost: bool = False  # do the work, then close the connection: the answer is lost, the effect is not
    cut: bool = False  # downloads only: send half the body, then close
    count: int = 1


@dataclass
class Upload:
    """One StartSubmissionUpload: its blob token (for CreateSubmission) and its storage session."""

    token: str
    upload_id: str
    size: int
    file_name: str
    content: bytes | None = None  # set once storage has the whole file


@dataclass
class State:
    competitions: dict[str, Competition]
    # This start's secrets: an access token and a legacy key for DEMO_USER, random unless a test names its own.
    token: str = field(default_factory=new_token)
    key: str = field(default_factory=lambda: secrets.token_hex(20))
    users: dict[str, str] = field(default_factory=dict)  # legacy username -> key (DEMO_USER's added at start)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> username (DEMO_USER's added at start)
    teams: dict[str, str] = field(
        default_factory=dict
    )  # username -> team name (default: the user name), as on the board
    daily_limit: int = 5
    scoring_delay: float = 0.5
    visibility_delay: float = 0.5  # GetSubmission answers 404 this long after a create, as kaggle.com can
    url_ttl: int = 300  # seconds a signed storage URL stays valid
    page_size: int = 20  # ListSubmissions answers at most this many per page, with a nextPageToken
    # CreateSubmission answers with a message only (no ref), as some Kaggle-compatible servers do.
    ref_less_create: bool = False
    # A new submission shows in ListSubmissions only this long after its create: kaggle.com's list lags.
    listing_delay: float = 0.0
    storage_base: str = ""  # http://127.0.0.1:<port>: another host name than the API's "localhost"
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    submissions: list[Submission] = field(default_factory=list)
    uploads: dict[str, Upload] = field(default_factory=dict)  # by blob token
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "POST CreateSubmission", "PUT upload", ... for tests
    api_auth: list[str] = field(default_factory=list)  # "Bearer demo-user", "Basic demo-user": who called, how
    # Every request that reached the storage host with an Authorization header: tests assert it stays empty.
    storage_auth_seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    kernels: Any = None  # kernels.KernelRunner, set by the server (it needs this state)
    # Every credential value that reached the API host (Authorization headers, introspected tokens): tests
    # assert that a user's stored credentials never appear here.
    credentials_seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.users.setdefault(DEMO_USER, self.key)
        self.tokens.setdefault(self.token, DEMO_USER)

    def take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method in (method, "*") and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None


class BaseHandler(BaseHTTPRequestHandler):
    server_version = "LocalKaggle/1.0"
    protocol_version = "HTTP/1.1"
    state: State  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("%s " + format, self.address_string(), *args)

    def send_body(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        if getattr(self, "_lose_response", False):
            self.drop_connection()  # an injected "lost response": the work is done, the answer never arrives
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.send_body(status, json.dumps(body).encode(), "application/json", headers)

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.json(status, {"code": status, "message": message}, headers)

    def drop_connection(self) -> None:
        self.close_connection = True
        self.connection.shutdown(2)

    def parse_request(self) -> bool:
        """Before any handler: only this server's loopback Host names, and no browser's cross-origin request.

        A web page can reach 127.0.0.1 by DNS rebinding (its own name resolving to loopback): its requests
        then carry its own Host name, and a browser adds Origin; the official client sends neither."""
        if not super().parse_request():
            return False
        port = self.server.server_address[1]  # type: ignore[index]
        host = (self.headers.get("Host") or "").strip().lower()
        names = ("localhost", "127.0.0.1", "[::1]")
        allowed = {f"{name}:{port}" for name in names} | (set(names) if port == 80 else set())  # HTTP omits :80
        if host not in allowed:
            self.close_connection = True
            self.error(
                421,
                f"this server answers loopback names with its port only (localhost:{port}, 127.0.0.1:{port}), not "
                f"{host!r}",
            )
            return False
        if self.headers.get("Origin") is not None:
            self.close_connection = True
            self.error(403, "cross-origin requests are refused (a browser page cannot use this server)")
            return False
        return True

    def body(self, limit: int = MAX_BODY) -> bytes | None:
        """The request body, or None after answering 400/413 (a bad or too large Content-Length)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self.error(400, "bad Content-Length")
            return None
        if length > limit:
            self.close_connection = True  # the body is never read
            self.error(413, f"request body over {limit} bytes")
            return None
        return self.rfile.read(length) if length else b""

    def apply_fault(self, method: str) -> bool:
        """True when an injected fault answered (or dropped) the request; `cut` and `lost` act later."""
        self._cut = self._lose_response = False
        fault = self.state.take_fault(method)
        if fault is None:
            return False
        if fault.delay:
            time.sleep(fault.delay)
        if fault.cut or fault.lost:
            self._cut, self._lose_response = fault.cut, fault.lost
            return False
        if fault.drop:
            self.drop_connection()
            return True
        if fault.status:
            # Retry-After in whole seconds, as HTTP (and Kaggle) send it.
            headers = {"Retry-After": str(math.ceil(fault.retry_after))} if fault.retry_after is not None else None
            self.error(fault.status, "Too many requests" if fault.status == 429 else "injected fault", headers)
            return True
        return False


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # Clients hang up mid-answer all the time here (an unchanged zip's body is never read, faults
        # drop connections): log it, do not print tracebacks over the user's terminal.
        log.debug("connection from %s ended early", client_address)
