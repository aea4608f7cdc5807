"""The benchmark's statistics, and its out-of-fold run with the peer model and the minutes curve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_ZIP, write_competition

from kaggle_digits import bench


def test_paired_difference_counts_only_the_rows_where_the_two_disagree():
    labels = np.zeros(1000, dtype=int)
    mine, theirs = np.zeros(1000, dtype=int), np.zeros(1000, dtype=int)
    mine[:10] = 1  # I am wrong on rows 0-9
    theirs[5:35] = 1  # they are wrong on rows 5-34
    difference, half = bench.paired_difference(mine.tolist(), theirs.tolist(), labels)
    # Discordant rows: I alone right on 25 (10-34), they alone right on 5 (0-4).
    assert difference == pytest.approx((25 - 5) / 1000)
    assert half == pytest.approx(1.96 * np.sqrt(30 - 20**2 / 1000) / 1000)
    assert bench.paired_difference(mine.tolist(), mine.tolist(), labels) == (0.0, 0.0)


def test_interval_is_wilson_and_shrinks_with_rows():
    low, high = bench.interval(995, 1000)
    assert low < 0.995 < high and high < 1
    narrow = bench.interval(41_790, 42_000)
    assert narrow[1] - narrow[0] < 0.0015 < high - low, "42,000 rows can tell 0.994 from 0.996; 1,000 cannot"


def test_compare_pairs_two_earlier_runs_row_by_row_members_included(workdir, sample, cli_run):
    """--compare trains nothing: OTHER's models and committee members against BASE's, on the rows both predicted."""
    archive = write_competition(workdir / "competition", sample, n_train=1000, n_test=10, as_zip=True)
    labels = sample.train_labels[:1000].astype(int)
    wrong = (labels + 1) % 10

    def run_file(name: str, rows: dict, **fields) -> str:
        results = [{"model": model, "oof_predictions": p.tolist(), **extra} for model, (p, extra) in rows.items()]
        (workdir / name).write_text(
            json.dumps({"task": "digit-recognizer", "seed": 42, "folds": 5, **fields, "results": results})
        )
        return name

    base_cnn = np.where(np.arange(1000) < 10, wrong, labels)  # wrong on rows 0-9
    other_cnn = np.where((np.arange(1000) >= 5) & (np.arange(1000) < 35), wrong, labels)  # wrong on 5-34
    member = np.where(np.arange(1000) < 500, labels, -1)  # a committee member scored on rows 0-499 only
    softmax = np.where(np.arange(1000) < 100, wrong, labels)
    base = run_file("base.json", {"softmax": (softmax, {}), "cnn": (base_cnn, {})})
    other = run_file(
        "other.json",
        {
            "softmax": (softmax, {}),
            "cnn": (other_cnn, {}),
            "ensemble": (member, {"member_predictions": [member.tolist()]}),
        },
        folds=10,
    )
    result = cli_run("bench", "--compare", base, other, "--data", str(archive), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "`other.json` (10 folds, seed 42, undated) against `base.json` (5 folds, seed 42, undated)" in result.stdout
    # cnn against cnn: 5 rows only OTHER gets wrong... (25 - 5) / 1000 lost, as paired_difference counts it.
    half = 1.96 * np.sqrt(30 - 20**2 / 1000) / 1000
    assert f"| `cnn` | `cnn` | 1,000 | 0.9700 | 0.9900 | -0.0200 ± {half:.4f} |" in result.stdout
    assert "| `softmax` | `softmax` | 1,000 | 0.9000 | 0.9000 | +0.0000 ± 0.0000 |" in result.stdout
    # The ensemble has no counterpart in BASE: it meets BASE's cnn, on the 500 rows both predicted (cnn wrong on 10).
    assert "| `ensemble` | `cnn` | 500 | 1.0000 | 0.9800 | +0.0200 ± " in result.stdout
    assert "| `ensemble` member 1 | `cnn` | 500 | 1.0000 | 0.9800 | +0.0200 ± " in result.stdout
    assert not (workdir / "data" / "bench").exists(), "a comparison trains and writes nothing"

    # Another data file (exit 2, usage), or a file that is missing or not a run (exit 3, bad input): one line each.
    small = write_competition(workdir / "small", sample, n_train=800, n_test=10, as_zip=True)
    (workdir / "rows.json").write_text(json.dumps({"results": [{"model": "cnn", "oof_accuracy": 0.99}]}))
    for args, message, code in (
        (
            [base, other, "--data", str(small)],
            "error: --compare base.json: its predictions cover 1,000 rows, the data 800.",
            2,
        ),
        (
            [base, "missing.json", "--data", str(archive)],
            "error: --compare missing.json: No such file or directory.",
            3,
        ),
        ([base, str(archive), "--data", str(archive)], f"error: --compare {archive}: not a bench.json.", 3),
        ([base, "rows.json", "--data", str(archive)], "error: --compare rows.json: not a bench.json.", 3),
    ):
        failed = cli_run("bench", "--compare", *args, cwd=workdir)
        assert failed.returncode == code and failed.stderr.startswith(message), failed.stderr
        assert failed.stderr.count("\n") == 1


@pytest.mark.slow
def test_bench_out_of_fold_with_peer_on_the_same_budget_and_a_minutes_curve(workdir, sample, cli_run):
    archive = write_competition(workdir / "competition", sample, n_train=1500, n_test=100, as_zip=True)
    out = workdir / "bench"
    result = cli_run(
        "bench",
        "--quick",
        "--models",
        "cnn,deotte",
        "--curve",
        "1",
        "--time-submit",
        "--data",
        str(archive),
        "--out",
        str(out),
        "-p",
        "cnn:batch_size=32",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads((out / "bench.json").read_text())
    cnn, peer = report["results"]
    assert cnn["params"]["epochs"] == peer["params"]["epochs"] == 2, (
        "the peer trains on the default model's epoch budget"
    )
    assert [point["epochs"] for point in cnn["curve"]] == [1, 2] and [point["epochs"] for point in peer["curve"]] == [
        1,
        2,
    ]
    assert all(point["rows"] == 750 and point["minutes"] > 0 for point in cnn["curve"] + peer["curve"])
    assert cnn["curve"][1]["accuracy"] == pytest.approx(cnn["fold_accuracies"][0]), (
        "the full budget's point is fold 1 of the run"
    )
    assert (out / "accuracy_vs_minutes.png").read_bytes().startswith(b"\x89PNG")
    first, second = report["submit"]["first"], report["submit"]["second"]
    assert first["train_rows"] == 1350 and second["train_rows"] == 1500, (
        "validated model first, then one fit on every row"
    )
    assert first["seconds"] > 0 and second["seconds"] > 0 and "--no-upload" in second["summary"]
    assert json.loads((out / "submit-report" / "metrics.json").read_text())["params"]["batch_size"] == 32
    table = (out / "bench.md").read_text()
    assert (
        "`kaggle-digits submit --no-upload --model cnn`, data at hand, wall time: " in table
        and "on all 1,500 rows" in table
    )
    assert "| `deotte` | 2 | " in table and " ± " in table and "2-fold out-of-fold" in table


@pytest.mark.slow
def test_bench_scores_a_committee_on_rows_none_of_its_members_saw(workdir, sample, cli_run):
    """--run-folds 1: the ensemble trains on the other folds only and is scored, beside its members alone, on fold 1."""
    archive = write_competition(workdir / "competition", sample, n_train=1200, n_test=100, as_zip=True)
    out = workdir / "bench"
    result = cli_run(
        "bench",
        "--quick",
        "--models",
        "softmax,ensemble",
        "--run-folds",
        "1",
        "--data",
        str(archive),
        "--out",
        str(out),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads((out / "bench.json").read_text())
    softmax, ensemble = report["results"]
    labels = sample.train_labels[:1200]
    assert softmax["folds"] == ensemble["folds"] == 1 and softmax["rows"] == ensemble["rows"] == 600
    committee = np.asarray(ensemble["oof_predictions"])
    held_out = committee >= 0
    assert held_out.sum() == 600 and (np.asarray(softmax["oof_predictions"]) >= 0).sum() == 600
    assert ensemble["oof_accuracy"] == pytest.approx(np.mean(committee[held_out] == labels[held_out]))
    members = [np.asarray(member) for member in ensemble["member_predictions"]]
    assert len(members) == 2 and all(((member >= 0) == held_out).all() for member in members), (
        "members predict the same rows"
    )
    table = (out / "bench.md").read_text()
    assert "the first 1 of 2 folds" in table
    assert "`ensemble` on 600 rows none of its members saw: committee " in table and "its 2 members alone " in table


@pytest.mark.slow
def test_bench_refuses_a_bad_curve_and_one_fold(workdir, cli_run):
    for args, message in (
        (["--run-folds", "3"], "error: --run-folds 3: expected 1 to 2 (the number of folds)"),
        (["--curve", "three"], "error: --curve three: expected epoch budgets"),
        (["--folds", "1"], "error: --folds 1: out-of-fold accuracy needs at least 2 folds"),
    ):
        result = cli_run("bench", "--quick", *args, cwd=workdir)
        assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
        assert not (workdir / "data" / "bench").exists()
    # A user's checkout without the full data: one line that says how to get it, not a benchmark of the sample.
    result = cli_run("bench", cwd=workdir)
    assert result.returncode == 2 and result.stderr.startswith("error: no full data to benchmark on"), result.stderr
    assert "'make data'" in result.stderr and result.stderr.count("\n") == 1


def test_a_benchmark_child_that_dies_without_a_result_is_a_failed_row_not_a_hang():
    import multiprocessing
    import os

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=os._exit, args=(9,))  # as the kernel's OOM killer leaves it: no word sent
    child.start()
    row = bench.collect(child, results, "cnn", poll=0.1)
    assert row == {"model": "cnn", "error": "its process died without a result (exit code 9)"}


def test_epoch_times_alternate_between_checkouts_and_report_wall_and_cpu_seconds(workdir, cli_run, tmp_path):
    """`bench --epoch-times`: the before/after check of a change's speed, each run a process of its own, each
    importing the package of its own checkout (here: this one, and a copy of it elsewhere)."""
    root = Path(bench.__file__).resolve().parents[1]
    other = tmp_path / "other"
    shutil.copytree(root / "kaggle_digits", other / "kaggle_digits", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "times"
    result = cli_run(
        "bench",
        "--epoch-times",
        "--models",
        "softmax",
        "--epochs",
        "2",
        "--trees",
        f"{root},{other}",
        "--rounds",
        "1",
        "--data",
        str(SAMPLE_ZIP),
        "--out",
        str(out),
        cwd=other,  # run from inside the copy: the first tree's run must still import the first tree's package
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "epoch-times.json").read_text())
    assert report["model"] == "softmax" and report["epochs"] == 2 and report["rows"] == 4500  # 90% of 5,000
    assert [run["tree"] for run in report["runs"]] == [str(root), str(other)]
    for run in report["runs"]:
        assert run["backend"] == "tensorflow" and len(run["epochs"]) == 2
        assert all(wall > 0 and cpu > 0 for wall, cpu in run["epochs"])
    assert "mean CPU s (epochs 2+)" in (out / "epoch-times.md").read_text() and "| 1 |" in result.stdout


def test_epoch_times_name_the_tree_whose_package_fails(workdir, cli_run, tmp_path):
    """A checkout whose package cannot be imported: the run stops on one line naming it, and writes no report."""
    fake = tmp_path / "fake"
    (fake / "kaggle_digits").mkdir(parents=True)
    (fake / "kaggle_digits" / "__init__.py").write_text("raise ImportError('not a checkout')\n")
    result = cli_run(
        "bench",
        "--epoch-times",
        "--models",
        "softmax",
        "--epochs",
        "1",
        "--trees",
        str(fake),
        "--rounds",
        "1",
        "--data",
        str(SAMPLE_ZIP),
        "--out",
        str(tmp_path / "times"),
        cwd=workdir,
    )
    assert result.returncode != 0 and f"epoch-times: softmax failed in {fake}" in result.stderr
    assert not (tmp_path / "times" / "epoch-times.json").exists()


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (["--models", "logreg"], "error: --epoch-times times one Keras model's epochs: --models logreg is not one"),
        (["--trees", "nowhere"], "error: --trees nowhere: no kaggle_digits package there"),
        (["--rounds", "0"], "error: --rounds 0: must be at least 1"),
        (["--epochs", "0"], "error: parameter 'epochs=0' of model 'cnn' must be at least 1"),
    ],
)
def test_epoch_times_refuse_bad_input_in_one_line(workdir, cli_run, arguments, line):
    if "--rounds" in arguments:  # without --epoch-times, --rounds and --trees are refused too
        alone = cli_run("bench", "--data", str(SAMPLE_ZIP), *arguments, cwd=workdir)
        assert alone.returncode == 2 and alone.stderr.startswith("error: --trees and --rounds go with --epoch-times")
    result = cli_run("bench", "--epoch-times", "--data", str(SAMPLE_ZIP), *arguments, cwd=workdir)
    assert result.returncode == 2 and result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.stderr
