"""validate -> train -> predict through the CLI, as a user runs it, checked file by file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SAMPLE_ZIP, read_submission, run_cli

# Every test here runs a whole flow in subprocesses (or a server): not in `make test-fast`.
pytestmark = pytest.mark.slow


# patience=2: early stopping on, so validation picks the epochs that `train` then uses. The flow is what is tested
# here (the recipe itself is in test_models): a narrow cnn (8 filters) learns the sample too, in a fifth of the time.
@pytest.mark.parametrize(
    "model, params",
    [
        ("cnn", ["-p", "epochs=4", "-p", "batch_size=64", "-p", "patience=2", "-p", "filters=8"]),
        ("softmax", ["-p", "epochs=20", "-p", "patience=3"]),
    ],
)
def test_validate_train_predict_end_to_end(model, params, workdir, sample, cli_run):
    common = ["--model", model, "--data-dir", str(SAMPLE_ZIP), *params]

    validate = cli_run("validate", *common, cwd=workdir)
    assert validate.returncode == 0, validate.stderr
    assert f"{model}: holdout 10% accuracy" in validate.stdout
    assert "confusion matrix" in validate.stdout
    report = workdir / "data" / "reports" / model
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["validation_rows"] == 500 and metrics["train_rows"] == 4500
    assert metrics["accuracy"] > 0.75, metrics["accuracy"]
    assert len(metrics["per_class_accuracy"]) == 10
    assert np.array(metrics["confusion_matrix"]).sum() == 500
    assert 1 <= metrics["best_epoch"] <= metrics["params"]["epochs"]
    for plot in ("learning_curves.png", "confusion_matrix.png", "misclassified.png"):
        assert (report / plot).read_bytes().startswith(b"\x89PNG"), plot

    train = cli_run("train", *common, cwd=workdir)
    assert train.returncode == 0, train.stderr
    assert "on all 5000 rows" in train.stderr
    saved = json.loads((workdir / "data" / "models" / model / "config.json").read_text())
    assert saved["params"]["epochs"] == metrics["best_epoch"], "the final fit uses the epochs validation chose"
    assert saved["holdout_accuracy"] == metrics["accuracy"]

    predict = cli_run("predict", *common, cwd=workdir)
    assert predict.returncode == 0, predict.stderr
    written = [path for path in (workdir / "submissions").glob("*.csv")]
    assert len(written) == 1 and written[0].name.endswith(f"-{model}.csv")
    assert f"submission: submissions/{written[0].name}" in predict.stdout
    rows = read_submission(written[0])
    assert rows.shape == (1000, 2)
    assert (rows[:, 0] == np.arange(1, 1001)).all()
    assert set(rows[:, 1]) <= set(range(10)) and len(set(rows[:, 1])) == 10
    sidecar = json.loads(written[0].with_suffix(".json").read_text())
    assert sidecar["model"] == model and sidecar["seed"] == 42
    assert sidecar["holdout_accuracy"] == metrics["accuracy"]
    assert sidecar["data_checksum"] == saved["data_checksum"]
    assert {"tensorflow", "numpy", "scikit-learn"} <= set(sidecar["versions"])
    assert sidecar["durations"]["predict_seconds"] >= 0


def test_predict_before_train_says_what_to_do(workdir, cli_run):
    result = cli_run("predict", "--model", "knn", "--data-dir", str(SAMPLE_ZIP), cwd=workdir)
    assert result.returncode == 2
    assert "no trained model" in result.stderr and "make train MODEL=knn" in result.stderr
    assert not list((workdir / "submissions").glob("*.csv")) if (workdir / "submissions").exists() else True


def test_bad_parameter_is_a_usage_error(workdir, cli_run):
    result = cli_run("validate", "--model", "cnn", "-p", "epochs=lots", "--data-dir", str(SAMPLE_ZIP), cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: parameter 'epochs=lots' of model 'cnn': expected int (default 13). Fix: pass e.g. epochs=13"
    ]


def test_kfold_and_quiet(workdir, cli_run):
    result = cli_run("validate", "--model", "logreg", "--folds", "3", "-q", "--data-dir", str(SAMPLE_ZIP), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "logreg: 3-fold accuracy 0." in result.stdout and "±" in result.stdout
    assert "confusion matrix" not in result.stdout


def test_help_is_instant_and_lists_commands(workdir):
    """Instant means no heavy import behind it (checked below); its speed is the benchmark's business, not a test's."""
    import subprocess
    import sys

    result = run_cli("--help", cwd=workdir)
    assert result.returncode == 0
    for command in ("validate", "train", "predict"):
        assert command in result.stdout
    # No heavy library behind --help: each is imported at its one door (lazy.py, kaggle_api/sdk.py) on first use.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from kaggle_digits import cli; cli.build_parser(); "
            "print(sorted(m for m in "
            "('tensorflow','keras','kaggle','kagglesdk','pandas','sklearn','matplotlib','scipy') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "[]"


def test_too_many_folds_is_a_usage_error(workdir, cli_run):
    result = cli_run("validate", "--model", "logreg", "--folds", "9999", "--data-dir", str(SAMPLE_ZIP), cwd=workdir)
    assert result.returncode == 2
    assert "error: --folds 9999: the rarest class has only" in result.stderr and "Traceback" not in result.stderr


def test_bench_refuses_an_unknown_model_before_running(workdir, cli_run):
    result = cli_run("bench", "--models", "softmax,resnet", "--quick", cwd=workdir)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: unknown model 'resnet'. Fix: choose one of softmax, logreg, random-forest, knn, mlp, fast, cnn, "
        "ensemble, deotte, or name your own: path/to/file.py:NAME or package.module:NAME (see docs/your-model.md)"
    )
    assert not (workdir / "data" / "bench").exists()


@pytest.mark.parametrize("param", ["epochs=20", "resnet:epochs=20", "cnn:epochs"])
def test_bench_refuses_a_param_it_would_ignore(workdir, param, cli_run):
    """`make bench ARGS="-p epochs=20"` used to run with the default epochs, silently."""
    result = cli_run("bench", "--quick", "-p", param, cwd=workdir)
    assert result.returncode == 2
    assert (
        result.stderr.strip().startswith(f"error: -p {param}: bench takes MODEL:KEY=VALUE")
        and "-p cnn:epochs=20" in result.stderr
    )
    assert not (workdir / "data" / "bench").exists()


def _config(workdir, model):
    return json.loads((workdir / "data" / "models" / model / "config.json").read_text())


def test_submit_trains_once(workdir, cli_run):
    """One training per submission file: the validated model submits, or a matching validation on file stands."""
    command = ["submit", "--no-upload", "--model", "softmax", "-p", "epochs=5", "--data-dir", str(SAMPLE_ZIP)]
    first = cli_run(*command, cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "validate: model softmax" in first.stderr and "train: model softmax on all" not in first.stderr
    metrics = json.loads((workdir / "data" / "reports" / "softmax" / "metrics.json").read_text())
    saved = _config(workdir, "softmax")
    assert saved["train_rows"] == 4500 == metrics["train_rows"], "the model that was scored is the one that predicts"
    assert saved["holdout_accuracy"] == metrics["accuracy"] and saved["validation_scheme"] == "holdout 10%"
    (written,) = (workdir / "submissions").glob("*.csv")
    sidecar = json.loads(written.with_suffix(".json").read_text())
    assert sidecar["holdout_accuracy"] == metrics["accuracy"]
    assert sidecar["estimate_from"] == "holdout 10% of this very model (trained on 4500 of 5000 rows)"

    # The same settings, data and seed again: the validation on file stands; one training, on every row. (The
    # first file, never uploaded, is set aside: submit would upload it as it is, see test_kaggle.)
    written.unlink()
    second = cli_run(*command, cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert "validate: model softmax" not in second.stderr and "train: model softmax on all 5000 rows" in second.stderr
    saved = _config(workdir, "softmax")
    assert saved["train_rows"] == 5000 and saved["holdout_accuracy"] == metrics["accuracy"]
    assert saved["estimate_from"] == (
        "holdout 10% validation on file of the same settings, data and seed; this model trained on all 5000 rows"
    )

    # Other settings: that validation no longer speaks for the model, so it validates (once) again.
    third = cli_run(*command, "-p", "learning_rate=0.002", cwd=workdir)
    assert third.returncode == 0, third.stderr
    assert "validate: model softmax" in third.stderr and "train: model softmax on all" not in third.stderr
    assert _config(workdir, "softmax")["train_rows"] == 4500

    # --refit asks for the second training.
    refit = cli_run(*command, "-p", "learning_rate=0.003", "--refit", cwd=workdir)
    assert refit.returncode == 0, refit.stderr
    assert "validate: model softmax" in refit.stderr and "train: model softmax on all 5000 rows" in refit.stderr
    assert _config(workdir, "softmax")["train_rows"] == 5000


def test_ensemble_estimates_itself_while_training_on_every_row(workdir, cli_run):
    result = cli_run(
        "train",
        "--model",
        "ensemble",
        "-p",
        "members=2",
        "-p",
        "epochs=2",
        "-p",
        "filters=8",
        "-p",
        "batch_size=32",
        "--data-dir",
        str(SAMPLE_ZIP),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    saved = _config(workdir, "ensemble")
    assert saved["train_rows"] == 5000 and saved["validation_scheme"] == "2-fold out-of-fold (members)"
    assert saved["estimate_from"].endswith(
        "out-of-fold (members): this model's own members, each on the rows it did not see"
    )
    assert 0.5 < saved["holdout_accuracy"] <= 1
    assert f"members' out-of-fold accuracy {saved['holdout_accuracy']:.4f} over 5000 rows" in result.stderr
    assert sorted(p.name for p in (workdir / "data" / "models" / "ensemble").iterdir()) == [
        "config.json",
        "member-0",
        "member-1",
    ]


def test_the_prediction_submit_reuses_is_this_tasks_and_was_never_refused(workdir, small_competition, cli_run):
    """`make train predict` then `make submit` uploads the file predict wrote. Not a newer file of another task whose
    name ends the same ("<time>-kannada-mnist-logreg.csv" matched "*-logreg.csv"), and not a file Kaggle could not
    score (its ledger row is ERROR: "never uploaded" was untrue, and the same bytes would fail again)."""
    import shutil

    from kaggle_digits import config, data, ledger, pipeline, submit

    common = ["--model", "logreg", "-p", "max_iter=30", "--data-dir", str(small_competition), "-q"]
    for step in ("train", "predict"):
        assert cli_run(step, *common, cwd=workdir).returncode == 0
    (predicted,) = (workdir / "submissions").glob("*-logreg.csv")
    other = workdir / "submissions" / "29991231T235959999Z-kannada-mnist-logreg.csv"  # newer, another task
    shutil.copy(predicted, other)
    shutil.copy(predicted.with_suffix(".json"), other.with_suffix(".json"))
    digits = config.BUILTIN_TASKS["digit-recognizer"]
    settings = pipeline.Settings(model="logreg", overrides={"max_iter": "30"}, data_dir=small_competition)
    dataset = data.load(small_competition, digits)
    assert submit.unsubmitted_prediction(settings, dataset) == predicted.relative_to(workdir)

    from kaggle_digits.submission import file_checksum

    ledger.Ledger().add(
        run_id=predicted.stem,
        time="2026-12-01T00:00:00Z",
        task=digits.name,
        file=predicted.name,
        checksum=file_checksum(predicted),
        model="logreg",
        kaggle_ref="100001",
        status="ERROR",
    )
    assert submit.unsubmitted_prediction(settings, dataset) is None
