"""Kaggle through the official client against the toolkit's local server: the happy path and the faults."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
from conftest import TEST_KEY, TEST_TOKEN, scored

from kaggle_digits import config, local_kaggle
from kaggle_digits.errors import KaggleError
from kaggle_digits.kaggle_api import Limits

# Every test here runs a whole flow in subprocesses (or a server): not in `make test-fast`.
pytestmark = pytest.mark.slow

TOKEN = TEST_TOKEN
FAST_MODEL = ["--model", "logreg", "-p", "max_iter=60"]


def ledger_rows(workdir: Path) -> list[dict]:
    with open(workdir / "submissions" / "ledger.csv") as handle:
        return list(csv.DictReader(handle))


def test_fetch_submit_wait_ledger_status(server, kaggle_env, workdir, kd):
    first = kd("fetch", cwd=workdir, env=kaggle_env)
    assert first.returncode == 0, first.stderr
    assert "downloaded and checked" in first.stdout
    extracted = workdir / "data" / "raw" / "digit-recognizer"
    assert sorted(p.name for p in extracted.iterdir()) == ["sample_submission.csv", "test.csv", "train.csv"]
    assert not list((workdir / "data" / "raw").glob("*.part"))
    archive = workdir / "data" / "raw" / "digit-recognizer.zip"
    stamp = archive.stat().st_mtime_ns
    again = kd("fetch", cwd=workdir, env=kaggle_env)
    assert "already up to date" in again.stdout
    assert archive.stat().st_mtime_ns == stamp, "an unchanged zip is not downloaded again"

    submitted = kd("submit", *FAST_MODEL, "--message", "first try", cwd=workdir, env=kaggle_env)
    assert submitted.returncode == 0, submitted.stderr
    (row,) = ledger_rows(workdir)
    assert row["status"] == "COMPLETE" and row["kaggle_ref"] == str(server.state.submissions[0].ref)
    assert row["public_score"] == server.state.submissions[0].public_score
    assert f"public score: {row['public_score']}" in submitted.stdout
    assert 0.7 < float(row["public_score"]) <= 1.0
    assert float(row["holdout_accuracy"]) > 0.7
    sidecar = json.loads((workdir / "submissions" / row["file"]).with_suffix(".json").read_text())
    assert row["estimate_from"] == sidecar["estimate_from"] and "of this very model" in row["estimate_from"]
    description = server.state.submissions[0].description
    assert description.startswith(f"kaggle-digits {row['run_id']}: logreg, holdout ") and description.endswith(
        " - first try"
    )
    assert (workdir / "submissions" / row["file"]).exists()

    status = kd("status", cwd=workdir, env=kaggle_env)
    assert status.returncode == 0, status.stderr
    header, line = status.stdout.splitlines()[:2]
    assert header.split() == ["time", "ref", "model", "holdout", "public", "status", "file"]
    assert row["kaggle_ref"] in line and row["public_score"] in line and row["holdout_accuracy"] in line
    assert "score history: submissions/score_history.png" in status.stdout
    assert (workdir / "submissions" / "score_history.png").read_bytes().startswith(b"\x89PNG")


def test_429_and_500_are_retried_then_succeed(server, kaggle_env, workdir, kd):
    server.inject(method="DownloadDataFiles", status=500, count=2)
    server.inject(method="GetSubmissionLimits", status=429, retry_after=1, count=2)
    result = kd("submit", *FAST_MODEL, cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    assert "Kaggle: HTTP 500 on DownloadDataFiles; retrying (1 of 5)" in result.stderr
    assert "Kaggle: HTTP 429 on GetSubmissionLimits; retrying (2 of 5)" in result.stderr
    assert ledger_rows(workdir)[0]["status"] == "COMPLETE"


def test_persistent_failure_gives_the_kaggle_exit_code(server, kaggle_env, workdir, kd):
    server.inject(method="DownloadDataFiles", status=503, count=100)
    result = kd("fetch", cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_RETRIES": "2"})
    assert result.returncode == 5
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Kaggle kept failing while starting the download (HTTP 503 after 2 retries). Fix: try again later"
    )


def test_dropped_and_slow_responses_are_retried(server, kaggle_env, workdir, kd):
    server.inject(method="IntrospectToken", drop=True, count=1)
    server.inject(method="DownloadDataFiles", delay=1.5, count=1)
    result = kd("fetch", cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_TIMEOUT": "0.5"})
    assert result.returncode == 0, result.stderr
    assert "Kaggle: ProtocolError on IntrospectToken; retrying (1 of 5)" in result.stderr  # the dropped connection
    assert "Kaggle: ReadTimeoutError on DownloadDataFiles; retrying (1 of 5)" in result.stderr  # the stalled answer


def test_wrong_token_is_an_auth_error_that_does_not_print_it(server, kaggle_env, workdir, kd):
    wrong = "KGAT_wrong_token_123456"
    result = kd("fetch", cwd=workdir, env={**kaggle_env, "KAGGLE_API_TOKEN": wrong}, secret=wrong)
    assert result.returncode == 4
    assert (
        "rejected the token from KAGGLE_API_TOKEN; no other credentials are tried there" in result.stderr
        and "Fix:" in result.stderr
    )


def test_no_credentials_lists_where_it_looked(kaggle_env, workdir, monkeypatch):
    """Toward kaggle.com (the local server standing in, in-process): every place the official client looks."""
    from kaggle_digits.errors import AuthError
    from kaggle_digits.kaggle_api import Kaggle

    for name, value in {**kaggle_env, "KAGGLE_API_TOKEN": ""}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    monkeypatch.setattr(Kaggle, "is_kaggle", property(lambda self: True))
    with pytest.raises(AuthError) as error:
        Kaggle(config.BUILTIN_TASKS["digit-recognizer"])
    message = str(error.value)
    assert message.startswith("no Kaggle credentials found (tried KAGGLE_API_TOKEN, ")
    assert "access_token" in message and "KAGGLE_USERNAME + KAGGLE_KEY" in message and "kaggle.json" in message


def test_legacy_kaggle_json_works_and_loose_permissions_are_warned(server, kaggle_env, workdir, monkeypatch, caplog):
    from kaggle_digits.errors import AuthError
    from kaggle_digits.kaggle_api import Kaggle

    home = Path(kaggle_env["KAGGLE_CONFIG_DIR"])
    (home / "kaggle.json").write_text(json.dumps({"username": local_kaggle.DEMO_USER, "key": TEST_KEY}))
    os.chmod(home / "kaggle.json", 0o644)
    for name, value in kaggle_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    monkeypatch.setattr(Kaggle, "is_kaggle", property(lambda self: True))  # the local server stands in for kaggle.com
    with caplog.at_level("WARNING", logger="kaggle_digits"):
        client = Kaggle(config.BUILTIN_TASKS["digit-recognizer"])
        client.limits()
    assert "kaggle.json is readable by other users" in caplog.text and "chmod 600" in caplog.text
    # A legacy key's user name is the file's word: the log never presents it as one Kaggle confirmed.
    assert client.account() == f" as {local_kaggle.DEMO_USER} (not yet checked by Kaggle)"
    (home / "kaggle.json").write_text(json.dumps({"username": local_kaggle.DEMO_USER, "key": "wrong-key"}))
    with pytest.raises(AuthError, match=r"kaggle.json \(HTTP 401"):
        Kaggle(config.BUILTIN_TASKS["digit-recognizer"]).limits()


def test_unknown_competition_and_unaccepted_rules(server, kaggle_env, workdir, kd):
    unknown = kd("fetch", "--competition", "digit-recogniser", cwd=workdir, env=kaggle_env)
    assert unknown.returncode == 5
    assert "Kaggle has no competition 'digit-recogniser' (HTTP 404" in unknown.stderr
    server.state.competitions["digit-recognizer"].rules_accepted = False
    denied = kd("fetch", cwd=workdir, env=kaggle_env)
    assert denied.returncode == 5
    assert "https://www.kaggle.com/competitions/digit-recognizer/rules" in denied.stderr


def _fetch_and_predict(workdir, env, kd) -> Path:
    result = kd("submit", *FAST_MODEL, "--no-upload", cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr
    return workdir / result.stdout.split("submission: ")[1].split(" ")[0]


def _all_ones(workdir) -> Path:
    path = workdir / "ones.csv"
    path.write_text("ImageId,Label\n" + "".join(f"{i},1\n" for i in range(1, 301)))
    return path


def test_daily_limit_reached_stops_before_upload(server, kaggle_env, workdir, kd):
    path = _fetch_and_predict(workdir, kaggle_env, kd)
    server.state.daily_limit = 1
    assert kd("submit", "--file", str(_all_ones(workdir)), cwd=workdir, env=kaggle_env).returncode == 0
    uploads = server.state.requests.count("PUT upload")
    result = kd("submit", "--file", str(path), cwd=workdir, env=kaggle_env)
    assert result.returncode == 10
    assert "no submissions left today on 'digit-recognizer' (1 used today)" in result.stderr
    assert server.state.requests.count("PUT upload") == uploads and len(server.state.submissions) == 1


def test_limits_all_zero_means_the_rules_were_not_accepted(server, kaggle_env, workdir, local_client, kd):
    """kaggle.com answers GetSubmissionLimits with zeros (not 403) for a competition the user has not joined."""
    path = _fetch_and_predict(workdir, kaggle_env, kd)
    server.state.competitions["digit-recognizer"].rules_accepted = False
    result = kd("submit", "--file", str(path), cwd=workdir, env=kaggle_env)
    assert result.returncode == 5
    assert "https://www.kaggle.com/competitions/digit-recognizer/rules" in result.stderr
    assert "no submissions left" not in result.stderr and "PUT upload" not in server.state.requests
    # The limits themselves, read through the official client: zeros are "not joined", with the rules URL.
    client = local_client()
    with pytest.raises(KaggleError, match=r"has not joined 'digit-recognizer'.*digit-recognizer/rules"):
        client.limits()


def test_invalid_file_is_refused_locally(server, kaggle_env, workdir, kd):
    bad = workdir / "bad.csv"
    bad.write_text("ImageId,Label\n1,3\n2,11\n")
    result = kd("submit", "--file", str(bad), cwd=workdir, env=kaggle_env)
    assert result.returncode == 3
    assert "bad.csv line 3: Label 11 is not 0..9" in result.stderr
    assert not any("Submission" in request or "upload" in request for request in server.state.requests)


def test_duplicate_file_is_refused_unless_forced(server, kaggle_env, workdir, kd):
    path = _fetch_and_predict(workdir, kaggle_env, kd)
    assert kd("submit", "--file", str(path), cwd=workdir, env=kaggle_env).returncode == 0
    again = kd("submit", "--file", str(path), cwd=workdir, env=kaggle_env)
    assert again.returncode == 10
    assert f"{path.name} is identical to {path.name}" in again.stderr and "--force" in again.stderr
    assert len(server.state.submissions) == 1
    forced = kd("submit", "--file", str(path), "--force", cwd=workdir, env=kaggle_env)
    assert forced.returncode == 0 and len(server.state.submissions) == 2


def test_cut_download_is_resumed_and_a_failed_one_leaves_nothing(server, kaggle_env, workdir, kd):
    server.inject(method="download", cut=True, count=1)
    resumed = kd("fetch", cwd=workdir, env=kaggle_env)
    assert resumed.returncode == 0, resumed.stderr
    assert "download broke off" in resumed.stderr and "resuming (1 of 5)" in resumed.stderr

    other = workdir / "other"
    other.mkdir()
    server.inject(method="download", cut=True, count=100)
    failed = kd("fetch", cwd=other, env={**kaggle_env, "KAGGLE_DIGITS_RETRIES": "2"})
    assert failed.returncode == 5 and "kept breaking off" in failed.stderr
    raw = other / "data" / "raw"
    assert not raw.exists() or not any(raw.iterdir()), list(raw.iterdir())
    server.state.faults.clear()
    # A run killed mid-download leaves a .part file: it is never taken for data, and is replaced.
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "digit-recognizer.zip.part").write_bytes(b"PK\x03\x04half a zip")
    clean = kd("fetch", cwd=other, env=kaggle_env)
    assert clean.returncode == 0, clean.stderr
    assert sorted(p.name for p in raw.iterdir()) == [
        "digit-recognizer",
        "digit-recognizer.zip",
        "digit-recognizer.zip.json",
    ]


def test_malformed_upload_is_scored_as_error_by_the_server(server, tmp_path, local_client):
    """Bypassing the local check (as another tool might), the server answers like Kaggle: an ERROR submission."""
    client = local_client()
    short = tmp_path / "short.csv"
    short.write_text("ImageId,Label\n1,0\n2,1\n")
    ref = client.submit(short, "too short")
    state = client.wait(ref, timeout=10, poll=0.1)
    assert state.status == "ERROR" and "must have 300 rows" in state.error
    assert client.limits() == Limits(today=1, total=1, allowed_now=4)  # total: the lifetime count, not a cap
    assert [item.ref for item in client.submissions()] == [ref]


def test_a_create_answer_without_a_ref_still_works(server, kaggle_env, workdir, kd):
    """Kaggle-compatible servers differ: CreateSubmission may answer with a message only."""
    server.state.ref_less_create = True
    result = kd("submit", *FAST_MODEL, cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    (row,) = ledger_rows(workdir)
    assert row["kaggle_ref"] == str(server.state.submissions[0].ref) and row["status"] == "COMPLETE"


@pytest.mark.slow
def test_submit_after_train_and_predict_uploads_that_file_without_training(server, kaggle_env, workdir, kd):
    assert kd("fetch", "-q", cwd=workdir, env=kaggle_env).returncode == 0
    for step in ("train", "predict"):
        assert kd(step, "-q", *FAST_MODEL, cwd=workdir, env=kaggle_env).returncode == 0
    (predicted,) = (workdir / "submissions").glob("*-logreg.csv")
    models = workdir / "data" / "models"
    stamps = {path: path.stat().st_mtime_ns for path in models.rglob("*") if path.is_file()}
    submitted = kd("submit", *FAST_MODEL, cwd=workdir, env=kaggle_env)
    assert submitted.returncode == 0, submitted.stderr
    assert f"{predicted.name} was predicted with exactly these settings and data and never uploaded" in submitted.stderr
    assert server.state.submissions[0].content == predicted.read_bytes()
    assert {path: path.stat().st_mtime_ns for path in models.rglob("*") if path.is_file()} == stamps, (
        "no model was fitted"
    )
    # A prediction of a model with other settings is not what submit is asked for: it says so, and trains.
    for step in ("train", "predict"):
        assert kd(step, "-q", *FAST_MODEL, "-p", "C=0.001", cwd=workdir, env=kaggle_env).returncode == 0
    again = kd("submit", *FAST_MODEL, "-p", "C=0.01", cwd=workdir, env=kaggle_env)
    assert again.returncode == 0, again.stderr
    assert (
        "it was made with other settings (model parameters, seed, device) or other data; training anew" in again.stderr
    )
    assert "validate: model logreg" in again.stderr or "train: model logreg" in again.stderr
    assert len(server.state.submissions) == 2


def test_a_rerun_after_a_lost_create_answer_spends_no_second_submission(server, kaggle_env, workdir, kd):
    """The first submit loses CreateSubmission's answer (UNKNOWN) and says to run the same command again. The
    rerun finds the submission on Kaggle's list, and since a validation is now on file it would train once on every
    row: another file of the same configuration, which the identical-file guard cannot see. It is refused before
    any training; FORCE=1 still sends it."""
    server.inject(method="CreateSubmission", lost=True)
    server.state.scoring_delay = 3.0
    first = kd("submit", *FAST_MODEL, cwd=workdir, env=kaggle_env)
    assert first.returncode == 5 and "run 'make status' (or the same command again)" in first.stderr
    (row,) = ledger_rows(workdir)
    assert row["status"] == "UNKNOWN" and row["kaggle_ref"] == ""
    models = workdir / "data" / "models"
    stamps = {path: path.stat().st_mtime_ns for path in models.rglob("*") if path.is_file()}
    again = kd("submit", *FAST_MODEL, cwd=workdir, env=kaggle_env)
    assert again.returncode == 10, again.stderr
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Kaggle already has this configuration of 'logreg'") and "Fix:" in last
    assert f"{row['file']} (ref {server.state.submissions[0].ref}, " in last
    assert len(server.state.submissions) == 1
    assert {path: path.stat().st_mtime_ns for path in models.rglob("*") if path.is_file()} == stamps, "nothing trained"
    forced = kd("submit", *FAST_MODEL, "--force", cwd=workdir, env=kaggle_env)
    assert forced.returncode == 0, forced.stderr
    assert len(server.state.submissions) == 2


def test_a_create_answer_without_a_ref_before_the_list_shows_it_is_unknown_not_failed(server, kaggle_env, workdir, kd):
    """kaggle.com's list lags behind a create. An answer that carries no ref, for a submission the list does not
    show yet, is an unknown outcome (never FAILED: a FAILED file may go up again); `status` settles it later."""
    server.state.ref_less_create = True
    server.state.listing_delay = 2.0
    kaggle_env = {**kaggle_env, "KAGGLE_DIGITS_SETTLE_GRACE": "300"}  # the default: the list may lag that long
    first = kd("submit", *FAST_MODEL, cwd=workdir, env=kaggle_env)
    assert first.returncode == 5
    assert "did not accept" not in first.stderr and "the answer carried no ref" in first.stderr
    (row,) = ledger_rows(workdir)
    assert row["status"] == "UNKNOWN" and len(server.state.submissions) == 1
    early = kd("submit", *FAST_MODEL, cwd=workdir, env=kaggle_env)  # not listed yet: it may be there, so not again
    assert early.returncode == 10 and "UNKNOWN" in early.stderr, early.stderr
    assert len(server.state.submissions) == 1
    while not server.state.submissions[0].listed_at <= time.monotonic():
        time.sleep(0.1)
    scored(server)
    status = kd("status", cwd=workdir, env=kaggle_env)  # the messages say "run 'make status'": it settles the row
    assert status.returncode == 0, status.stderr
    (row,) = ledger_rows(workdir)
    assert row["kaggle_ref"] == str(server.state.submissions[0].ref) and row["status"] == "COMPLETE"
    assert status.stdout.count(row["kaggle_ref"]) == 1
