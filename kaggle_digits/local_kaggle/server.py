"""The two hosts started together: the API on `localhost:<port>`, storage on `127.0.0.1:<another port>`."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .api import ApiHandler
from .competitions import Competition, builtin_competitions
from .kernels import KernelRunner, KernelSettings
from .plumbing import Fault, QuietServer, State
from .storage import StorageHandler

DEFAULT_PORT = 7777  # kagglesdk's KAGGLE_API_ENVIRONMENT=TEST endpoint: http://localhost:7777


class LocalKaggleServer:
    """The server as a Python object: `with LocalKaggleServer(competitions) as server: ...`.

    The client reaches the API as `localhost` (kagglesdk's TEST and LOCALHOST endpoints) and storage
    as `127.0.0.1`: two host names, as api.kaggle.com and storage.googleapis.com are, so that
    requests drops credentials on the redirect and a client that adds them back is caught.
    """

    def __init__(
        self,
        competitions: list[Competition],
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        storage_port: int = 0,
        kernels: KernelSettings | None = None,
        **state: Any,
    ):
        self.state = State(competitions={competition.name: competition for competition in competitions}, **state)
        self.state.kernels = KernelRunner(self.state, kernels or KernelSettings())
        self.httpd = QuietServer((host, port), type("Api", (ApiHandler,), {"state": self.state}))
        try:
            self.storage = QuietServer(
                ("127.0.0.1", storage_port), type("Storage", (StorageHandler,), {"state": self.state})
            )
        except OSError:
            self.httpd.server_close()
            raise
        self.state.storage_base = f"http://127.0.0.1:{self.storage.server_address[1]}"
        self.threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def inject(self, **fault: Any) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(**fault))

    def start(self) -> LocalKaggleServer:
        for name, server in (("local-kaggle-api", self.httpd), ("local-kaggle-storage", self.storage)):
            thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self.httpd, self.storage):
            server.shutdown()
            server.server_close()
        self.state.kernels.close()

    def __enter__(self) -> LocalKaggleServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_builtin(port: int = DEFAULT_PORT, source: Path | None = None, **state: Any) -> LocalKaggleServer:
    """Start the server in background threads; a busy port is one clear line."""
    competitions = builtin_competitions(source)
    try:
        server = LocalKaggleServer(competitions, port=port, **state)
    except OSError as error:
        raise UsageError(
            f"cannot listen on 127.0.0.1:{port} ({error.strerror}). Fix: stop whatever uses it "
            f"(another 'kaggle-digits serve-local'?) or pass --port"
        ) from None
    return server.start()


def write_token_file(server: LocalKaggleServer, path: Path) -> Path:
    """This start's token in a file only its owner can read (KAGGLE_API_TOKEN may name a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an older file of another mode is tightened too
    with os.fdopen(descriptor, "w") as handle:
        handle.write(server.state.token + "\n")
    return path
