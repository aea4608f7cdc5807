"""Kaggle credentials, found where the official client 2.2.x finds them, in its order.

Read off `kaggle/api/kaggle_api_extended.py` (`authenticate`, `_introspect_token`, the class-level
`config_dir`) and `kagglesdk/kaggle_env.py` (`get_access_token_from_env`):

1. an access token: `KAGGLE_API_TOKEN` (a file's path when such a file exists, else the value), then
   `~/.kaggle/access_token`, then `~/.kaggle/access_token.txt` (always under the home folder:
   `KAGGLE_CONFIG_DIR` does not move them). The client checks it with IntrospectToken and, when
   that says it is invalid, falls through to the next kind (see `client.Kaggle`).
2. a legacy key: `kaggle.json` in the config folder (`KAGGLE_CONFIG_DIR`, else `~/.kaggle`, else on
   Linux when that is missing `$XDG_CONFIG_HOME/kaggle` or `~/.config/kaggle`), each of its two
   values overridden by `KAGGLE_USERNAME` / `KAGGLE_KEY` when set.
3. OAuth: `~/.kaggle/credentials.json`, written by `kaggle auth login` (refreshed through the API).

A secret is registered with `redact` the moment it is read, and never appears in a message.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import redact
from ..errors import AuthError
from .sdk import sdk

log = logging.getLogger("kaggle_digits")

TOKEN_HELP = (
    "create an API token at https://www.kaggle.com/settings (API section) and save it as ~/.kaggle/access_token "
    "(or export KAGGLE_API_TOKEN), or put the legacy kaggle.json in ~/.kaggle/, or run 'kaggle auth login'"
)
# What an HTTP header can carry: printable ASCII without spaces. Anything else inside a token is a
# pasting accident (a second line, a space), and requests would print the whole value in its error.
_TOKEN_CHARACTERS = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Credentials:
    """Where the client's secret came from. The secret itself is never shown (see __repr__)."""

    source: str
    token: str | None = None
    username: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        basic = None
        if self.username and self.key:
            basic = base64.b64encode(f"{self.username}:{self.key}".encode()).decode()
        redact.register(self.token, self.key, basic)

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r}, kind={'token' if self.token else 'key'}, secret=***)"

    __str__ = __repr__


def home() -> Path:
    return Path(os.path.expanduser("~"))


def config_dir() -> Path:
    """Where kaggle.json lives, as the official client picks it."""
    configured = os.environ.get("KAGGLE_CONFIG_DIR")
    if configured:
        return Path(configured)
    folder = home() / ".kaggle"
    if sys.platform.startswith("linux") and not folder.exists():
        return Path(os.environ.get("XDG_CONFIG_HOME") or home() / ".config") / "kaggle"
    return folder


def _checked_token(value: str, where: str) -> str:
    token = value.strip()
    if not _TOKEN_CHARACTERS.fullmatch(token):
        redact.register(token, *token.split())  # even the pieces: a line of it must not leak either
        raise AuthError(
            f"{where}: the access token has a space, a line break or another character a token cannot have inside it. "
            f"Fix: save the token alone, on one line (copy it again from https://www.kaggle.com/settings)"
        )
    return token


def _token_file(path: Path, where: str) -> str | None:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        raise AuthError(
            f"{where}: cannot read the access token file. Fix: check that it is a readable text file"
        ) from None
    if not text.strip():
        return None  # an empty file is skipped, as the official client skips it
    return _checked_token(text, where)


def explicit_token() -> Credentials | None:
    """KAGGLE_API_TOKEN alone (its value, or the file it names): what may go to an endpoint that is not kaggle.com."""
    value = os.environ.get("KAGGLE_API_TOKEN")
    if not value:
        return None
    if Path(value).exists():
        where = f"KAGGLE_API_TOKEN (file {value})"
        token = _token_file(Path(value), where)
        if token:
            _warn_if_readable(Path(value))  # the crontab recipe names its file so: the same warning as the others
        return Credentials(source=where, token=token) if token else None
    if "/" in value:  # a token has no slash: this names a file that is gone (cron's crontab line, say)
        raise AuthError(
            f"KAGGLE_API_TOKEN names the file {value}, which does not exist. Fix: save the token there (mode 600)"
        )
    return Credentials(source="KAGGLE_API_TOKEN", token=_checked_token(value, "KAGGLE_API_TOKEN"))


def access_token() -> Credentials | None:
    """The first access token in the official order (see the module's docstring), or None."""
    explicit = explicit_token()
    if explicit is not None:
        return explicit
    for name in ("access_token", "access_token.txt"):
        path = home() / ".kaggle" / name
        if path.is_file():
            token = _token_file(path, str(path))
            if token:
                _warn_if_readable(path)
                return Credentials(source=str(path), token=token)
    return None


def legacy_key() -> Credentials | None:
    """kaggle.json in the config folder, each value overridden by KAGGLE_USERNAME / KAGGLE_KEY."""
    path = config_dir() / "kaggle.json"
    values: dict = {}
    broken = False
    if path.is_file():
        try:
            values = json.loads(path.read_text())
            if not isinstance(values, dict):
                values, broken = {}, True
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            broken = True
    from_file = {name for name in ("username", "key") if values.get(name)}
    for name in ("username", "key"):
        if os.environ.get(f"KAGGLE_{name.upper()}"):
            values[name] = os.environ[f"KAGGLE_{name.upper()}"]
            from_file.discard(name)
    username, key = values.get("username"), values.get("key")
    if not (username and key):
        if broken:
            raise AuthError(
                f"{path}: not a kaggle.json with 'username' and 'key'. Fix: download it again, or {TOKEN_HELP}"
            )
        return None
    if from_file:
        _warn_if_readable(path)
    if from_file == {"username", "key"}:
        source = str(path)
    elif not from_file:
        source = "KAGGLE_USERNAME + KAGGLE_KEY"
    else:
        source = f"KAGGLE_USERNAME/KAGGLE_KEY and {path}"
    return Credentials(source=source, username=str(username), key=str(key))


def oauth(client) -> Credentials | None:
    """`kaggle auth login`'s ~/.kaggle/credentials.json, through kagglesdk's own loader (it refreshes
    the short-lived access token through the API when needed)."""
    saved = sdk().KaggleCredentials.load(client=client)
    if saved is None:
        return None
    token = saved.get_access_token()
    if not token:
        return None
    where = str(home() / ".kaggle" / "credentials.json")
    return Credentials(
        source=f"{where} (kaggle auth login)", token=_checked_token(token, where), username=saved.get_username()
    )


def places_tried() -> str:
    return ", ".join(
        [
            "KAGGLE_API_TOKEN",
            str(home() / ".kaggle" / "access_token"),
            str(config_dir() / "kaggle.json"),
            "KAGGLE_USERNAME + KAGGLE_KEY",
            str(home() / ".kaggle" / "credentials.json"),
        ]
    )


def _warn_if_readable(path: Path) -> None:
    if path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("warning: %s is readable by other users of this machine. Fix: chmod 600 %s", path, path)
