"""The promises where users really are (issue 21): two processes on one ledger, a browser beside the local
server, a shared machine, a folder the demo did not make, bad settings. Real processes, no model training."""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_ZIP, SECRETS, TEST_TOKEN, run_cli
from test_kaggle import ledger_rows

from kaggle_digits import config, demo, helpers, local_kaggle, remote, training
from kaggle_digits import ledger as ledger_module

PUBLISHED = ("KGAT_local_demo_token_0000", "demo-user:local-demo-key-0000")  # what earlier READMEs printed


def answer_file(folder: Path, name: str, label: int) -> Path:
    """A valid submission for the fixture's competition (300 test rows)."""
    path = folder / name
    path.write_text("ImageId,Label\n" + "".join(f"{i},{label}\n" for i in range(1, 301)))
    return path


def post(port: int, path: str, body: bytes = b"{}", headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Host": f"localhost:{port}", "Content-Type": "application/json", **(headers or {})},
        )
        response = connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else {}
    finally:
        connection.close()


def start_cli(*args: str, cwd: Path, env: dict) -> subprocess.Popen:
    """A CLI process started now and left running (several at once, or a server), its output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "kaggle_digits", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def save_kernel_body(text: str = "open('ran.txt', 'w').write('ran')") -> bytes:
    return json.dumps(
        {
            "slug": f"{local_kaggle.DEMO_USER}/intruder",
            "newTitle": "intruder",
            "text": text,
            "language": "python",
            "kernelType": "script",
            "competitionDataSources": ["digit-recognizer"],
        }
    ).encode()


# --- one ledger, several processes ---------------------------------------------------------------------------


@pytest.mark.slow
def test_uploads_started_together_go_up_once_each_and_the_ledger_keeps_every_row(workdir, kaggle_env):
    """Four `submit --file` at once through one checkout (A twice, B, C) against a Kaggle that takes 2 s to score:
    Kaggle receives each file once, the ledger has one row each, the second A is refused (exit 10)."""
    competition = local_kaggle.competition_from_labeled(SAMPLE_ZIP, max_rows=1500)
    with local_kaggle.LocalKaggleServer([competition], scoring_delay=2.0, **SECRETS) as server:
        files = [answer_file(workdir, f"{name}.csv", label) for name, label in (("a", 1), ("b", 2), ("c", 3))]
        processes = [
            start_cli("submit", "--file", str(path), cwd=workdir, env=kaggle_env)
            for path in (files[0], files[0], files[1], files[2])
        ]
        results = [(process.wait(timeout=180), process.stderr.read()) for process in processes]
        contents = sorted(item.content for item in server.state.submissions)
    assert contents == sorted(path.read_bytes() for path in files), "each file reached Kaggle exactly once"
    codes = sorted(code for code, _ in results)
    assert codes == [0, 0, 0, 10], results
    refused = next(stderr for code, stderr in results if code == 10)
    assert "a.csv" in refused and ("may already be on Kaggle" in refused or "is identical to a.csv" in refused)
    rows = ledger_rows(workdir)
    assert sorted(row["file"] for row in rows) == ["a.csv", "b.csv", "c.csv"]
    assert all(row["status"] == "COMPLETE" and row["kaggle_ref"] for row in rows)
    assert all(row["competition"] == "digit-recognizer" for row in rows)


ADD_ROWS = """
import sys
from kaggle_digits import ledger as ledger_module
ledger = ledger_module.Ledger()
for number in range(60):
    row = dict(task="digit-recognizer", file="x.csv", checksum=sys.argv[1], status="COMPLETE")
    ledger.add(run_id=f"{sys.argv[1]}-{number}", **row)
"""


@pytest.mark.slow
def test_two_writers_of_the_ledger_lose_no_row(workdir):
    env = {**os.environ, "KAGGLE_DIGITS_HOME": str(workdir)}
    writers = [
        subprocess.Popen([sys.executable, "-c", ADD_ROWS, name], cwd=workdir, env=env, stdin=subprocess.DEVNULL)
        for name in "pq"
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    rows = ledger_module.Ledger(workdir / "submissions" / "ledger.csv").rows()
    assert len(rows) == 120 and len({row["run_id"] for row in rows}) == 120


def test_a_process_waiting_for_the_ledger_says_so(tmp_path, caplog):
    """Another process holds the ledger: an add waits, says so, and goes on once it is released. No timing luck:
    the holder lets go only after the waiting line was logged."""
    import threading

    ledger = ledger_module.Ledger(tmp_path / "ledger.csv")
    release = tmp_path / "release"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, time; from kaggle_digits import ledger as ledger_module\n"
            f"with ledger_module.Ledger({str(ledger.path)!r}).locked():\n"
            "    print('held', flush=True)\n"
            f"    while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.05)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with caplog.at_level("INFO", logger="kaggle_digits"):
        adding = threading.Thread(
            target=ledger.add, kwargs={"run_id": "r", "task": "digit-recognizer", "file": "x.csv", "status": "COMPLETE"}
        )
        adding.start()
        deadline = time.monotonic() + 60
        while "waiting for it" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not ledger.path.exists(), "nothing was written while the other process held the ledger"
        release.touch()
        adding.join(timeout=60)
    assert holder.wait(timeout=10) == 0
    assert "another kaggle-digits process is using it; waiting for it" in caplog.text
    assert [row["run_id"] for row in ledger.rows()] == ["r"]


def test_an_open_row_is_failed_only_past_the_grace_and_only_from_its_own_competition(
    server, local_client, tmp_path, monkeypatch
):
    """Kaggle's list can lag behind a create: a fresh row without a ref stays open; one of another competition
    is not settled from this one's list at all."""
    kaggle = local_client()
    ledger = ledger_module.Ledger(tmp_path / "ledger.csv")
    ledger.add(
        run_id="fresh",
        time=helpers.utc_now(),
        task="digit-recognizer",
        file="f.csv",
        checksum="f",
        status="UPLOADING",
        competition="digit-recognizer",
    )
    ledger.add(
        run_id="elsewhere",
        time="2026-01-01T00:00:00Z",
        task="digit-recognizer",
        file="e.csv",
        checksum="e",
        status="UNKNOWN",
        competition="another-competition",
    )
    monkeypatch.setattr(config, "SETTLE_GRACE_SECONDS", 300.0)
    from kaggle_digits.ledger import settle_open_rows

    settle_open_rows(ledger, kaggle, "digit-recognizer")
    assert [row["status"] for row in ledger.rows()] == ["UPLOADING", "UNKNOWN"]
    monkeypatch.setattr(config, "SETTLE_GRACE_SECONDS", 0.0)
    settle_open_rows(ledger, kaggle, "digit-recognizer")
    assert [row["status"] for row in ledger.rows()] == ["FAILED", "UNKNOWN"]


@pytest.mark.slow
def test_two_fetches_at_once_share_no_partial_file(server, kaggle_env, workdir):
    fetches = [start_cli("fetch", cwd=workdir, env=kaggle_env) for _ in range(2)]
    results = [(fetch.wait(timeout=120), fetch.stderr.read()) for fetch in fetches]
    assert [code for code, _ in results] == [0, 0], results
    assert server.state.requests.count("POST DownloadDataFiles") >= 1
    assert (
        not list((workdir / "data" / "raw").glob("*.part"))
        and (workdir / "data" / "raw" / "digit-recognizer" / "train.csv").is_file()
    )


# --- a server that trusts only its own children --------------------------------------------------------------


def test_published_credentials_a_foreign_host_and_a_browser_page_run_nothing(server):
    port = server.port
    for token in PUBLISHED[:1]:
        assert (
            post(
                port,
                "/api/v1/kernels.KernelsApiService/SaveKernel",
                save_kernel_body(),
                {"Authorization": f"Bearer {token}"},
            )[0]
            == 401
        )
    import base64

    basic = base64.b64encode(PUBLISHED[1].encode()).decode()
    assert (
        post(
            port,
            "/api/v1/kernels.KernelsApiService/SaveKernel",
            save_kernel_body(),
            {"Authorization": f"Basic {basic}"},
        )[0]
        == 401
    )
    mine = {"Authorization": f"Bearer {TEST_TOKEN}"}
    # DNS rebinding: a page's own name resolving to 127.0.0.1 carries that name as Host.
    status, answer = post(
        port,
        "/api/v1/kernels.KernelsApiService/SaveKernel",
        save_kernel_body(),
        {**mine, "Host": f"evil.example:{port}"},
    )
    assert status == 421 and "loopback" in answer["message"]
    status, _ = post(
        port,
        "/api/v1/kernels.KernelsApiService/SaveKernel",
        save_kernel_body(),
        {**mine, "Origin": "https://evil.example"},
    )
    assert status == 403
    assert server.state.kernels.sessions == {}, "nothing ran"
    # The faults endpoint is behind the same secret, and capped.
    assert post(port, "/_local/faults", json.dumps({"method": "*", "status": 500}).encode())[0] == 401
    assert post(port, "/_local/faults", json.dumps({"method": "*", "count": 10**9}).encode(), mine)[0] == 400
    assert post(port, "/_local/faults", json.dumps({"method": "GetSubmission", "count": 1}).encode(), mine)[0] == 200


def test_malformed_requests_get_a_400_and_credentials_are_checked_before_the_body(server):
    port, mine = server.port, {"Authorization": f"Bearer {TEST_TOKEN}"}
    status, answer = post(port, "/api/v1/competitions.CompetitionApiService/GetSubmissionLimits", b"[1, 2", mine)
    assert status == 400 and answer["code"] == 400
    assert post(port, "/api/v1/competitions.CompetitionApiService/GetSubmissionLimits", b"[1, 2]", mine)[0] == 400
    bad_timeout = json.loads(save_kernel_body())
    bad_timeout["sessionTimeoutSeconds"] = "abc"
    assert post(port, "/api/v1/kernels.KernelsApiService/SaveKernel", json.dumps(bad_timeout).encode(), mine)[0] == 400
    assert server.state.kernels.sessions == {}, "no session left QUEUED"
    # A huge declared body without credentials: 401 at once, the body never read.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("POST", "/api/v1/kernels.KernelsApiService/SaveKernel", skip_host=True)
    connection.putheader("Host", f"localhost:{port}")
    connection.putheader("Content-Length", str(10**9))
    connection.endheaders()
    assert connection.getresponse().status == 401
    connection.close()
    # ...and with them, a body past the cap is 413, never read either.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("POST", "/api/v1/kernels.KernelsApiService/SaveKernel", skip_host=True)
    connection.putheader("Host", f"localhost:{port}")
    connection.putheader("Authorization", f"Bearer {TEST_TOKEN}")
    connection.putheader("Content-Length", str(10**9))
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()


def test_a_kernel_sees_a_minimal_environment(server, local_client, monkeypatch):
    from kaggle_digits.kaggle_api import Kernels

    monkeypatch.setenv("MY_CLOUD_SECRET", "do-not-leak-0123")
    kernels = Kernels(local_client())
    pushed = kernels.push(
        local_kaggle.DEMO_USER,
        "envcheck",
        "envcheck",
        "import json, os; print(json.dumps(sorted(os.environ)))",
        "digit-recognizer",
        None,
        60,
    )
    deadline = time.monotonic() + 30
    while not kernels.status(pushed).done and time.monotonic() < deadline:
        time.sleep(0.1)
    (session,) = server.state.kernels.sessions.values()
    names = json.loads("".join(entry["data"] for entry in session.log if entry["stream_name"] == "stdout"))
    assert "MY_CLOUD_SECRET" not in names and not any(name.startswith("KAGGLE_API") for name in names)
    assert set(names) <= set(local_kaggle.kernels.KERNEL_ENVIRONMENT) | {
        "HOME",
        "KAGGLE_KERNEL_RUN_TYPE",
        "KAGGLE_URL_BASE",
        "PYTHONUNBUFFERED",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "no_proxy",
        "CUDA_VISIBLE_DEVICES",
        "LC_CTYPE",
    }, names


@pytest.mark.slow
def test_serve_local_makes_its_own_secret_and_keeps_it_in_a_private_file(kaggle_env, workdir, kd):
    process = start_cli(
        "serve-local", cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_HOME": str(workdir), "KAGGLE_API_TOKEN": ""}
    )
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        token_file = workdir / "data" / "local-kaggle" / "token"
        assert f"KAGGLE_API_TOKEN={token_file}" in "".join(lines)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert token not in "".join(lines) and token not in PUBLISHED
        assert (
            post(
                local_kaggle.DEFAULT_PORT,
                "/api/v1/competitions.CompetitionApiService/GetSubmissionLimits",
                json.dumps({"competitionName": "digit-recognizer"}).encode(),
                {"Authorization": f"Bearer {PUBLISHED[0]}"},
            )[0]
            == 401
        )
        fetched = kd("fetch", cwd=workdir, env={**kaggle_env, "KAGGLE_API_TOKEN": str(token_file)}, secret=token)
        assert fetched.returncode == 0, fetched.stderr
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


# --- stored credentials go to kaggle.com only --------------------------------------------------------------


STORED = ("KGAT_stored_in_home_0123456789", "stored-legacy-key-0123456789", "KGAT_stored_oauth_0123456789")


def plant_stored_credentials(kaggle_env) -> None:
    home = Path(kaggle_env["HOME"])
    (home / ".kaggle").mkdir(exist_ok=True)
    (home / ".kaggle" / "access_token").write_text(STORED[0])
    (Path(kaggle_env["KAGGLE_CONFIG_DIR"]) / "kaggle.json").write_text(
        json.dumps({"username": "someone", "key": STORED[1]})
    )
    (home / ".kaggle" / "credentials.json").write_text(
        json.dumps(
            {
                "refresh_token": "r-0123456789",
                "access_token": STORED[2],
                "access_token_expiration": "2099-01-01T00:00:00+00:00",
                "username": "someone",
            }
        )
    )
    for path in (home / ".kaggle" / "access_token", home / ".kaggle" / "credentials.json"):
        path.chmod(0o600)


@pytest.mark.slow
def test_stored_credentials_never_reach_a_local_endpoint(server, kaggle_env, workdir, kd):
    plant_stored_credentials(kaggle_env)
    env = {**kaggle_env, "KAGGLE_API_TOKEN": "", "KAGGLE_USERNAME": "someone", "KAGGLE_KEY": STORED[1]}
    none = kd("fetch", cwd=workdir, env=env)
    assert none.returncode == 4 and "only KAGGLE_API_TOKEN is used, never stored credentials" in none.stderr
    wrong = kd(
        "fetch", cwd=workdir, env={**env, "KAGGLE_API_TOKEN": "KGAT_wrong_0123456789"}, secret="KGAT_wrong_0123456789"
    )
    assert wrong.returncode == 4 and "no other credentials are tried there" in wrong.stderr
    right = kd("fetch", cwd=workdir, env={**env, "KAGGLE_API_TOKEN": TEST_TOKEN})
    assert right.returncode == 0, right.stderr
    assert (
        "stored credentials (~/.kaggle, kaggle.json, credentials.json, KAGGLE_USERNAME/KAGGLE_KEY) are not"
        in right.stderr
    )
    seen = "\n".join(server.state.credentials_seen)
    assert not any(secret in seen for secret in STORED), "a stored credential reached the local server"
    import base64

    assert base64.b64encode(f"someone:{STORED[1]}".encode()).decode() not in seen


# --- the demo deletes only what it made --------------------------------------------------------------------


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path):
    mine = tmp_path / "my-work"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    result = run_cli("demo", cwd=tmp_path, env={"KAGGLE_DIGITS_DEMO_DIR": str(mine)})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "was not made by the demo" in line and "nothing was deleted" in line and "Fix:" in line
    assert (mine / "thesis.txt").read_text() == "years of work"
    here = run_cli("demo", cwd=mine, env={"KAGGLE_DIGITS_DEMO_DIR": "."})
    assert here.returncode == 2 and (mine / "thesis.txt").exists()
    made = tmp_path / "demo"
    demo.fresh_folder(made)
    (made / "old-result.csv").write_text("x")
    demo.fresh_folder(made)  # its own folder: replaced
    assert sorted(path.name for path in made.iterdir()) == [demo.MARKER]


# --- settings, names, bounds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [
        ("KAGGLE_DIGITS_KERNEL_POLL", "abc"),
        ("KAGGLE_DIGITS_RETRIES", "abc"),
        ("KAGGLE_DIGITS_RETRIES", "-3"),
        ("KAGGLE_DIGITS_TIMEOUT", "nan"),
        ("KAGGLE_DIGITS_BACKOFF", "-1"),
        ("KAGGLE_DIGITS_SETTLE_GRACE", "inf"),
        ("KAGGLE_DIGITS_DEBUG", "maybe"),
        ("KAGGLE_DIGITS_HOME", "/dev/null"),
        ("KAGGLE_DIGITS_DEMO_DIR", "/dev/null"),
        ("KAGGLE_DIGITS_KERNEL_PYTHON", "/nonexistent/python3"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path, variable, value):
    result = run_cli("tasks", cwd=tmp_path, env={variable: value})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {variable}={value!r} is not allowed: ") and "Fix:" in line
    assert run_cli("--help", cwd=tmp_path, env={variable: value}).returncode == 0  # --help still works


@pytest.mark.slow
def test_a_competition_name_with_a_newline_pushes_nothing(server, kaggle_env, workdir, kd):
    result = kd(
        "submit",
        "--remote",
        "kaggle",
        "--competition",
        "digit-recognizer\nimport os",
        "--model",
        "logreg",
        cwd=workdir,
        env=kaggle_env,
    )
    assert result.returncode == 2 and "is not a Kaggle name" in result.stderr
    assert "POST SaveKernel" not in server.state.requests
    task_file = workdir / "evil.toml"
    task_file.write_text('name = "../../outside"\nsource = "competition"\nref = "digit-recognizer"\n')
    escaped = kd("validate", "--task", str(task_file), cwd=workdir, env=kaggle_env)
    assert escaped.returncode == 2 and "name = '../../outside' is not a Kaggle name" in escaped.stderr


def test_the_kernel_script_carries_its_arguments_as_data(tmp_path):
    from kaggle_digits import pipeline

    settings = pipeline.Settings(
        task=config.BUILTIN_TASKS["digit-recognizer"], model="logreg", seed=1, overrides={"C": "1\nimport os"}
    )
    script = remote.submit_script(settings, "digit-recognizer")
    assert "import os" not in script.replace("import base64, json, os, sys, tempfile", "")
    compile(script, "kernel.py", "exec")  # still a valid script
    spec_line = next(line for line in script.splitlines() if line.startswith("SPEC = "))
    import base64

    encoded = spec_line.split('"')[1]
    assert json.loads(base64.b64decode(encoded))["argv"][-1] == "C=1\nimport os"


def test_a_page_token_that_never_ends_stops_after_a_bound(server, local_client, monkeypatch):
    from kaggle_digits.errors import KaggleError
    from kaggle_digits.kaggle_api import client as kaggle_client

    kaggle = local_client()
    pages = iter(range(10**6))

    class Endless:
        submissions: list = []

        @property
        def next_page_token(self):
            return f"token-{next(pages)}"

    monkeypatch.setattr(kaggle.competitions, "list_submissions", lambda request: Endless())
    with pytest.raises(KaggleError, match="goes on past"):
        kaggle.submissions()
    assert next(pages) == kaggle_client.MAX_PAGES


def test_a_zip_member_past_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from kaggle_digits import data
    from kaggle_digits.errors import DataError

    monkeypatch.setattr(data, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(DataError, match="past the .* a member may have; nothing was extracted"):
        data.load(SAMPLE_ZIP, use_cache=False)


# --- files written whole, modes from the umask, folder swaps recovered --------------------------------------


def test_metrics_json_is_never_left_cut(tmp_path, monkeypatch):
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "metrics.json").write_text('{"holdout_accuracy": 0.99}')

    def disk_full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    result = training.ValidationResult(
        model="softmax",
        params={},
        seed=1,
        scheme="holdout 10%",
        accuracy=0.5,
        accuracy_std=None,
        per_class_accuracy=[0.5] * 10,
        confusion_matrix=[[0] * 10] * 10,
        best_epoch=None,
        curves={},
        fit_seconds=0.1,
        train_rows=1,
        validation_rows=1,
        data_checksum="c",
    )
    with pytest.raises(OSError):
        training.write_metrics(result, folder)
    assert json.loads((folder / "metrics.json").read_text()) == {"holdout_accuracy": 0.99}
    assert sorted(path.name for path in folder.iterdir()) == ["metrics.json"]


def test_rewritten_files_and_swapped_folders_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        helpers.write_atomically(tmp_path / "file.txt", lambda handle: handle.write(b"x"))
        helpers.write_folder_atomically(tmp_path / "folder", lambda staging: (staging / "inner.txt").write_text("y"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "file.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755


def test_a_folder_swap_killed_half_way_is_undone_at_the_next_start(tmp_path):
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    # As a run killed between the two renames leaves it: the model aside, no model, a dead run's staging.
    aside = models / ".cnn.old-4000001"
    aside.mkdir()
    (aside / "config.json").write_text("{}")
    (models / ".cnn.staging-4000001-abc").mkdir()
    result = run_cli("tasks", cwd=tmp_path, env={"KAGGLE_DIGITS_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert (models / "cnn" / "config.json").is_file()
    assert not [path.name for path in models.iterdir() if ".old-" in path.name or ".staging-" in path.name]
