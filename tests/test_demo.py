"""make demo: the whole submit flow against the local server, as the README shows it."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import REPO, read_submission

# Every test here runs a whole flow in subprocesses (or a server): not in `make test-fast`.
pytestmark = pytest.mark.slow


def demo(command: list[str], env: dict, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )


def test_demo_runs_the_submit_flow_offline_and_ignores_real_credentials(tmp_path):
    demo_dir = tmp_path / "demo"
    env = {
        "KAGGLE_DIGITS_DEMO_DIR": str(demo_dir),
        "KAGGLE_API_TOKEN": "KGAT_users_real_token_must_not_be_sent",
        "KAGGLE_API_ENVIRONMENT": "",
        "PATH": "/usr/bin:/bin",
    }
    result = demo([sys.executable, "-m", "kaggle_digits", "demo", "-p", "epochs=3", "-p", "batch_size=64"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "demo: local Kaggle server on http://127.0.0.1:7777" in out
    assert "public score: 0." in out
    written = sorted((demo_dir / "submissions").glob("*-cnn.csv"))
    assert len(written) == 1 and f"submission: submissions/{written[0].name}" in out
    rows = read_submission(written[0])
    assert rows.shape == (1000, 2) and (rows[:, 0] == range(1, 1001)).all()
    ledger = (demo_dir / "submissions" / "ledger.csv").read_text()
    assert ",COMPLETE," in ledger
    assert "KGAT_users_real_token_must_not_be_sent" not in out + result.stderr + ledger
    # Then where that score stands: the local board of 1,400 synthetic teams and the demo's own.
    assert (
        "team 'demo-user': best public score 0." in out
        and "of 1,401 (top" in out
        and "the honest top is 0.99757" in out
    )
    assert (demo_dir / "submissions" / "leaderboard.png").stat().st_size > 0


def test_demo_with_remote_kaggle_trains_in_a_local_kernel(tmp_path):
    demo_dir = tmp_path / "demo"
    env = {"KAGGLE_DIGITS_DEMO_DIR": str(demo_dir), "PATH": "/usr/bin:/bin", "KAGGLE_DIGITS_KERNEL_POLL": "0.3"}
    result = demo(
        [sys.executable, "-m", "kaggle_digits", "demo", "--remote", "kaggle", "--model", "logreg", "-p", "max_iter=60"],
        env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "remote: COMPLETE after" in result.stderr and "public score: 0." in result.stdout
    ledger = (demo_dir / "submissions" / "ledger.csv").read_text()
    assert ",COMPLETE," in ledger and "kaggle kernel demo-user/kaggle-digits-digit-recognizer-logreg v1" in ledger


def test_a_plain_install_runs_the_demo_in_any_folder(tmp_path):
    """`pip install .` (not editable): the sample is package data, so `kaggle-digits demo` works in an empty folder
    far from the checkout. The wheel goes into a folder of its own (its dependencies are this environment's)."""
    wheels, site, anywhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "anywhere"
    anywhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("kaggle_digits-*.whl")
    assert "kaggle_digits/sample/digit-recognizer.zip" in zipfile.ZipFile(wheel).namelist()
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300
    )
    assert installed.returncode == 0, installed.stderr
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    where = subprocess.run(
        [sys.executable, "-c", "import kaggle_digits; print(kaggle_digits.__file__)"],
        cwd=anywhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site)), "the installed copy, not the checkout, is what runs"
    result = demo(
        [str(site / "bin" / "kaggle-digits"), "demo", "--model", "logreg", "-p", "max_iter=60"], env, cwd=anywhere
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo: done in " in result.stdout and "public score: 0." in result.stdout
    assert len(list((anywhere / "data" / "demo" / "submissions").glob("*-logreg.csv"))) == 1
