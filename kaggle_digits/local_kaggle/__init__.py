"""A Kaggle-compatible server on loopback, so the official client runs offline: demo, tests, dry runs.

It is as strict as kaggle.com where the official client meets it, and no stricter (the official
`kaggle` CLI runs against it in the tests). It trusts only its own children: it binds 127.0.0.1,
answers loopback Host names with its own port only, refuses cross-origin (browser) requests, and
accepts a token and key made at its start (State.token, State.key), never a published one:

- api.py: the API host. JSON POSTs to `/api/v1/<service>/<Method>`, as kagglesdk sends them;
  credentials checked; submissions scored like Kaggle (categorization accuracy on a hidden,
  labeled test set split 25% public / 75% private); a daily limit; faults injected on demand.
- storage.py: the storage host, on another host name: signed download URLs that expire, resumable
  upload URLs, and a 401 (recorded for the tests) for any request that carries credentials.
- competitions.py: competitions made from labeled Kaggle-layout data, and their scoring.
- plumbing.py: the shared state, injected faults, the HTTP plumbing. server.py: both hosts started.
"""

from .competitions import (
    Competition,
    Submission,
    builtin_competitions,
    competition_from_arrays,
    competition_from_labeled,
)
from .kernels import KernelSettings
from .plumbing import DEMO_USER, Fault, State, new_token
from .server import DEFAULT_PORT, LocalKaggleServer, serve_builtin, write_token_file

__all__ = [
    "Competition",
    "Submission",
    "builtin_competitions",
    "competition_from_arrays",
    "competition_from_labeled",
    "DEMO_USER",
    "new_token",
    "Fault",
    "KernelSettings",
    "State",
    "DEFAULT_PORT",
    "LocalKaggleServer",
    "serve_builtin",
    "write_token_file",
]
