"""The toolkit's own files, damaged or lost: one clear line each (exit 3), nothing lost; the ledger comes back."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import TEST_TOKEN

TOKEN = TEST_TOKEN
RUN = ["run", "-q", "--model", "logreg", "-p", "max_iter=60"]


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:") or "kaggle-digits run" in line]
    assert len(lines) == 1, result.stderr
    assert "internal error" not in lines[0] and "This is a bug" not in lines[0] and "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def trained(workdir, small_competition, cli_run):
    """softmax (Keras, one epoch) and logreg (joblib) trained on a small competition."""
    for model in (["--model", "softmax", "-p", "epochs=1"], ["--model", "logreg", "-p", "max_iter=30"]):
        result = cli_run("train", *model, "--data-dir", str(small_competition), "-q", cwd=workdir)
        assert result.returncode == 0, result.stderr
    return small_competition


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, file, damage",
    [
        ("softmax", "model.keras", "truncate"),
        ("softmax", "config.json", "garbage"),
        ("logreg", "model.joblib", "truncate"),
        ("logreg", "config.json", "wrong-shape"),
    ],
)
def test_a_damaged_model_file_is_one_line_with_the_fix(workdir, trained, model, file, damage, cli_run):
    path = workdir / "data" / "models" / model / file
    content = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(content[: len(content) // 3])
    elif damage == "garbage":
        path.write_text("{broken")
    else:
        path.write_text(json.dumps(["not", "a", "config"]))
    result = cli_run("predict", "--model", model, "--data-dir", str(trained), cwd=workdir)
    assert result.returncode == 3
    line = one_error_line(result)
    assert str(Path("data") / "models" / model) in line and f"make train MODEL={model}" in line
    assert not list((workdir / "submissions").glob("*.csv")) if (workdir / "submissions").exists() else True


@pytest.mark.slow
def test_damaged_metrics_are_named_before_training(workdir, small_competition, cli_run):
    validate = cli_run(
        "validate", "--model", "logreg", "-p", "max_iter=30", "--data-dir", str(small_competition), cwd=workdir
    )
    assert validate.returncode == 0, validate.stderr
    metrics = workdir / "data" / "reports" / "logreg" / "metrics.json"
    metrics.write_text('{"accuracy": 0.9,')
    result = cli_run("train", "--model", "logreg", "--data-dir", str(small_competition), cwd=workdir)
    assert result.returncode == 3
    line = one_error_line(result)
    assert str(Path("data") / "reports" / "logreg" / "metrics.json") in line and "make validate MODEL=logreg" in line
    assert not (workdir / "data" / "models" / "logreg").exists()


@pytest.mark.slow
def test_a_damaged_sidecar_is_named(workdir, trained, cli_run):
    predicted = cli_run("predict", "--model", "logreg", "--data-dir", str(trained), cwd=workdir)
    assert predicted.returncode == 0, predicted.stderr
    (sidecar,) = (workdir / "submissions").glob("*.json")
    sidecar.write_text("{not json")
    result = cli_run(
        "submit", "--file", str(sidecar.with_suffix(".csv")), "--no-upload", "--data-dir", str(trained), cwd=workdir
    )
    assert result.returncode == 3
    assert sidecar.name in one_error_line(result) and "delete it" in result.stderr


# --- the ledger -------------------------------------------------------------------------------------------


def ledger(workdir: Path) -> Path:
    return workdir / "submissions" / "ledger.csv"


def ledger_rows(workdir: Path) -> list[dict]:
    with open(ledger(workdir)) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.parametrize("garbage", [b"\x00\x01garbage\xff\xfe", b"this is not,a ledger\n1,2\n", b""])
def test_a_damaged_ledger_stops_every_command_that_reads_it_and_is_kept(server, kaggle_env, workdir, garbage, cli_run):
    assert cli_run(*RUN, cwd=workdir, env=kaggle_env).returncode == 0
    ledger(workdir).write_bytes(garbage)
    for command in (["status"], RUN, ["submit", "--model", "logreg", "-p", "max_iter=60"]):
        result = cli_run(*command, cwd=workdir, env=kaggle_env)
        assert result.returncode == 3, (command, result.stdout, result.stderr)
        line = one_error_line(result)
        assert "submissions/ledger.csv" in line and "ledger --rebuild" in line
        assert ledger(workdir).read_bytes() == garbage, "nothing overwritten"
    assert len(server.state.submissions) == 1


@pytest.mark.slow
def test_ledger_rebuild_keeps_the_damaged_file_and_restores_every_page(server, kaggle_env, workdir, cli_run):
    server.state.page_size = 1
    assert cli_run(*RUN, cwd=workdir, env=kaggle_env).returncode == 0
    assert cli_run(*RUN, "-p", "C=0.00001", cwd=workdir, env=kaggle_env).returncode == 0
    before = ledger_rows(workdir)
    ledger(workdir).write_text("garbage\n")
    result = cli_run("ledger", "--rebuild", cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    kept = list((workdir / "submissions").glob("ledger.csv.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == "garbage\n"
    after = ledger_rows(workdir)
    assert [row["kaggle_ref"] for row in after] == [row["kaggle_ref"] for row in before]
    for old, new in zip(before, after, strict=True):
        for column in ("run_id", "task", "model", "status", "public_score", "config"):
            assert new[column] == old[column], column
        assert old["checksum"].startswith(new["checksum"])
    assert "restored 2 submissions from Kaggle's list" in result.stdout


@pytest.mark.slow
def test_a_lost_ledger_on_a_fresh_machine_skips_what_kaggle_already_has(server, kaggle_env, workdir, tmp_path, cli_run):
    """A new machine (or an expired Actions cache): same data and configuration as a submission on Kaggle."""
    assert cli_run(*RUN, cwd=workdir, env=kaggle_env).returncode == 0
    fresh = tmp_path / "fresh-machine"
    fresh.mkdir()
    again = cli_run(*RUN, cwd=fresh, env=kaggle_env)
    assert again.returncode == 10, again.stdout + again.stderr
    assert "nothing changed since" in again.stdout
    assert len(server.state.submissions) == 1
    (row,) = ledger_rows(fresh)
    assert row["kaggle_ref"] == str(server.state.submissions[0].ref) and row["status"] == "COMPLETE"
    assert not (fresh / "data" / "models").exists(), "nothing trained"
    # The same on a machine where only the ledger was lost: `status` restores it too.
    shutil.rmtree(fresh)
    ledger(workdir).unlink()
    status = cli_run("status", cwd=workdir, env=kaggle_env)
    assert status.returncode == 0 and "restored 1 submission from Kaggle's list" in status.stderr
    assert ledger_rows(workdir)[0]["kaggle_ref"] == str(server.state.submissions[0].ref)


@pytest.mark.slow
def test_the_description_carries_what_the_guards_need(server, kaggle_env, workdir, cli_run):
    assert cli_run(*RUN, cwd=workdir, env=kaggle_env).returncode == 0
    (row,) = ledger_rows(workdir)
    description = server.state.submissions[0].description
    assert f"file {row['checksum'][:16]}" in description and f"config {row['config']}" in description


# --- small records ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_damaged_download_marker_and_lock_record_are_recovered_from(server, kaggle_env, workdir, cli_run):
    assert cli_run("fetch", cwd=workdir, env=kaggle_env).returncode == 0
    marker = workdir / "data" / "raw" / "digit-recognizer.zip.json"
    marker.write_text("{half")
    (workdir / "data" / "run.lock.json").write_text("\x00garbage")
    dry = cli_run(*RUN, "--dry-run", cwd=workdir, env=kaggle_env)
    assert dry.returncode == 0, dry.stderr
    fetched = cli_run("fetch", cwd=workdir, env=kaggle_env)
    assert fetched.returncode == 0 and "downloaded and checked" in fetched.stdout  # the marker is rewritten
    assert json.loads(marker.read_text())["etag"]


@pytest.mark.slow
def test_submit_on_a_machine_without_the_ledger_refuses_a_file_kaggle_has(
    server, kaggle_env, workdir, tmp_path, cli_run
):
    answer = tmp_path / "answer.csv"
    answer.write_text("ImageId,Label\n" + "".join(f"{i},1\n" for i in range(1, 301)))
    assert cli_run("submit", "--file", str(answer), cwd=workdir, env=kaggle_env).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = cli_run("submit", "--file", str(answer), cwd=elsewhere, env=kaggle_env)
    assert again.returncode == 10, again.stderr
    assert "answer.csv is identical to answer.csv" in again.stderr
    assert len(server.state.submissions) == 1


@pytest.mark.slow
def test_deleted_sidecar_and_submission_file_do_not_turn_the_guards_off(server, kaggle_env, workdir, cli_run):
    """What the README calls safe to delete is safe: the ledger's configuration hash keeps 'nothing changed'."""
    assert cli_run(*RUN, cwd=workdir, env=kaggle_env).returncode == 0
    for path in (workdir / "submissions").glob("*-logreg.*"):
        path.unlink()
    again = cli_run(*RUN, cwd=workdir, env=kaggle_env)
    assert again.returncode == 10 and "nothing changed since" in again.stdout
    assert len(server.state.submissions) == 1


@pytest.mark.slow
def test_keep_alive_after_a_ledger_rebuild_uploads_the_file_without_training(server, kaggle_env, workdir, cli_run):
    assert cli_run(*RUN, cwd=workdir, env=kaggle_env).returncode == 0
    ledger(workdir).unlink()
    shutil.rmtree(workdir / "data" / "models")
    again = cli_run(*RUN, "--keep-alive-days", "0", cwd=workdir, env=kaggle_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "keep-alive: uploaded" in again.stdout
    first, second = server.state.submissions
    assert second.content == first.content
    assert not (workdir / "data" / "models").exists(), "nothing trained"


def test_the_fix_names_the_model_and_task_of_the_folder():
    from kaggle_digits.training import _make_command

    assert _make_command("train", Path("data/models/random-forest")) == "make train MODEL=random-forest"
    assert _make_command("train", Path("data/models/cnn-kannada-mnist")) == "make train MODEL=cnn TASK=kannada-mnist"
    assert (
        _make_command("validate", Path("data/reports/fast-fashion-mnist-evaluate"))
        == "make validate MODEL=fast TASK=fashion-mnist"
    )


@pytest.mark.slow
def test_a_model_saved_by_an_older_recipe_says_so(workdir, trained, cli_run):
    """A cnn trained before its recipe changed (blocks, dense_units) is not called damaged: retrain it."""
    path = workdir / "data" / "models" / "softmax" / "config.json"
    meta = json.loads(path.read_text())
    meta["params"]["blocks"] = 2
    path.write_text(json.dumps(meta))
    result = cli_run("predict", "--model", "softmax", "--data-dir", str(trained), cwd=workdir)
    assert result.returncode == 3
    line = one_error_line(result)
    assert "saved by an older version of the toolkit (its parameters blocks no longer exist)" in line
    assert "damaged" not in line and "make train MODEL=softmax" in line


def test_a_ledger_from_before_a_later_column_is_read_and_rewritten_whole(tmp_path):
    """A checkout updated between two runs keeps its ledger: the later columns start empty, nothing is lost."""
    from kaggle_digits.ledger import LATER_COLUMNS, LEDGER_COLUMNS, Ledger

    older = [column for column in LEDGER_COLUMNS if column not in LATER_COLUMNS]
    path = tmp_path / "ledger.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=older)
        writer.writeheader()
        writer.writerow({**dict.fromkeys(older, ""), "run_id": "old", "status": "COMPLETE", "public_score": "0.99"})
    ledger = Ledger(path)
    (row,) = ledger.rows()
    assert row["run_id"] == "old" and row["public_score"] == "0.99"
    ledger.add(run_id="new", status="UPLOADING", estimate_from="holdout 10% of this very model")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == LEDGER_COLUMNS
        old, new = list(reader)
    assert old["public_score"] == "0.99" and old["estimate_from"] == ""
    assert new["estimate_from"] == "holdout 10% of this very model"
