"""make demo: the whole submit flow against the local server, as the README shows it."""

from __future__ import annotations

import subprocess
import sys

from conftest import read_submission


def test_demo_runs_the_submit_flow_offline_and_ignores_real_credentials(tmp_path):
    demo_dir = tmp_path / "demo"
    env = {"KAGGLE_DIGITS_DEMO_DIR": str(demo_dir), "KAGGLE_API_TOKEN": "KGAT_users_real_token_must_not_be_sent",
           "KAGGLE_API_ENVIRONMENT": "", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "kaggle_digits.demo", "-p", "epochs=3", "-p", "batch_size=64"],
                            env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
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


def test_demo_with_remote_kaggle_trains_in_a_local_kernel(tmp_path):
    demo_dir = tmp_path / "demo"
    env = {"KAGGLE_DIGITS_DEMO_DIR": str(demo_dir), "PATH": "/usr/bin:/bin", "KAGGLE_DIGITS_KERNEL_POLL": "0.3"}
    result = subprocess.run([sys.executable, "-m", "kaggle_digits.demo", "--remote", "kaggle", "--model", "logreg", "-p", "max_iter=60"],
                            env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "remote: COMPLETE after" in result.stderr and "public score: 0." in result.stdout
    ledger = (demo_dir / "submissions" / "ledger.csv").read_text()
    assert ",COMPLETE," in ledger and "kaggle kernel demo-user/kaggle-digits-digit-recognizer-logreg v1" in ledger
