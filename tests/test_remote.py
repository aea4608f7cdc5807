"""`submit --remote kaggle` end to end against the local Kaggle, which runs the pushed kernel in a subprocess with
Kaggle's layout (offline, without the toolkit installed): the kernel trains, the output comes back checked, the
upload goes through the same guards. Faults: a kernel that fails, one that never finishes, the GPU quota used
up, lost status answers."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from test_kaggle import FAST_MODEL, ledger_rows
from test_your_model import SKLEARN, copy_examples, ledger

from kaggle_digits.local_kaggle import kernels as served

# Every test here runs a whole flow in subprocesses (or a server): not in `make test-fast`.
pytestmark = pytest.mark.slow

REMOTE = ["--remote", "kaggle", *FAST_MODEL]


def fake_image(folder: Path, body: str) -> str:
    """An interpreter standing in for a broken Kaggle image: a shell script run instead of the kernel's Python."""
    path = folder / "python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def nothing_kept(workdir: Path) -> bool:
    return (
        not list((workdir / "submissions").glob("*.csv"))
        and not (workdir / "data" / "models").exists()
        and not (workdir / "submissions" / "ledger.csv").exists()
    )


def test_remote_training_comes_back_checked_and_goes_up_through_the_guards(server, kaggle_env, workdir, kd):
    env = {**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"}
    server.inject(method="GetKernelSessionStatus", lost=True, count=2)  # answers lost on the way: polled again
    result = kd("submit", *REMOTE, cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "remote: pushed demo-user/kaggle-digits-digit-recognizer-logreg version 1 (NvidiaTeslaT4, internet off)"
        in result.stderr
    )
    assert "remote: COMPLETE after" in result.stderr
    assert server.state.requests.count("POST SaveKernel") == 1  # never resent: each push is a new version
    assert "POST GetAcceleratorQuotaStatistics" in server.state.requests
    (session,) = server.state.kernels.sessions.values()
    assert session.machine_shape == "NvidiaTeslaT4"  # asked for by name: enableGpu alone would get a P100
    (row,) = ledger_rows(workdir)
    assert row["trained_on"] == "kaggle kernel demo-user/kaggle-digits-digit-recognizer-logreg v1"
    assert row["accelerator"] == "NvidiaTeslaT4"
    assert row["status"] == "COMPLETE" and float(row["public_score"]) > 0.7
    sidecar = json.loads((workdir / "submissions" / row["file"]).with_suffix(".json").read_text())
    assert (
        sidecar["trained_on"] == row["trained_on"]
        and sidecar["model"] == "logreg"
        and sidecar["holdout_accuracy"] > 0.7
    )
    assert sidecar["accelerator"] == "NvidiaTeslaT4"
    # The kernel's model and report are here now, and the model works here: predict writes the same labels.
    assert (workdir / "data" / "reports" / "logreg" / "metrics.json").exists()
    again = kd("predict", *FAST_MODEL, cwd=workdir, env=env)
    assert again.returncode == 0, again.stderr
    local = sorted((workdir / "submissions").glob("*-logreg.csv"))[-1]
    assert local.name != row["file"]
    assert local.read_text() == (workdir / "submissions" / row["file"]).read_text()
    # The same file again is refused by the same guard as a local one.
    twice = kd("submit", *FAST_MODEL, "--file", str(local), cwd=workdir, env=env)
    assert twice.returncode == 10 and "identical to" in twice.stderr


def test_a_failing_kernel_shows_its_log_and_keeps_nothing(server, kaggle_env, workdir, tmp_path, kd):
    server.state.kernels.settings.python = fake_image(tmp_path, "echo 'CUDA error: out of memory' >&2; exit 1")
    result = kd("submit", *REMOTE, cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"})
    assert result.returncode == 5, result.stderr
    assert "  | CUDA error: out of memory" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: the kernel demo-user/kaggle-digits-digit-recognizer-logreg v1 failed: ")
        and "Fix:" in last
    )
    assert nothing_kept(workdir) and server.state.submissions == []


def test_a_kernel_that_never_finishes_is_given_up_after_the_timeout(server, kaggle_env, workdir, tmp_path, kd):
    server.state.kernels.settings.python = fake_image(tmp_path, "sleep 60")
    result = kd(
        "submit", *REMOTE, "--remote-timeout", "2", cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"}
    )
    assert result.returncode == 5, result.stderr
    # Whichever comes first: the toolkit's patience or Kaggle's own limit (the same number is sent with the push).
    assert "not done within" in result.stderr or "run-time limit" in result.stderr
    assert nothing_kept(workdir) and server.state.submissions == []


def test_the_gpu_quota_used_up_stops_before_the_push(server, kaggle_env, workdir, kd):
    server.state.kernels.settings.gpu_used_seconds = served.GPU_QUOTA_SECONDS
    result = kd("submit", *REMOTE, cwd=workdir, env=kaggle_env)
    assert result.returncode == 5
    assert (
        "the weekly GPU quota is used up (30.0 h used of 30 h); it refreshes" in result.stderr
        and "Fix:" in result.stderr
    )
    assert "POST SaveKernel" not in server.state.requests and nothing_kept(workdir)


def test_time_held_by_running_sessions_counts_against_the_quota(server, kaggle_env, workdir, kd):
    """Used plus reserved: 29 h used and 1 h held by a session running elsewhere leave nothing."""
    server.state.kernels.settings.gpu_used_seconds = served.GPU_QUOTA_SECONDS - 3600
    server.state.kernels.settings.gpu_reserved_seconds = 3600
    result = kd("submit", *REMOTE, cwd=workdir, env=kaggle_env)
    assert result.returncode == 5
    assert "used up (29.0 h used + 1.0 h held by sessions running now of 30 h)" in result.stderr
    assert "POST SaveKernel" not in server.state.requests


def test_an_unknown_quota_is_said_and_the_run_goes_on_on_the_accelerator_asked_for(server, kaggle_env, workdir, kd):
    server.state.kernels.settings.gpu_quota_seconds = None  # the answer carries no gpuQuota
    env = {**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"}
    result = kd("submit", *REMOTE, "--remote-accelerator", "NvidiaL4", cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr
    assert "Kaggle did not report this account's GPU quota; going on" in result.stderr
    assert [session.machine_shape for session in server.state.kernels.sessions.values()] == ["NvidiaL4"]
    assert [row["accelerator"] for row in ledger_rows(workdir)] == ["NvidiaL4"]
    # Another setting trains again; its predictions may still match the first file's (lbfgs converges within 60
    # iterations on some machines), and the identical-file guard is not what this test is about: --force.
    cpu = kd("submit", *REMOTE, "--remote-cpu", "-p", "max_iter=61", "--force", cwd=workdir, env=env)
    assert cpu.returncode == 0, cpu.stderr
    assert (
        list(server.state.kernels.sessions.values())[-1].machine_shape == ""
        and ledger_rows(workdir)[-1]["accelerator"] == "CPU"
    )
    both = kd("submit", *REMOTE, "--remote-cpu", "--remote-accelerator", "NvidiaL4", cwd=workdir, env=env)
    assert both.returncode == 2 and "contradict" in both.stderr.strip().splitlines()[-1]
    unknown = kd("submit", *REMOTE, "--remote-accelerator", "NvidiaTeslaK80", cwd=workdir, env=env)
    assert unknown.returncode == 2 and "invalid choice: 'NvidiaTeslaK80'" in unknown.stderr


def test_a_push_whose_answer_is_lost_is_followed_not_pushed_again(server, kaggle_env, workdir, kd):
    """SaveKernel made the version, then its answer was lost: the kernel's version, read before and after,
    says so, and that version is followed. One push, one session, exit 0."""
    server.inject(method="SaveKernel", lost=True)
    result = kd("submit", *REMOTE, cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"})
    assert result.returncode == 0, result.stderr
    assert "got no answer, but Kaggle made version 1: following it" in result.stderr
    assert server.state.requests.count("POST SaveKernel") == 1 and len(server.state.kernels.sessions) == 1
    assert server.state.requests.count("POST GetKernel") == 2  # before the push, and after the lost answer
    (row,) = ledger_rows(workdir)
    assert row["status"] == "COMPLETE" and row["trained_on"].endswith(" v1")


def test_a_push_that_never_arrived_is_pushed_again_once(server, kaggle_env, workdir, kd):
    server.inject(method="SaveKernel", drop=True)  # the connection closes, nothing is made
    result = kd("submit", *REMOTE, cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"})
    assert result.returncode == 0, result.stderr
    assert "got no answer and Kaggle made no version; pushing again" in result.stderr
    assert server.state.requests.count("POST SaveKernel") == 2 and len(server.state.kernels.sessions) == 1


def test_long_kernel_names_are_shortened_to_50_characters_the_same_way_every_time():
    from kaggle_digits import remote

    long = "kaggle-digits-" + "a-very-long-task-name-" * 3 + "cnn-member-1"
    slug = remote.short_slug(long)
    assert len(slug) == 50 and slug == remote.short_slug(long) and slug.startswith("kaggle-digits-a-very-long")
    assert remote.short_slug(long.replace("member-1", "member-2")) != slug
    assert remote.short_slug("kaggle-digits-digit-recognizer-cnn") == "kaggle-digits-digit-recognizer-cnn"


def test_kernel_edges_a_wrong_slug_new_and_unknown_statuses_an_output_without_url(
    server, local_client, tmp_path, monkeypatch
):
    from kaggle_digits.errors import KaggleError
    from kaggle_digits.kaggle_api import Kernels
    from kaggle_digits.kaggle_api.kernels import PushedKernel
    from kaggle_digits.local_kaggle import api as served_api

    kernels = Kernels(local_client())
    with pytest.raises(KaggleError, match=r"Kaggle has no kernel demo-user/nope for this account \(HTTP 403\)"):
        kernels.status(PushedKernel("demo-user", "nope", 1, ""))
    assert kernels.current_version("demo-user", "nope") == 0
    pushed = kernels.push(
        "demo-user",
        "kaggle-digits-edge",
        "kaggle-digits-edge",
        "open('out.txt', 'w').write('1')",
        "digit-recognizer",
        None,
        60,
    )
    (session,) = server.state.kernels.sessions.values()
    deadline = time.monotonic() + 30
    while not session.done and time.monotonic() < deadline:
        time.sleep(0.05)
    for status in (
        "NEW_SCRIPT",
        "SOME_STATUS_FROM_THE_FUTURE",
    ):  # a version without its session yet; a newer client's status
        session.status = status
        state = kernels.status(pushed)
        assert state.status == status and not state.done
    session.status = "COMPLETE"
    monkeypatch.setattr(served_api.storage, "signed_download_url", lambda *args, **kwargs: "")
    with pytest.raises(KaggleError, match="listed the kernel output out.txt without a URL"):
        kernels.output(pushed, tmp_path / "out")


def test_remote_stop_deletes_the_toolkits_running_kernels_and_nothing_else(
    server, kaggle_env, local_client, workdir, kd
):
    from kaggle_digits.kaggle_api import Kernels

    kernels = Kernels(local_client())
    sleeper = "import time; time.sleep(60)"
    kernels.push(
        "demo-user",
        "kaggle-digits-digit-recognizer-cnn",
        "kaggle-digits-digit-recognizer-cnn",
        sleeper,
        "digit-recognizer",
        "NvidiaTeslaT4",
        120,
    )
    kernels.push("demo-user", "my-own-notebook", "my-own-notebook", sleeper, "digit-recognizer", "NvidiaTeslaT4", 120)
    kernels.push(
        "demo-user", "kaggle-digits-finished", "kaggle-digits-finished", "print(1)", "digit-recognizer", None, 120
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
        s.status in ("RUNNING", "COMPLETE") for s in server.state.kernels.sessions.values()
    ):
        time.sleep(0.05)
    result = kd("remote", "stop", cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "remote: stopped 1 running kernel: demo-user/kaggle-digits-digit-recognizer-cnn"
    toolkit, own, finished = server.state.kernels.sessions.values()
    assert toolkit.status == "CANCEL_ACKNOWLEDGED" and own.status == "RUNNING" and finished.status == "COMPLETE"
    assert set(server.state.kernels.kernels) == {
        ("demo-user", "my-own-notebook"),
        ("demo-user", "kaggle-digits-finished"),
    }
    assert server.state.requests.count("POST DeleteKernel") == 1


def test_remote_refuses_options_it_cannot_honour(kaggle_env, workdir, kd):
    result = kd("submit", *REMOTE, "--refit", cwd=workdir, env=kaggle_env)
    assert result.returncode == 2 and "--remote trains in a kernel" in result.stderr
    for bad in ("nan", "0", "-5"):
        result = kd("submit", *REMOTE, "--remote-timeout", bad, cwd=workdir, env=kaggle_env)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
            f"error: --remote-timeout {bad}"
        )


def test_an_ensemble_that_cannot_be_split_is_refused_before_any_push(server, kaggle_env, workdir, kd):
    result = kd("submit", "--remote", "kaggle", "--model", "ensemble", "-p", "members=1", cwd=workdir, env=kaggle_env)
    assert result.returncode == 2 and "members=1: needs at least 2" in result.stderr.strip().splitlines()[-1]
    assert "POST SaveKernel" not in server.state.requests


def test_the_ensemble_spreads_its_members_over_parallel_kernels(server, kaggle_env, workdir, kd):
    tiny = ["-p", "members=2", "-p", "epochs=2", "-p", "filters=8", "-p", "batch_size=32"]
    result = kd(
        "submit",
        "--remote",
        "kaggle",
        "--model",
        "ensemble",
        *tiny,
        cwd=workdir,
        env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.3"},
    )
    assert result.returncode == 0, result.stderr
    assert server.state.requests.count("POST SaveKernel") == 2
    sessions = list(server.state.kernels.sessions.values())
    assert [session.status for session in sessions] == ["COMPLETE", "COMPLETE"]
    assert sessions[1].started < sessions[0].finished, "the two members trained at the same time"
    assert "remote: 2 members back; their out-of-fold accuracy" in result.stderr
    (row,) = ledger_rows(workdir)
    assert row["trained_on"].startswith(
        "kaggle kernels demo-user/kaggle-digits-digit-recognizer-ensemble-member-1 v1 .. "
    )
    assert row["status"] == "COMPLETE" and 0.0 < float(row["holdout_accuracy"]) <= 1.0
    assert len(list((workdir / "data" / "models" / "ensemble").glob("member-*"))) == 2


def test_an_ensemble_beside_a_busy_gpu_session_waits_for_a_slot_and_trains_each_member_once(
    server, kaggle_env, local_client, workdir, kd
):
    """kaggle.com refuses a GPU push past 2 running sessions (it does not queue it). With one session of the account
    busy elsewhere, member 1 takes the last slot, member 2 is refused, waits, backs off and goes once a slot frees."""
    from kaggle_digits.kaggle_api import Kernels

    Kernels(local_client()).push(
        "demo-user",
        "notebook-elsewhere",
        "notebook-elsewhere",
        "import time; time.sleep(6)",
        "digit-recognizer",
        "NvidiaTeslaT4",
        120,
    )
    tiny = ["-p", "members=2", "-p", "epochs=1", "-p", "filters=8", "-p", "batch_size=32"]
    env = {**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.3"}
    result = kd("submit", "--remote", "kaggle", "--model", "ensemble", *tiny, cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "Maximum batch GPU session count of 2 reached): the account's other GPU sessions hold every slot; pushing "
        "again in" in result.stderr
    )
    members = {slug: kernel.sessions for (_, slug), kernel in server.state.kernels.kernels.items() if "member" in slug}
    assert sorted(members) == [f"kaggle-digits-digit-recognizer-ensemble-member-{n}" for n in (1, 2)]
    assert all(len(sessions) == 1 and sessions[0].status == "COMPLETE" for sessions in members.values()), (
        "each member trained once"
    )
    intervals = [(s.started, s.finished) for s in server.state.kernels.sessions.values() if s.gpu]
    assert max(sum(1 for a, b in intervals if a <= moment < b) for moment, _ in intervals) <= 2, "never past the cap"
    (row,) = ledger_rows(workdir)
    assert row["status"] == "COMPLETE" and row["accelerator"] == "NvidiaTeslaT4"


@pytest.mark.parametrize("during", ["the wait between polls", "a poll's request"])
def test_ctrl_c_stops_following_and_says_where_to_stop_the_kernel(server, kaggle_env, workdir, tmp_path, during):
    """The Kernels API cannot stop a session from outside (no public answer carries its id): Ctrl-C stops
    following it, says so with the kernel's page, keeps nothing and exits 130, whenever it comes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    server.state.kernels.settings.python = fake_image(tmp_path, "sleep 30")
    env = {**os.environ, **kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kaggle_digits", "submit", *REMOTE],
        cwd=workdir,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        s.status == "RUNNING" for s in server.state.kernels.sessions.values()
    ):
        time.sleep(0.1)
    if during == "a poll's request":
        server.inject(method="GetKernelSessionStatus", delay=5.0, count=1000)  # Ctrl-C lands inside the request
        time.sleep(1.5)
    else:
        time.sleep(0.5)  # most of following is the wait between polls (0.2 s here; 15 s by default)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "It keeps running on Kaggle, on this account's GPU quota: stop it with 'kaggle-digits remote stop'" in stderr
    assert "https://www.kaggle.com/code/demo-user/kaggle-digits-digit-recognizer-logreg" in stderr
    assert nothing_kept(workdir) and server.state.submissions == []


def test_the_pushed_script_carries_the_package_source_and_no_secret(server, kaggle_env, workdir, kd):
    """What goes to Kaggle: the toolkit's .py files, nothing else from its folder, and no credential."""
    import base64
    import io
    import re
    import zipfile

    from kaggle_digits import remote

    stray = Path(remote.PACKAGE) / "kaggle.json"
    stray.write_text('{"username": "someone", "key": "0123456789abcdef"}')
    try:
        archive = zipfile.ZipFile(io.BytesIO(remote.bundle()))
    finally:
        stray.unlink()
    names = archive.namelist()
    assert "kaggle_digits/cli.py" in names and "kaggle_digits/remote.py" in names
    assert all(name.endswith(".py") for name in names) and "kaggle_digits/kaggle.json" not in names
    result = kd("submit", *REMOTE, cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"})
    assert result.returncode == 0, result.stderr
    (session,) = server.state.kernels.sessions.values()
    script = (session.root / "script.py").read_text()
    bundled = re.search(r'BUNDLE = "([A-Za-z0-9+/=]+)"', script).group(1)
    pushed = zipfile.ZipFile(io.BytesIO(base64.b64decode(bundled)))
    assert pushed.namelist() == names
    for name in names:  # the source as it is here, byte for byte: nothing from the environment was added
        assert pushed.read(name) == (Path(remote.PACKAGE).parent / name).read_bytes(), name
    assert kaggle_env["KAGGLE_API_TOKEN"] not in script.replace(bundled, "")


def test_a_poll_kaggle_refuses_names_the_kernel_left_running(server, kaggle_env, workdir, tmp_path, kd):
    """Not only Ctrl-C: any way out of a remote run (here a 403 on a status poll) names each pushed kernel still
    running on the account's GPU quota, and `kaggle-digits remote stop`."""
    server.state.kernels.settings.python = fake_image(tmp_path, "sleep 30")
    server.inject(method="GetKernelSessionStatus", status=403, count=1000)
    result = kd("submit", *REMOTE, cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"})
    assert result.returncode == 5, result.stderr
    assert "stopped following demo-user/kaggle-digits-digit-recognizer-logreg v1" in result.stderr
    assert "It keeps running on Kaggle, on this account's GPU quota: stop it with 'kaggle-digits remote stop'" in (
        result.stderr
    )
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert nothing_kept(workdir) and server.state.submissions == []


def test_a_rerun_after_a_failed_upload_uploads_the_kernels_file_without_a_second_gpu_session(
    server, kaggle_env, workdir, kd
):
    """The storage refused the upload ("run again later"). The rerun uploads the file the kernel already brought
    back: no second push, no second GPU session."""
    env = {**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"}
    server.inject(method="upload", status=403, count=100)
    failed = kd("submit", *REMOTE, cwd=workdir, env=env)
    assert failed.returncode == 5 and "could not upload" in failed.stderr, failed.stderr
    assert server.state.requests.count("POST SaveKernel") == 1 and server.state.submissions == []
    (row,) = ledger_rows(workdir)
    assert row["status"] == "FAILED"
    server.state.faults.clear()
    again = kd("submit", *REMOTE, cwd=workdir, env=env)
    assert again.returncode == 0, again.stderr
    assert f"{row['file']} was predicted with exactly these settings and data and never uploaded" in again.stderr
    assert server.state.requests.count("POST SaveKernel") == 1, "no second push"
    assert server.state.submissions[0].content == (workdir / "submissions" / row["file"]).read_bytes()


def test_each_kernel_gets_the_whole_timeout_from_its_own_push(server, kaggle_env, workdir, tmp_path, kd):
    """Kaggle gives every session the limit from its own start, so a later wave of the ensemble is not cut short by
    the time the first wave took: two members in turn (one slot), each done well within the limit, though both
    together take longer than it."""
    server.state.kernels.settings.python = fake_image(tmp_path, "sleep 2")  # done, but brings back no member
    tiny = ["--model", "ensemble", "-p", "members=2", "--remote-sessions", "1", "--remote-timeout", "4"]
    result = kd(
        "submit", "--remote", "kaggle", *tiny, cwd=workdir, env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"}
    )
    assert server.state.requests.count("POST SaveKernel") == 2
    sessions = sorted(server.state.kernels.sessions.values(), key=lambda session: session.started)
    assert sessions[1].finished - sessions[0].started > 4, "both together took longer than the limit"
    assert "not done within" not in result.stderr
    assert result.returncode == 5 and "finished without its member" in result.stderr, result.stderr


def test_the_pushed_bundle_stays_under_the_documented_bound():
    """docs/kaggle-gpus.md says the package travels in under 256 kB of base64: keep it true."""
    import base64

    from kaggle_digits import remote

    assert len(base64.b64encode(remote.bundle())) < 256_000
    assert "under\n256 kB in base64" in (Path(__file__).parent.parent / "docs" / "kaggle-gpus.md").read_text()


@pytest.mark.parametrize("form", ["file", "module"])
def test_remote_kaggle_trains_the_users_model_in_the_kernel(form, server, kaggle_env, workdir, cli_run, monkeypatch):
    """docs/your-model.md's scikit-learn example, trained in the kernel (on the Kaggle image's versions under
    make test-kaggle-image), named by its file or as an importable module (a package of the user's on the path):
    its files travel as data, and what comes back is this code's model, with this configuration."""
    copy_examples(workdir)
    reference = SKLEARN
    if form == "module":
        (workdir / "their_models").mkdir()
        (workdir / "pca_logreg.py").rename(workdir / "their_models" / "pca_logreg.py")
        monkeypatch.syspath_prepend(str(workdir))
        reference = "their_models.pca_logreg:pca_logreg"
    env = {**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"}
    result = cli_run("submit", "--remote", "kaggle", "--model", reference, "-p", "components=20", cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr
    (session,) = server.state.kernels.sessions.values()
    script = (session.root / "script.py").read_text()
    assert "make_pipeline" not in script, "the user's text travels as data, never as the script's code"
    (row,) = ledger(workdir)
    assert row["trained_on"].startswith("kaggle kernel ") and row["status"] == "COMPLETE"
    sidecar = json.loads((workdir / "submissions" / row["file"]).with_suffix(".json").read_text())
    assert row["config"] == sidecar["config"] and sidecar["model"].startswith(reference.split(":")[0])
    local = cli_run("predict", "--model", reference, "-p", "components=20", cwd=workdir)
    assert local.returncode == 0, local.stderr  # the kernel's model is this code's: it predicts here too
