"""Scheduled runs against the local server: lock, skips, exit codes, logs, crash safety."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, TEST_TOKEN, run_cli, scored

from kaggle_digits import ledger as ledger_module
from kaggle_digits.ledger import settle_open_rows

TOKEN = TEST_TOKEN
RUN = ["run", "-q", "--model", "logreg", "-p", "max_iter=60"]


def summary(result) -> str:
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, "-q leaves one summary line: " + repr(result.stdout + result.stderr)
    assert TOKEN not in lines[0]
    return lines[0]


def logs(workdir) -> list[str]:
    texts = [path.read_text() for path in sorted((workdir / "data" / "logs").glob("*-run.log"))]
    for text in texts:
        assert TOKEN not in text
    return texts


@pytest.mark.slow
def test_second_unchanged_run_skips_with_its_own_code(server, kaggle_env, workdir, cli_run):
    first = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert first.returncode == 0, first.stderr
    line = summary(first)
    assert line.startswith("kaggle-digits run ok (exit 0") and "public score 0." in line
    second = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert second.returncode == 10
    assert "kaggle-digits run skipped (exit 10" in summary(second) and "nothing changed since" in second.stdout
    assert len(server.state.submissions) == 1
    first_log, second_log = logs(workdir)
    assert "INFO submit: uploaded" in first_log and first_log[:4].isdigit()  # timestamped lines
    assert "as demo-user (credentials: KAGGLE_API_TOKEN), model logreg" in first_log  # which credential the run used
    assert "keep-alive" in second_log
    # The daily allowance, read as Kaggle means it (numTotal is a lifetime count, not a cap).
    assert "submissions used today: 1, left now: 4 (in all on this competition: 1)" in second_log
    # Changing the model's settings is a change: it trains, predicts, and the new file goes up. A
    # regularisation 10,000 times stronger certainly changes the predictions, on any BLAS.
    third = cli_run(*RUN, "-p", "C=0.00001", cwd=workdir, env=kaggle_env)
    assert third.returncode == 0, third.stderr
    assert len(server.state.submissions) == 2
    assert server.state.submissions[0].content != server.state.submissions[1].content


@pytest.mark.slow
def test_keep_alive_uploads_the_last_file_again_without_training(server, kaggle_env, workdir, cli_run):
    assert cli_run(*RUN, cwd=workdir, env=kaggle_env).returncode == 0
    models = workdir / "data" / "models"
    stamps = {path: path.stat().st_mtime_ns for path in models.rglob("*") if path.is_file()}
    again = cli_run(*RUN, "--keep-alive-days", "0", cwd=workdir, env=kaggle_env)
    assert again.returncode == 0, again.stdout + again.stderr
    line = summary(again)
    assert "keep-alive: uploaded" in line and "again after 0 d" in line
    first, second = server.state.submissions
    assert second.content == first.content, "the same file, byte for byte"
    assert f"keep-alive of ref {first.ref}" in second.description
    assert {path: path.stat().st_mtime_ns for path in models.rglob("*") if path.is_file()} == stamps, (
        "no model was fitted"
    )
    text = logs(workdir)[-1]
    assert "keep-alive" in text and "train: model" not in text and "validate: model" not in text
    # Now the newest scored submission is the keep-alive's: the next run has nothing to do.
    assert cli_run(*RUN, cwd=workdir, env=kaggle_env).returncode == 10


ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow
def test_identical_predictions_are_not_uploaded(server, kaggle_env, workdir):
    # With a validation of its settings on file, a run trains once on every row (see make submit).
    assert run_cli("fetch", "-q", cwd=workdir, env=kaggle_env).returncode == 0
    validate = ["validate", "-q", *RUN[2:]]
    assert run_cli(*validate, cwd=workdir, env=ONE_THREAD).returncode == 0
    assert run_cli(*RUN, cwd=workdir, env={**kaggle_env, **ONE_THREAD}).returncode == 0
    # Another seed is a change, so the run trains; logistic regression (lbfgs) draws nothing at random in
    # its fit on all rows, and with one BLAS thread its sums run in one fixed order on this machine, so
    # the predictions are the same bytes by construction and are not uploaded again.
    assert run_cli(*validate, "--seed", "7", cwd=workdir, env=ONE_THREAD).returncode == 0
    again = run_cli(*RUN, "--seed", "7", cwd=workdir, env={**kaggle_env, **ONE_THREAD})
    assert again.returncode == 10 and "is identical to" in again.stdout
    assert len(server.state.submissions) == 1


@pytest.mark.slow
def test_a_task_without_submissions_is_refused_before_kaggle(server, kaggle_env, workdir, cli_run):
    result = cli_run("run", "-q", "--task", "fashion-mnist", cwd=workdir, env=kaggle_env)
    assert result.returncode == 2
    assert (
        "task 'fashion-mnist' has no submissions" in summary(result)
        and "make evaluate TASK=fashion-mnist" in result.stderr
    )
    assert server.state.requests == []


@pytest.mark.slow
def test_quota_exhausted_skips_before_training(server, kaggle_env, workdir, local_client, cli_run):
    server.state.daily_limit = 1
    website = local_client()
    answer = workdir.parent / "answer.csv"
    answer.write_text("ImageId,Label\n" + "".join(f"{i},1\n" for i in range(1, 301)))
    website.submit(answer, "submitted on the website")  # today's one submission is used
    result = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert result.returncode == 10
    assert "no submissions left today" in summary(result)
    assert not (workdir / "data" / "models").exists()


@pytest.mark.slow
def test_dry_run_changes_nothing(server, kaggle_env, workdir, cli_run):
    result = cli_run(*RUN, "--dry-run", cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    assert "dry run: would download the data" in summary(result)
    assert not (workdir / "data" / "raw").exists() and not (workdir / "submissions").exists()
    assert "PUT upload" not in server.state.requests


@pytest.mark.slow
def test_concurrent_runs_one_works_one_reports_already_running(server, kaggle_env, workdir, cli_run):
    server.inject(method="GetSubmissionLimits", delay=3.0, count=1)  # holds the first run inside its lock
    first = subprocess.Popen(
        [sys.executable, "-m", "kaggle_digits", *RUN],
        cwd=workdir,
        env={**os.environ, **kaggle_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 30
    while not (workdir / "data" / "run.lock.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    second = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert second.returncode == 6
    assert "kaggle-digits run not started (exit 6" in summary(second)
    assert f"another run is in progress (pid {first.pid} since" in second.stderr
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert len(server.state.submissions) == 1


@pytest.mark.slow
def test_run_killed_during_training_then_a_clean_run(server, kaggle_env, workdir, cli_run):
    slow = ["run", "-q", "--model", "cnn", "-p", "epochs=60"]
    victim = subprocess.Popen(
        [sys.executable, "-m", "kaggle_digits", *slow],
        cwd=workdir,
        env={**os.environ, **kaggle_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        texts = logs(workdir) if (workdir / "data" / "logs").exists() else []
        if texts and "validate: model cnn" in texts[-1]:
            break
        time.sleep(0.2)
    time.sleep(2)  # well inside the first epochs
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert (workdir / "data" / "run.lock.json").exists(), "the killed run left its lock record behind"
    leftovers = [p for p in workdir.rglob("*") if p.name.endswith((".tmp", ".part")) or ".staging-" in p.name]
    assert leftovers == []
    assert not (workdir / "submissions").exists() or not list((workdir / "submissions").glob("*.csv"))

    result = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    assert f"took over the lock left by pid {victim.pid}" in logs(workdir)[-1]
    assert len(server.state.submissions) == 1


@pytest.mark.slow
def test_transient_faults_are_survived(server, kaggle_env, workdir, cli_run):
    server.inject(method="DownloadDataFiles", status=500, count=2)
    server.inject(method="CreateSubmission", status=429, retry_after=1, count=1)
    result = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    text = logs(workdir)[-1]
    assert "HTTP 500 on DownloadDataFiles; retrying" in text and "HTTP 429 on CreateSubmission; retrying" in text


@pytest.mark.slow
def test_failed_create_gives_the_kaggle_code_and_a_consistent_ledger(server, kaggle_env, workdir, cli_run):
    """A 5xx on CreateSubmission may hide a created submission: UNKNOWN, settled from Kaggle's list next time."""
    server.inject(method="CreateSubmission", status=500, count=100)
    failed = cli_run(*RUN, cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_RETRIES": "2"})
    assert failed.returncode == 5
    assert "kaggle-digits run failed (exit 5" in summary(failed) and "CreateSubmission" in failed.stderr
    assert server.state.requests.count("POST CreateSubmission") == 1, "never resent"
    (row,) = ledger_module.Ledger(workdir / "submissions" / "ledger.csv").rows()
    assert row["status"] == "UNKNOWN" and row["kaggle_ref"] == ""
    server.state.faults.clear()
    retried = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert retried.returncode == 0, retried.stderr
    rows = ledger_module.Ledger(workdir / "submissions" / "ledger.csv").rows()
    assert [row["status"] for row in rows] == ["FAILED", "COMPLETE"]
    assert len(server.state.submissions) == 1


@pytest.mark.slow
def test_interrupted_upload_is_settled_from_kaggle_not_repeated(server, workdir, local_client):
    kaggle = local_client()
    answer = workdir / "answer.csv"
    answer.write_text("ImageId,Label\n" + "".join(f"{i},1\n" for i in range(1, 301)))
    ref = kaggle.submit(answer, "kaggle-digits 20260101T000000Z-cnn: cnn, holdout 0.9900")
    ledger = ledger_module.Ledger(workdir / "ledger.csv")
    # As a run killed after CreateSubmission leaves it: no ref yet. And one killed before the upload.
    ledger.add(run_id="20260101T000000Z-cnn", file="a.csv", checksum="a", status="UPLOADING", task="digit-recognizer")
    ledger.add(run_id="20260102T000000Z-cnn", file="b.csv", checksum="b", status="UPLOADING", task="digit-recognizer")
    time.sleep(0.3)
    settle_open_rows(ledger, kaggle, "digit-recognizer")
    settled, lost = ledger.rows()
    assert settled["kaggle_ref"] == str(ref) and settled["status"] == "COMPLETE" and settled["public_score"]
    assert lost["status"] == "FAILED"
    assert ledger.find_submitted("digit-recognizer", "a") and not ledger.find_submitted("digit-recognizer", "b")


@pytest.mark.slow
def test_lost_create_in_a_scheduled_run_is_settled_by_the_next_run_not_repeated(server, kaggle_env, workdir, cli_run):
    server.inject(method="CreateSubmission", lost=True)
    server.state.scoring_delay = 3.0  # so that the next run mostly finds it still being scored, as on kaggle.com
    first = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert first.returncode == 5 and "was lost" in summary(first)
    again = cli_run(*RUN, cwd=workdir, env=kaggle_env)  # finds it on Kaggle's list: nothing is sent again
    assert again.returncode == 10, again.stdout + again.stderr
    (row,) = ledger_module.Ledger(workdir / "submissions" / "ledger.csv").rows()
    assert row["kaggle_ref"] == str(server.state.submissions[0].ref) and row["status"] in ("PENDING", "COMPLETE")
    scored(server)  # Kaggle scores it in its own time; the run after that settles the row to its score
    again = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert again.returncode == 10, again.stdout + again.stderr
    assert len(server.state.submissions) == 1
    (row,) = ledger_module.Ledger(workdir / "submissions" / "ledger.csv").rows()
    assert row["status"] == "COMPLETE" and row["kaggle_ref"] == str(server.state.submissions[0].ref)


def test_epochs_chosen_by_validation_do_not_count_as_a_change(workdir):
    """The model trains for validation's best epoch, but the user asked for the default: that is 'unchanged'."""
    from kaggle_digits import models, pipeline
    from kaggle_digits.runs import _unchanged_since

    asked = models.params_dict(models.params_for("cnn"))
    trained = {**asked, "epochs": 11}
    (workdir / "submissions").mkdir()
    (workdir / "submissions" / "a.json").write_text(
        json.dumps({"data_checksum": "abc", "model": "cnn", "seed": 42, "params": trained, "requested_params": asked})
    )
    settings = pipeline.Settings(model="cnn")
    assert _unchanged_since({"file": "a.csv"}, settings, "abc")
    assert not _unchanged_since({"file": "a.csv"}, settings, "other data")
    assert not _unchanged_since({"file": "a.csv"}, pipeline.Settings(model="cnn", overrides={"epochs": "20"}), "abc")


@pytest.mark.slow
@pytest.mark.skipif(
    not (REPO / ".venv" / "bin" / "kaggle-digits").exists(), reason="needs the repository's .venv (make install)"
)
def test_the_readme_crontab_runs_with_its_token_in_a_file_and_mails_only_a_failure(
    server, kaggle_env, tmp_path, local_client
):
    """The README's crontab, word for word, run the way cron runs it: /bin/sh, a bare environment (no token exported
    from a shell), the crontab's own variables, a fresh folder. The token is in a file the crontab names."""
    block = (REPO / "README.md").read_text().split("```cron\n", 1)[1].split("```", 1)[0]
    variables = dict(
        line.split("=", 1) for line in block.splitlines() if line and line[0].isalpha() and "=" in line.split()[0]
    )
    assert set(variables) == {"CRON_TZ", "MAILTO"}
    job = next(line for line in block.splitlines() if line[:1].isdigit())
    command = job.split(None, 5)[5]
    fresh = tmp_path / "kaggle-digits"
    shutil.copytree(
        REPO, fresh, ignore=shutil.ignore_patterns(".venv", ".git", "data", "submissions", "__pycache__", "*.egg-info")
    )
    (fresh / ".venv").symlink_to(REPO / ".venv")  # what `make install` leaves there
    assert not (fresh / "data").exists()
    token_file = Path(kaggle_env["HOME"]) / "secrets" / "kaggle-token"
    token_file.parent.mkdir()
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    # Today's one submission is used (from the website), so the run skips before training: fast, and a real run.
    server.state.daily_limit = 1
    answer = tmp_path / "answer.csv"
    answer.write_text("ImageId,Label\n" + "".join(f"{i},1\n" for i in range(1, 301)))
    local_client().submit(answer, "web")
    cron_env = {
        "HOME": kaggle_env["HOME"],
        "LOGNAME": "kaggle",
        "SHELL": "/bin/sh",
        "PATH": "/usr/bin:/bin",
        **variables,
        # The crontab's commented line, as one pointed at the local server writes it (a non-kaggle.com endpoint
        # takes only a token named explicitly): the file, never the token itself.
        "KAGGLE_API_TOKEN": str(token_file),
        "KAGGLE_API_ENVIRONMENT": "TEST",
        "KAGGLE_CONFIG_DIR": kaggle_env["KAGGLE_CONFIG_DIR"],
        "KAGGLE_DIGITS_BACKOFF": "0.05",
    }

    def cron(environment):
        return subprocess.run(
            ["/bin/sh", "-c", command.replace("/path/to/kaggle-digits", str(fresh))],
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    result = cron(cron_env)
    assert result.returncode == 10, result.stdout + result.stderr
    assert result.stdout + result.stderr == "", "a skipped run prints nothing: cron mails nothing"
    text = (fresh / "data" / "logs" / "cron.log").read_text()
    assert text.startswith("kaggle-digits run skipped (exit 10") and "no submissions left today" in text
    (run_log,) = (fresh / "data" / "logs").glob("*-run.log")
    assert (
        f"(credentials: KAGGLE_API_TOKEN (file {token_file}))" in run_log.read_text()
    )  # the log names the credential it used
    # A run that fails prints its line on stderr, which cron mails; its run log says why.
    token_file.unlink()
    failed = cron(cron_env)
    assert failed.returncode == 4 and failed.stdout == ""
    assert failed.stderr.startswith("kaggle-digits run failed (exit 4") and failed.stderr.count("\n") == 1
    assert f"KAGGLE_API_TOKEN names the file {token_file}, which does not exist" in failed.stderr
    assert (fresh / "data" / "logs" / "cron.log").read_text() == text, "the failure is mailed, not appended"
    for path in (fresh / "data" / "logs").glob("*"):
        assert TOKEN not in path.read_text()


@pytest.mark.slow
def test_a_rerun_while_kaggle_still_scores_the_last_file_sends_nothing_new(server, kaggle_env, workdir, cli_run):
    """Nothing changed since a submission Kaggle has not scored yet: the rerun waits for that score, it does not
    spend a second submission on the same settings (before, only a scored one counted)."""
    server.state.scoring_delay = 300
    first = cli_run(*RUN, "--wait-timeout", "0.5", cwd=workdir, env=kaggle_env)
    assert first.returncode == 5 and "still being scored" in first.stderr, first.stderr  # uploaded; no score yet
    again = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert again.returncode == 10, again.stdout + again.stderr
    assert "nothing changed since" in again.stdout and "still being scored" in again.stdout
    assert len(server.state.submissions) == 1


def test_a_gpu_kernels_estimate_never_speaks_for_a_training_here(workdir, small_competition):
    """After `submit --remote kaggle`, the kernel's metrics.json is here: it trained the GPU preset (40 epochs of
    cnn). A later CPU training of the same command line (13 epochs) must not carry that figure, nor count as the
    same configuration; a model without GPU presets (logreg) is the same configuration on either device."""
    from dataclasses import replace

    from kaggle_digits import config, data, models, pipeline, training

    dataset = data.load(small_competition, config.BUILTIN_TASKS["digit-recognizer"])
    cnn = pipeline.Settings(model="cnn")
    asked = cnn.params()
    on_gpu = models.as_trained("cnn", asked, gpu=True)
    assert on_gpu.epochs == asked.gpu_epochs != asked.epochs and cnn.trained_params().epochs == asked.epochs
    kernel = {"data_checksum": dataset.checksum, "seed": cnn.seed, "device": "GPU", "accuracy": 0.99}
    for params in (on_gpu, asked):  # what the kernel trained, or (as it was recorded before) what was asked for
        kernel["params"] = models.params_dict(params)
        assert not training.matching_estimate(kernel, "cnn", asked, cnn.seed, dataset)
    here = {**kernel, "params": models.params_dict(asked), "device": "CPU"}
    assert training.matching_estimate(here, "cnn", asked, cnn.seed, dataset)
    assert not training.matching_estimate({**here, "device": None}, "cnn", asked, cnn.seed, dataset)  # unrecorded
    assert not training.matching_estimate(here, "cnn", replace(asked, epochs=7), cnn.seed, dataset)
    assert cnn.configuration(dataset.checksum, gpu=True) != cnn.configuration(dataset.checksum, gpu=False)
    logreg = pipeline.Settings(model="logreg")
    assert logreg.configuration(dataset.checksum, gpu=True) == logreg.configuration(dataset.checksum, gpu=False)
    # validate records what it trained, and where.
    result, _ = training.validate_and_keep(dataset, "logreg", models.params_for("logreg", {"max_iter": "20"}), 42)
    assert result.device == "CPU" and result.params["max_iter"] == 20


@pytest.mark.slow
def test_the_cron_path_prints_its_summary_and_nothing_else_on_a_first_run(server, kaggle_env, workdir, tmp_path):
    """`run -q` in a fresh home: the libraries start afresh (matplotlib builds its font cache and says so at INFO),
    and still only the summary line comes out: cron mails what a job prints."""
    fresh = {"MPLCONFIGDIR": str(tmp_path / "fresh-mpl"), "XDG_CACHE_HOME": str(tmp_path / "fresh-cache")}
    result = run_cli(*RUN, cwd=workdir, env={**kaggle_env, **fresh})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fresh-mpl").is_dir(), "it drew (the report's plots) with a fresh matplotlib"
    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    assert line.startswith("kaggle-digits run ok (exit 0")
