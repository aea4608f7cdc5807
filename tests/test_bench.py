"""The benchmark's statistics, and its out-of-fold run with the peer model and the minutes curve."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_competition

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
