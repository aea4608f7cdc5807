"""The toolkit against a local Kaggle as strict as kaggle.com, one part at a time (issue: Kaggle fidelity).

Storage lives on another host and refuses credentials (the `server` fixture asserts after every test
that it never saw one); CreateSubmission is not idempotent; GetSubmission answers 404 for a moment;
signed URLs expire; limits count a lifetime total; the submission list is paged.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import SAMPLE_ZIP, SECRETS, TEST_KEY, TEST_TOKEN, official_kaggle, scored

from kaggle_digits import config, local_kaggle
from kaggle_digits.kaggle_api import Credentials
from kaggle_digits.kaggle_api import credentials as found

TOKEN = TEST_TOKEN
FAST_MODEL = ["--model", "logreg", "-p", "max_iter=60"]


def ledger_rows(workdir: Path) -> list[dict]:
    with open(workdir / "submissions" / "ledger.csv") as handle:
        return list(csv.DictReader(handle))


def answer_file(workdir: Path, label: int = 1) -> Path:
    path = workdir / f"answer-{label}.csv"
    path.write_text("ImageId,Label\n" + "".join(f"{i},{label}\n" for i in range(1, 301)))
    return path


# --- 1. uploads go to storage with no credentials; only 200/201 count ---------------------------------


@pytest.mark.slow
def test_upload_goes_to_another_host_without_credentials(server, kaggle_env, workdir, kd):
    result = kd("submit", "--file", str(answer_file(workdir)), cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    # No test.csv at hand: the file's row count could not be checked against it, and the log says so.
    assert "no test.csv at hand" in result.stderr and "header, labels and unique ids only" in result.stderr
    assert server.state.requests.count("PUT upload") == 1
    assert server.state.storage_base.startswith("http://127.0.0.1:") and server.url.startswith("http://localhost:")
    assert server.state.storage_auth_seen == []


@pytest.mark.slow
@pytest.mark.parametrize("fault", [{"status": 308}, {"status": 503, "count": 6}, {"drop": True, "count": 6}])
def test_a_failed_upload_starts_over_with_a_fresh_upload_url(server, kaggle_env, workdir, fault, kd):
    """308 "incomplete" is not success; a 5xx or a dropped connection that outlasts the retries neither."""
    server.inject(method="upload", **fault)
    result = kd("submit", "--file", str(answer_file(workdir)), cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    assert (
        "storage did not take the upload" in result.stderr
        and "starting over with a new upload (1 of 2)" in result.stderr
    )
    assert server.state.requests.count("POST StartSubmissionUpload") == 2
    assert len(server.state.submissions) == 1 and ledger_rows(workdir)[0]["status"] == "COMPLETE"
    # urllib3's own retry warnings print the upload URL: its session id never reaches the output.
    for upload in server.state.uploads.values():
        assert upload.upload_id not in result.stdout + result.stderr


@pytest.mark.slow
def test_upload_that_never_succeeds_submits_nothing(server, kaggle_env, workdir, kd):
    server.inject(method="upload", status=308, count=3)
    result = kd("submit", "--file", str(answer_file(workdir)), cwd=workdir, env=kaggle_env)
    assert result.returncode == 5
    assert (
        "could not upload answer-1.csv to Kaggle's storage (HTTP 308, 3 attempts); nothing was submitted"
        in result.stderr
    )
    assert "POST CreateSubmission" not in server.state.requests
    assert ledger_rows(workdir)[0]["status"] == "FAILED"


# --- 2. CreateSubmission is never resent; a lost answer is settled from Kaggle's list ----------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, extra_env",
    [
        ({"lost": True}, {}),  # created, then the connection dropped
        ({"delay": 2.0}, {"KAGGLE_DIGITS_TIMEOUT": "0.7"}),  # a read timeout: created after the client gave up
    ],
)
def test_lost_create_answer_gives_exactly_one_submission_over_any_number_of_reruns(
    server, kaggle_env, workdir, fault, extra_env, kd
):
    path = answer_file(workdir)
    server.inject(method="CreateSubmission", **fault)
    first = kd("submit", "--file", str(path), cwd=workdir, env={**kaggle_env, **extra_env})
    assert first.returncode == 5, first.stderr
    assert "was lost" in first.stderr and "recorded as UNKNOWN" in first.stderr
    assert server.state.requests.count("POST CreateSubmission") == 1, "never resent"
    (row,) = ledger_rows(workdir)
    assert row["status"] == "UNKNOWN" and row["kaggle_ref"] == ""
    deadline = time.monotonic() + 10
    while not server.state.submissions and time.monotonic() < deadline:  # a stalled create lands a moment later
        time.sleep(0.1)
    scored(server)  # the reruns settle the row from Kaggle's list after Kaggle scored it: COMPLETE
    for _ in range(2):
        again = kd("submit", "--file", str(path), cwd=workdir, env=kaggle_env)
        assert again.returncode == 10, again.stderr
        assert "is identical to answer-1.csv" in again.stderr
    assert len(server.state.submissions) == 1
    (row,) = ledger_rows(workdir)
    assert row["kaggle_ref"] == str(server.state.submissions[0].ref) and row["status"] == "COMPLETE"


@pytest.mark.slow
def test_a_5xx_on_create_is_not_retried_and_an_uncreated_file_goes_up_once_later(server, kaggle_env, workdir, kd):
    path = answer_file(workdir)
    server.inject(method="CreateSubmission", status=500, count=100)
    first = kd("submit", "--file", str(path), cwd=workdir, env=kaggle_env)
    assert first.returncode == 5 and "HTTP 500" in first.stderr and "UNKNOWN" in first.stderr
    assert server.state.requests.count("POST CreateSubmission") == 1
    server.state.faults.clear()
    second = kd("submit", "--file", str(path), cwd=workdir, env=kaggle_env)
    assert second.returncode == 0, second.stderr
    assert [row["status"] for row in ledger_rows(workdir)] == ["FAILED", "COMPLETE"]  # Kaggle's list settled the first
    assert len(server.state.submissions) == 1


@pytest.mark.slow
def test_the_same_blob_token_twice_makes_two_submissions_on_this_server(server, kaggle_env, tmp_path, local_client):
    """Why the toolkit never resends CreateSubmission: the server, like kaggle.com, is not idempotent."""
    from kagglesdk.competitions.types.competition_api_service import ApiCreateSubmissionRequest

    client = local_client()
    token = client._upload(answer_file(tmp_path))
    for _ in range(2):
        request = ApiCreateSubmissionRequest()
        request.competition_name, request.blob_file_tokens, request.submission_description = (
            "digit-recognizer",
            token,
            "x",
        )
        client.competitions.create_submission(request)
    assert len(server.state.submissions) == 2


# --- 3. a resumed download carries no credentials; an expired URL is renewed -------------------------


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["digit-recognizer", "fashion-mnist"])
def test_resume_after_the_signed_url_expired_asks_for_a_fresh_one(
    sample, tmp_path, monkeypatch, task_name, local_client
):
    task = config.BUILTIN_TASKS[task_name]
    competition = local_kaggle.competition_from_arrays(task, sample.train_images[:600], sample.train_labels[:600])
    with local_kaggle.LocalKaggleServer([competition], url_ttl=3, **SECRETS) as server:
        # A pause past the URL's lifetime (2 to 3 s: signed to the second), half the body, then the connection drops.
        server.inject(method="download", cut=True, delay=4.5)
        client = local_client(task)
        target = tmp_path / task.archive_name
        path, changed = client.download(target, quiet=True)
        assert changed and path.read_bytes() == competition.archive
        assert server.state.storage_auth_seen == []
        api_calls = [r for r in server.state.requests if r.startswith("POST Download")]
        assert len(api_calls) == 2, "one fresh signed URL from the API after the expired one"
        assert server.state.requests.count("GET download") == 4  # cut, expired (403), the fresh URL's start, the range


# --- 4. GetSubmission's early 404 is "pending" ----------------------------------------------------------


@pytest.mark.slow
def test_early_404_on_get_submission_is_pending(server, kaggle_env, workdir, kd):
    server.state.visibility_delay = 1.5
    result = kd("submit", "--file", str(answer_file(workdir)), cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    assert server.state.requests.count("POST GetSubmission") >= 2
    assert ledger_rows(workdir)[0]["status"] == "COMPLETE"


# --- 6. a rate-limited download with a checked copy on disk is a warning -------------------------------


@pytest.mark.slow
def test_download_rate_limit_goes_on_with_the_checked_local_copy(server, kaggle_env, workdir, kd):
    assert kd("fetch", cwd=workdir, env=kaggle_env).returncode == 0
    server.inject(method="DownloadDataFiles", status=429, retry_after=0, count=100)
    env = {**kaggle_env, "KAGGLE_DIGITS_RETRIES": "2"}
    again = kd("fetch", cwd=workdir, env=env)
    assert again.returncode == 0, again.stderr
    assert "HTTP 429 after 2 retries" in again.stderr and "going on with the checked local copy" in again.stderr
    fresh = workdir / "fresh"
    fresh.mkdir()
    none = kd("fetch", cwd=fresh, env=env)
    assert none.returncode == 5 and "HTTP 429 after 2 retries" in none.stderr


# --- 7. credentials: the official client's sources, order and fall-backs --------------------------------
# Stored credentials go to kaggle.com only (see test_promises.py), so the order is checked in-process with the
# local server standing in for kaggle.com (`Kaggle.is_kaggle` patched): the same code path a real run takes.


def _legacy(folder: Path, key: str = TEST_KEY) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kaggle.json").write_text(json.dumps({"username": local_kaggle.DEMO_USER, "key": key}))
    os.chmod(folder / "kaggle.json", 0o600)


def _as_on_kaggle(server, env, monkeypatch):
    """A client built as on kaggle.com from `env` (empty values unset), after one call: (its credential's source,
    how the server saw the call)."""
    from kaggle_digits.kaggle_api import Kaggle

    for name, value in env.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Kaggle, "is_kaggle", property(lambda self: True))
    kaggle = Kaggle(config.BUILTIN_TASKS["digit-recognizer"])
    kaggle.limits()
    return kaggle.credentials.source, server.state.api_auth[-1]


def test_home_access_token_comes_before_kaggle_json_in_the_config_dir(server, kaggle_env, monkeypatch):
    home = Path(kaggle_env["HOME"])
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "access_token").write_text(TOKEN + "\n")
    os.chmod(home / ".kaggle" / "access_token", 0o600)
    _legacy(Path(kaggle_env["KAGGLE_CONFIG_DIR"]), key="not-the-key")
    source, last = _as_on_kaggle(server, {**kaggle_env, "KAGGLE_API_TOKEN": ""}, monkeypatch)
    assert source == str(home / ".kaggle" / "access_token") and last == f"Bearer {local_kaggle.DEMO_USER}"


def test_an_invalid_token_falls_back_to_the_legacy_key_as_the_official_client_does(
    server, kaggle_env, monkeypatch, caplog
):
    _legacy(Path(kaggle_env["KAGGLE_CONFIG_DIR"]))
    with caplog.at_level("WARNING", logger="kaggle_digits"):
        source, last = _as_on_kaggle(
            server, {**kaggle_env, "KAGGLE_API_TOKEN": "KGAT_expired_token_0123456789"}, monkeypatch
        )
    assert "the access token from KAGGLE_API_TOKEN is not valid" in caplog.text
    assert (
        source == str(Path(kaggle_env["KAGGLE_CONFIG_DIR"]) / "kaggle.json")
        and last == f"Basic {local_kaggle.DEMO_USER}"
    )
    assert not any(entry.startswith("Bearer") for entry in server.state.api_auth)


def test_xdg_config_folder_when_there_is_no_home_kaggle(server, kaggle_env, monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("the XDG folder is the official client's choice on Linux only")
    _legacy(Path(kaggle_env["XDG_CONFIG_HOME"]) / "kaggle")
    source, last = _as_on_kaggle(server, {**kaggle_env, "KAGGLE_API_TOKEN": "", "KAGGLE_CONFIG_DIR": ""}, monkeypatch)
    assert (
        source == str(Path(kaggle_env["XDG_CONFIG_HOME"]) / "kaggle" / "kaggle.json")
        and last == f"Basic {local_kaggle.DEMO_USER}"
    )


def test_environment_overrides_kaggle_json_value_by_value(server, kaggle_env, monkeypatch):
    _legacy(Path(kaggle_env["KAGGLE_CONFIG_DIR"]), key="stale-key-000")
    source, last = _as_on_kaggle(server, {**kaggle_env, "KAGGLE_API_TOKEN": "", "KAGGLE_KEY": TEST_KEY}, monkeypatch)
    assert source.startswith("KAGGLE_USERNAME/KAGGLE_KEY and ") and last == f"Basic {local_kaggle.DEMO_USER}"


def test_kaggle_auth_login_credentials_are_used_last(server, kaggle_env, monkeypatch):
    home = Path(kaggle_env["HOME"])
    (home / ".kaggle").mkdir()
    expires = (datetime.now(timezone.utc) + timedelta(hours=6)).isoformat()
    (home / ".kaggle" / "credentials.json").write_text(
        json.dumps(
            {
                "refresh_token": "refresh-token-value-0000",
                "access_token": TOKEN,
                "access_token_expiration": expires,
                "username": local_kaggle.DEMO_USER,
            }
        )
    )
    source, last = _as_on_kaggle(server, {**kaggle_env, "KAGGLE_API_TOKEN": ""}, monkeypatch)
    assert "credentials.json (kaggle auth login)" in source and last == f"Bearer {local_kaggle.DEMO_USER}"


@pytest.mark.slow
@pytest.mark.parametrize("content", ["KGAT_first_half second_half\n", "KGAT_first_line\nKGAT_second_line\n"])
def test_a_token_file_with_a_space_or_newline_is_named_never_printed(kaggle_env, workdir, content, kd):
    token_file = workdir.parent / "token.txt"
    token_file.write_text(content)
    result = kd("fetch", cwd=workdir, env={**kaggle_env, "KAGGLE_API_TOKEN": str(token_file)}, secrets=content.split())
    assert result.returncode == 4
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: KAGGLE_API_TOKEN (file {token_file}): the access token has a space, a line break")


def test_our_token_choice_matches_kagglesdk(kaggle_env, monkeypatch, tmp_path):
    """The access-token order is kagglesdk's own `get_access_token_from_env`, case by case."""
    from kagglesdk.kaggle_env import get_access_token_from_env

    home = Path(kaggle_env["HOME"])
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    (home / ".kaggle").mkdir()
    file_token = tmp_path / "t"
    file_token.write_text("KGAT_from_a_file_1234\n")
    cases = [
        ({"KAGGLE_API_TOKEN": "KGAT_value_1234"}, {}),
        ({"KAGGLE_API_TOKEN": str(file_token)}, {"access_token": "KGAT_home_1234"}),
        ({}, {"access_token": "KGAT_home_1234", "access_token.txt": "KGAT_txt_1234"}),
        ({}, {"access_token.txt": "KGAT_txt_1234"}),
        ({}, {"access_token": "   \n", "access_token.txt": "KGAT_txt_1234"}),
        ({}, {}),
    ]
    for environment, files in cases:
        monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        for name in ("access_token", "access_token.txt"):
            (home / ".kaggle" / name).unlink(missing_ok=True)
        for name, value in files.items():
            (home / ".kaggle" / name).write_text(value)
        ours = found.access_token()
        assert (ours.token if ours else None) == get_access_token_from_env()[0], (environment, files)


# --- 8. secrets never in any output ---------------------------------------------------------------------


def test_secrets_are_scrubbed_from_log_lines_and_errors():
    from kaggle_digits import redact

    Credentials(source="test", token="KGAT_scrub_me_123456", username="someone", key="legacy-key-123456")
    text = (
        "bad header 'Bearer KGAT_scrub_me_123456' and key legacy-key-123456; Retrying after connection broken: "
        "/upload/storage/v1/b/x/o?uploadType=resumable&upload_id=ABCDEF123 and "
        "https://s/a.zip?X-Goog-Date=1&X-Goog-Signature=0badc0ffee"
    )
    clean = redact.scrub(text)
    for secret in ("KGAT_scrub_me_123456", "legacy-key-123456", "ABCDEF123", "0badc0ffee"):
        assert secret not in clean
    assert "uploadType=resumable" in clean and "X-Goog-Date=1" in clean


# --- 9. all pages of the list; UTC dates ----------------------------------------------------------------


@pytest.mark.slow
def test_status_and_settling_read_every_page(server, kaggle_env, workdir, local_client, kd):
    server.state.page_size = 2
    server.state.daily_limit = 10
    for label in range(3):
        assert kd("submit", "--file", str(answer_file(workdir, label)), cwd=workdir, env=kaggle_env).returncode == 0
    status = kd("status", cwd=workdir, env=kaggle_env)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()[1:4]
    assert len(lines) == 3 and all(line.split()[0].endswith("Z") for line in lines)
    assert server.state.requests.count("POST ListSubmissions") >= 2
    # A run whose answer was lost, then two submissions from elsewhere push it off the first page
    # (the list is newest first): the next submit still settles it, from the second page.
    server.inject(method="CreateSubmission", lost=True)
    assert kd("submit", "--file", str(answer_file(workdir, 7)), cwd=workdir, env=kaggle_env).returncode == 5
    elsewhere = local_client()
    for label in (8, 9):
        elsewhere.submit(answer_file(workdir.parent, label), "from the website")
    scored(server)  # the lost one is settled after Kaggle scored it
    assert kd("submit", "--file", str(answer_file(workdir, 5)), cwd=workdir, env=kaggle_env).returncode == 0
    rows = ledger_rows(workdir)
    assert [row["status"] for row in rows] == ["COMPLETE"] * 5
    assert rows[3]["kaggle_ref"] == str(server.state.submissions[3].ref)
    assert len(server.state.submissions) == 7


@pytest.mark.slow
def test_kaggle_dates_are_shown_as_utc(server, tmp_path, local_client):
    client = local_client()
    client.submit(answer_file(tmp_path), "x")
    (item,) = client.submissions()
    expected = server.state.submissions[0].date.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert item.date == expected


# --- the official CLI passes against the same server: it is no stricter than kaggle.com -------------------


def _port_80_free() -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a TIME_WAIT is no obstacle
        try:
            probe.bind(("127.0.0.1", 80))
        except OSError:
            return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not _port_80_free(),
    reason="KAGGLE_API_ENVIRONMENT=LOCALHOST means http://localhost on port 80: needs root and a free port 80",
)
def test_the_official_kaggle_cli_downloads_submits_and_lists_against_the_server(kaggle_env, tmp_path):
    competition = local_kaggle.competition_from_labeled(SAMPLE_ZIP, max_rows=1500)
    env = {**os.environ, **kaggle_env, "KAGGLE_API_ENVIRONMENT": "LOCALHOST"}
    with local_kaggle.LocalKaggleServer([competition], port=80, scoring_delay=0.2, **SECRETS) as server:

        def cli(*args):
            return official_kaggle("competitions", *args, env=env, cwd=tmp_path)

        cli("download", "-c", "digit-recognizer", "-p", str(tmp_path / "dl"))
        assert (tmp_path / "dl" / "digit-recognizer.zip").read_bytes() == competition.archive
        out = cli("submit", "-c", "digit-recognizer", "-f", str(answer_file(tmp_path)), "-m", "from the official CLI")
        assert "Successfully submitted" in out
        assert len(server.state.submissions) == 1
        listing = cli("submissions", "-c", "digit-recognizer")
        assert "from the official CLI" in listing and "answer-1.csv" in listing
        assert server.state.storage_auth_seen == []
