"""`kaggle-digits tune` on the embedded sample: studies that continue, workers that split the trials (on the journal
file and on a real PostgreSQL server), a killed worker's trial failed, pruning that must happen, trials as Kaggle
kernels, the best trial submitted with an honest label, and every bad input as one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_ZIP, run_cli
from test_kaggle import ledger_rows

# logreg with few iterations: a trial in about a second, so a study of several fits the suite's budget.
LOGREG = ["--model", "logreg", "-p", "max_iter=20", "--data-dir", str(SAMPLE_ZIP)]

pytestmark = pytest.mark.slow


def study_trials(workdir: Path, name: str, storage: str | None = None):
    """The study as Optuna itself reads it from the storage (not through the toolkit)."""
    import optuna

    from kaggle_digits import tuning

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        return optuna.load_study(study_name=name, storage=tuning.open_storage(storage)).get_trials()


def states(trials) -> list[str]:
    return [trial.state.name for trial in trials]


def test_a_study_completes_and_a_second_run_continues_it(workdir, cli_run):
    first = cli_run("tune", *LOGREG, "--trials", "3", cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "tune: study digit-recognizer-logreg in journal:" in first.stderr
    assert first.stderr.count("tune: trial ") == 3
    second = cli_run("tune", *LOGREG, "--trials", "2", "--json", cwd=workdir)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["study"] == "digit-recognizer-logreg" and summary["complete"] == 5
    assert summary["pruned"] == 0 and summary["failed"] == 0
    assert summary["storage"].startswith("journal:") and summary["storage"].endswith("studies.journal")
    trials = study_trials(workdir, "digit-recognizer-logreg")
    assert [trial.number for trial in trials] == [0, 1, 2, 3, 4]
    best = max(trials, key=lambda trial: trial.value)
    assert summary["best_value"] == best.value and 0.5 < best.value <= 1.0
    assert summary["best_params"]["C"] == repr(best.params["C"]) and summary["best_params"]["max_iter"] == "20"
    assert summary["submit_command"] == (
        f"kaggle-digits submit --model logreg -p C={repr(best.params['C'])} -p max_iter=20 --seed 42 "
        f"--study digit-recognizer-logreg --trial {best.number}"
    )
    assert len({trial.user_attrs["params"]["C"] for trial in trials}) == 5  # five points, each drawn once
    pictures = workdir / "data" / "tuning" / "digit-recognizer-logreg"
    assert summary["plots"]["history"] == str(Path("data/tuning/digit-recognizer-logreg/history.png"))
    assert (pictures / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert (pictures / "importances.png").read_bytes()[:4] == b"\x89PNG"
    shown = cli_run("tune", "--show", "digit-recognizer-logreg", cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert "5 complete, 0 pruned, 0 failed" in shown.stdout
    assert f"best: {best.value:.4f} (trial {best.number}; chosen on this holdout 0.1, so optimistic)" in shown.stdout


def test_show_space_prints_the_models_space_and_what_p_fixes(workdir, cli_run):
    result = cli_run("tune", "--model", "cnn", "--show-space", "-p", "epochs=8", "-p", "rotation=5", cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  learning_rate: float in [0.0005, 0.01], log scale" in lines
    assert "  filters: one of 16, 24, 32, 48" in lines
    assert "  epochs: int in [5, 20]  (fixed by -p: 8)" in lines
    assert "  computed from those: rotation, zoom, shift" in lines
    assert "  rotation = 5  (fixed by -p)" in lines


def worker_pids(trials) -> set[str]:
    return {trial.user_attrs["worker"].split(":")[1] for trial in trials}


def test_two_workers_on_the_default_storage_split_the_trials(workdir):
    result = run_cli("tune", *LOGREG, "--trials", "6", "--jobs", "2", "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["complete"] == 6
    trials = study_trials(workdir, "digit-recognizer-logreg")
    assert sorted(trial.number for trial in trials) == list(range(6)), "none lost, none run twice"
    assert states(trials) == ["COMPLETE"] * 6
    assert len(worker_pids(trials)) == 2, "two processes shared them"


def postgres_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster of this test's own: initdb and pg_ctl in a temporary folder, on a free loopback
    port, stopped afterwards. initdb refuses to run as root: as root, the cluster belongs to 'nobody'."""
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (initdb not found): .ci/run installs it from Debian's packages")
    # Not under pytest's own temporary folder: that one is private to this user, and the cluster's user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="kaggle-digits-postgres-"))
    cluster = folder / "cluster"
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
        folder.chmod(0o700)
        as_user = ["runuser", "-u", "nobody", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120, cwd=folder)

    run(str(binaries / "initdb"), "-D", str(cluster), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}"
    run(str(binaries / "pg_ctl"), "-D", str(cluster), "-o", options, "-l", str(folder / "log"), "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(cluster), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_on_a_postgresql_server_split_the_trials(workdir, postgres):
    result = run_cli("tune", *LOGREG, "--trials", "4", "--jobs", "2", "--storage", postgres, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "4 complete, 0 pruned, 0 failed" in result.stdout
    assert "--storage postgresql://postgres@127.0.0.1:" in result.stdout  # the submit command names the storage
    trials = study_trials(workdir, "digit-recognizer-logreg", postgres)
    assert sorted(trial.number for trial in trials) == [0, 1, 2, 3]
    assert len(worker_pids(trials)) == 2
    assert not (workdir / "data" / "tuning" / "studies.journal").exists(), "the database holds the study"


SLEEPY = '''
import time

import numpy as np


class Sleepy:
    """Nearest class mean; `delay` seconds of sleep first (a trial that is still running when its worker dies)."""

    def __init__(self, delay=0.0, scale=1.0):
        self.delay, self.scale = delay, scale

    def fit(self, X, y):
        time.sleep(self.delay)
        self.means_ = np.stack([X[y == label].mean(axis=0) for label in range(10)]) * self.scale
        return self

    def predict(self, X):
        return np.argmin(((X[:, None, :] - self.means_[None]) ** 2).sum(axis=2), axis=1)


def search_space(trial):
    return {"delay": 120.0 if trial.number == 0 else 0.0, "scale": trial.suggest_float("scale", 0.9, 1.0)}
'''


def test_a_killed_workers_trial_is_failed_and_a_later_run_finishes_the_study(workdir):
    (workdir / "sleepy.py").write_text(SLEEPY)
    command = [sys.executable, "-m", "kaggle_digits", "tune", "--model", "sleepy.py:Sleepy", "--data-dir"]
    worker = subprocess.Popen(
        [*command, str(SAMPLE_ZIP), "--trials", "1"], cwd=workdir, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            journal = workdir / "data" / "tuning" / "studies.journal"
            if journal.exists() and "RUNNING" in states(study_trials(workdir, "digit-recognizer-sleepy-Sleepy")):
                if study_trials(workdir, "digit-recognizer-sleepy-Sleepy")[0].user_attrs.get("worker"):
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the trial never started")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    shown = run_cli("tune", "--show", "digit-recognizer-sleepy-Sleepy", "--json", cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert "tune: trial 0 of study digit-recognizer-sleepy-Sleepy failed: its worker" in shown.stderr
    assert json.loads(shown.stdout)["failed"] == 1 and json.loads(shown.stdout)["running"] == 0
    later = run_cli(*command[3:], str(SAMPLE_ZIP), "--trials", "2", "--json", cwd=workdir)
    assert later.returncode == 0, later.stderr
    summary = json.loads(later.stdout)
    assert (summary["complete"], summary["failed"], summary["running"]) == (2, 1, 0)
    assert states(study_trials(workdir, "digit-recognizer-sleepy-Sleepy")) == ["FAIL", "COMPLETE", "COMPLETE"]


def test_ctrl_c_inside_a_trial_keeps_every_finished_trial(workdir):
    (workdir / "sleepy.py").write_text(SLEEPY.replace("trial.number == 0", "trial.number == 1"))
    command = [sys.executable, "-m", "kaggle_digits", "tune", "--model", "sleepy.py:Sleepy", "--data-dir"]
    run = subprocess.Popen(
        [*command, str(SAMPLE_ZIP), "--trials", "3"],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        journal = workdir / "data" / "tuning" / "studies.journal"
        if journal.exists() and states(study_trials(workdir, "digit-recognizer-sleepy-Sleepy")) == [
            "COMPLETE",
            "RUNNING",
        ]:
            break
        time.sleep(0.3)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "1 complete, 0 pruned, 1 failed" in out
    assert "interrupted: every finished trial is kept in the study; run the command again to go on" in err
    assert states(study_trials(workdir, "digit-recognizer-sleepy-Sleepy")) == ["COMPLETE", "FAIL"]


RUINOUS = """
import keras


def tiny(width=8):
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(width, 3, activation="relu"),
        keras.layers.MaxPooling2D(4),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


def search_space(trial):
    # Four sound trials, then one whose learning rate ruins training: its accuracy after two epochs is far below
    # the others' median there, so the median pruner must stop it.
    ruin = trial.number >= 4
    return {
        "learning_rate": 1e4 if ruin else trial.suggest_float("learning_rate", 3e-3, 5e-3),
        "epochs": 6 if ruin else 3,
    }
"""


def test_a_value_that_ruins_training_is_pruned_after_the_epochs_it_ran(workdir, cli_run):
    (workdir / "ruinous.py").write_text(RUINOUS)
    fixed = ["-p", "batch_size=64", "-p", "rotation=0", "-p", "zoom=0", "-p", "shift=0"]
    result = cli_run(
        "tune", "--model", "ruinous.py:tiny", "--data-dir", str(SAMPLE_ZIP), *fixed, "--trials", "5", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert "4 complete, 1 pruned, 0 failed" in result.stdout
    trials = study_trials(workdir, "digit-recognizer-ruinous-tiny")
    assert states(trials) == ["COMPLETE"] * 4 + ["PRUNED"]
    assert sorted(trials[4].intermediate_values) == [0, 1], "pruned after its second of six epochs"
    assert "tune: trial 4 pruned after epoch 2" in result.stderr


def test_trials_run_as_kaggle_kernels_never_more_than_two_at_once(server, kaggle_env, workdir, kd):
    env = {**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.2"}
    assert kd("fetch", cwd=workdir, env=env).returncode == 0  # the study's identity is this copy's checksum
    result = kd(
        "tune", "--remote", "kaggle", "--model", "logreg", "-p", "max_iter=20", "--trials", "3", cwd=workdir, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "3 complete, 0 pruned, 0 failed" in result.stdout
    assert server.state.requests.count("POST SaveKernel") == 3
    slugs = {slug for (_, slug) in server.state.kernels.kernels}
    assert slugs == {"kaggle-digits-digit-recognizer-logreg-trial-1", "kaggle-digits-digit-recognizer-logreg-trial-2"}
    intervals = [(s.started, s.finished) for s in server.state.kernels.sessions.values()]
    assert len(intervals) == 3
    assert max(sum(1 for a, b in intervals if a <= moment < b) for moment, _ in intervals) <= 2, "never past the cap"
    trials = study_trials(workdir, "digit-recognizer-logreg")
    assert states(trials) == ["COMPLETE"] * 3
    assert all(trial.user_attrs["trained_on"] == "kaggle kernel (NvidiaTeslaT4)" for trial in trials)


def test_the_best_trial_goes_up_with_its_study_and_trial_in_the_ledger_and_an_honest_label(
    server, kaggle_env, workdir, kd
):
    assert kd("fetch", cwd=workdir, env=kaggle_env).returncode == 0
    data: list[str] = []
    tuned = kd(
        "tune", "--model", "logreg", "-p", "max_iter=20", *data, "--trials", "2", "--json", cwd=workdir, env=kaggle_env
    )
    assert tuned.returncode == 0, tuned.stderr
    summary = json.loads(tuned.stdout)
    words = summary["submit_command"].split()[1:]
    changed = [word.replace("max_iter=20", "max_iter=21") for word in words]
    refused = kd(*changed, *data, cwd=workdir, env=kaggle_env)
    assert refused.returncode == 2
    assert "error: the -p values and --seed differ from study 'digit-recognizer-logreg' trial" in refused.stderr
    result = kd(*words, *data, cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    (row,) = ledger_rows(workdir)
    assert row["tuning"] == f"digit-recognizer-logreg#{summary['best_trial']}"
    assert "a tuning score: study digit-recognizer-logreg chose these parameters" in row["estimate_from"]
    assert f"(tuned: study digit-recognizer-logreg#{summary['best_trial']})" in row["message"]
    sidecar = json.loads((workdir / "submissions" / row["file"]).with_suffix(".json").read_text())
    assert sidecar["tuning"] == row["tuning"] and "optimistic" in sidecar["estimate_from"]


BAD_SPACES = {
    "raises": "def search_space(trial):\n    return {'C': 1 / 0}\n",
    "lacks": "def search_space(trial):\n    return {'gamma': trial.suggest_float('gamma', 0.1, 1.0)}\n",
}
ESTIMATOR = (
    "from sklearn.linear_model import LogisticRegression\n\n\n"
    "def model(C=1.0):\n    return LogisticRegression(C=C)\n\n\n"
)


@pytest.mark.parametrize(
    ("arguments", "code", "line"),
    [
        (["--storage", "redis://localhost/0"], 2, "unknown storage scheme 'redis'"),
        (["--trials", "0"], 2, "--trials 0: must be at least 1"),
        (["--model", "bad_raises.py:model"], 2, "raised ZeroDivisionError in its search_space (bad_raises.py, line"),
        (["--model", "bad_lacks.py:model"], 2, "model 'bad_lacks.py:model' has no parameter 'gamma'"),
        (["-p", "nonsense=1"], 2, "model 'logreg' has no parameter 'nonsense'"),
        (["--model", "knn", "--study", "taken"], 2, "study 'taken' was created for model 'logreg', not 'knn'"),
        (["--seed", "7", "--study", "taken"], 2, "study 'taken' was created for seed 42, not 7"),
        # --remote's options are checked as submit checks them (one helper for both commands).
        (["--remote", "kaggle", "--remote-cpu", "--remote-accelerator", "NvidiaL4"], 2, "contradict each other"),
        (["--remote", "kaggle", "--remote-timeout", "0"], 2, "--remote-timeout 0: must be positive"),
        (["--remote", "kaggle", "--jobs", "2"], 2, "it takes no --jobs"),
    ],
)
def test_bad_input_is_one_line_and_the_right_exit_code(workdir, cli_run, arguments, code, line):
    for name, body in BAD_SPACES.items():
        (workdir / f"bad_{name}.py").write_text(ESTIMATOR + body)
    if "taken" in arguments:
        assert cli_run("tune", *LOGREG, "--trials", "1", "--study", "taken", cwd=workdir).returncode == 0
    model = [] if "--model" in arguments else ["--model", "logreg"]
    result = cli_run("tune", *model, "--data-dir", str(SAMPLE_ZIP), *arguments, cwd=workdir)
    assert result.returncode == code, result.stderr
    errors = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert len(errors) == 1 and line in errors[0], result.stderr
    if "bad_raises.py:model" in arguments:
        assert "Traceback of your model's code" in result.stderr and "1 / 0" in result.stderr


def test_an_unreachable_database_is_one_line_within_seconds_and_hides_its_password(workdir, cli_run):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    result = cli_run(
        "tune", *LOGREG, "--storage", f"postgresql://tuner:hunter2secret@127.0.0.1:{port}/studies", cwd=workdir
    )
    assert time.monotonic() - start < 20
    assert result.returncode == 8, result.stderr
    assert "hunter2secret" not in result.stdout + result.stderr
    (line,) = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert f"--storage postgresql://tuner:***@127.0.0.1:{port}/studies: cannot use the database" in line
