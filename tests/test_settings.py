"""Settings the docs promise, checked against what the code does: the retry waits, the environment's checks, the
token file's warning, and where the locks of one checkout live."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest
from urllib3.exceptions import ConnectTimeoutError

from kaggle_digits import config, helpers
from kaggle_digits.kaggle_api import RetryPolicy, credentials


def test_the_first_retry_waits_the_stated_backoff_then_it_doubles():
    """docs/scheduling.md: KAGGLE_DIGITS_BACKOFF is the wait before the first retry (1 s), doubling. urllib3 2.x alone
    would wait nothing before the first one (0, 2, 4, 8 s): a 429 storm deserves a pause first."""
    retry = RetryPolicy(retries=5, backoff=1.0).adapter().max_retries
    waits = []
    for _ in range(5):
        retry = retry.increment(method="POST", url="/api/v1/x", error=ConnectTimeoutError("slow"))
        waits.append(retry.get_backoff_time())
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]
    capped = RetryPolicy(retries=9, backoff=30.0).adapter().max_retries
    for _ in range(4):
        capped = capped.increment(method="POST", url="/api/v1/x", error=ConnectTimeoutError("slow"))
    assert capped.get_backoff_time() == 60.0  # never past the cap that Retry-After has too


def test_a_token_file_named_in_the_environment_is_warned_about_when_others_can_read_it(tmp_path, monkeypatch, caplog):
    """The README's crontab names the token's file in KAGGLE_API_TOKEN: the same warning as ~/.kaggle/access_token."""
    token = tmp_path / "kaggle-token"
    token.write_text("KGAT_0123456789abcdef\n")
    token.chmod(0o644)
    monkeypatch.setenv("KAGGLE_API_TOKEN", str(token))
    with caplog.at_level(logging.WARNING, logger="kaggle_digits"):
        found = credentials.explicit_token()
    assert found is not None and found.source == f"KAGGLE_API_TOKEN (file {token})"
    assert f"{token} is readable by other users of this machine. Fix: chmod 600 {token}" in caplog.text
    assert "KGAT_0123456789abcdef" not in caplog.text
    caplog.clear()
    token.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="kaggle_digits"):
        credentials.explicit_token()
    assert "readable by other users" not in caplog.text


@pytest.mark.parametrize(
    ("value", "on", "refused"),
    [
        ("", False, False),
        ("0", False, False),
        ("false", False, False),
        ("no", False, False),
        ("1", True, False),
        ("yes", True, False),
        ("TRUE", True, False),
        ("maybe", False, True),
    ],
)
def test_debug_is_on_only_when_it_says_so(monkeypatch, value, on, refused):
    """KAGGLE_DIGITS_DEBUG=0 turned debugging on when any value did: now 0/false/no are off, and a word that is
    neither is refused like every other bad setting."""
    monkeypatch.setattr(config, "SETTING_ERRORS", [])
    monkeypatch.setenv("KAGGLE_DIGITS_DEBUG", value)
    assert config._flag("KAGGLE_DIGITS_DEBUG") is on
    assert bool(config.SETTING_ERRORS) is refused


def test_the_folder_swap_lock_is_in_the_checkout_whatever_the_tmpdir(tmp_path, monkeypatch):
    """cron and a terminal with different TMPDIRs (macOS, pam_tmpdir) must find the same lock for the same folder."""
    monkeypatch.chdir(tmp_path)
    folder = Path("data/models/cnn")
    seen = set()
    for tmpdir in (tmp_path / "tmp-cron", tmp_path / "tmp-terminal"):
        tmpdir.mkdir()
        monkeypatch.setenv("TMPDIR", str(tmpdir))
        monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again, as a new process would
        assert tempfile.gettempdir() == str(tmpdir)
        seen.add(helpers._swap_lock(folder).resolve())
    (lock,) = seen
    assert lock.parent == (tmp_path / config.LOCKS_DIR).resolve()
    assert not os.listdir(tmp_path / "tmp-cron") and not os.listdir(tmp_path / "tmp-terminal")
