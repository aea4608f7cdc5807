"""Other MNIST-style tasks: Fashion-MNIST (a data set, evaluate only) and Kannada-MNIST (id,label), and task files."""

from __future__ import annotations

import json

import pytest
from conftest import SECRETS, TEST_TOKEN, write_competition

from kaggle_digits import config, local_kaggle

# Every test here runs a whole flow in subprocesses (or a server): not in `make test-fast`.
pytestmark = pytest.mark.slow

TOKEN = TEST_TOKEN
FAST = ["--model", "logreg", "-p", "max_iter=60"]


@pytest.fixture
def server(sample):
    # The real Fashion/Kannada data are not in the repo: the sample's digits, in each task's exact layout.
    competitions = [
        local_kaggle.competition_from_arrays(task, sample.train_images[:1500], sample.train_labels[:1500])
        for task in config.BUILTIN_TASKS.values()
    ]
    with local_kaggle.LocalKaggleServer(competitions, scoring_delay=0.2, **SECRETS) as running:
        yield running


def test_tasks_lists_what_each_fetches_and_writes(workdir, cli_run):
    result = cli_run("tasks", cwd=workdir)
    assert result.returncode == 0
    text = result.stdout
    assert "dataset zalando-research/fashionmnist: fashion-mnist_train.csv, fashion-mnist_test.csv" in text
    assert (
        "competition Kannada-MNIST: train.csv, test.csv, sample_submission.csv\n  writes: submission id,label" in text
    )
    assert "T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot" in text


def test_fashion_mnist_fetch_evaluate_and_no_submission(server, kaggle_env, workdir, cli_run):
    result = cli_run("evaluate", "--task", "fashion-mnist", *FAST, cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    assert "fetch: dataset 'zalando-research/fashionmnist'" in result.stderr
    assert "POST DownloadDataset" in server.state.requests
    extracted = workdir / "data" / "raw" / "fashion-mnist"
    assert sorted(p.name for p in extracted.iterdir()) == ["fashion-mnist_test.csv", "fashion-mnist_train.csv"]
    assert (extracted / "fashion-mnist_train.csv").read_text().startswith("label,pixel1,pixel2,")
    assert "logreg on fashion-mnist: test accuracy 0." in result.stdout and "Ankle boot" in result.stdout
    report = workdir / "data" / "reports" / "logreg-fashion-mnist-evaluate"
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["validation_rows"] == 300 and len(metrics["per_class_accuracy"]) == 10
    assert (report / "confusion_matrix.png").exists() and (report / "misclassified.png").exists()

    refused = cli_run("submit", "--task", "fashion-mnist", *FAST, cwd=workdir, env=kaggle_env)
    assert refused.returncode == 2
    assert (
        "task 'fashion-mnist' has no submissions" in refused.stderr
        and "make evaluate TASK=fashion-mnist" in refused.stderr
    )


def test_kannada_mnist_submit_end_to_end(server, kaggle_env, workdir, cli_run):
    result = cli_run("submit", "--task", "kannada-mnist", *FAST, cwd=workdir, env=kaggle_env)
    assert result.returncode == 0, result.stderr
    assert "fetch: competition 'Kannada-MNIST'" in result.stderr
    (written,) = (workdir / "submissions").glob("*-kannada-mnist-logreg.csv")
    lines = written.read_text().splitlines()
    assert lines[0] == "id,label" and lines[1].startswith("0,") and len(lines) == 301
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(300))
    (submitted,) = server.state.submissions
    assert submitted.competition == "Kannada-MNIST" and submitted.status == "COMPLETE"
    assert f"public score: {submitted.public_score}" in result.stdout
    # The default task's files are untouched: each task has its own folders.
    assert not (workdir / "data" / "raw" / "digit-recognizer").exists()


def test_a_task_file_adds_a_task_without_code(workdir, sample, cli_run):
    (workdir / "tasks").mkdir()
    (workdir / "tasks" / "my-digits.toml").write_text(
        'name = "my-digits"\nsource = "competition"\nref = "my-digits"\ntest_id_column = "id"\nsubmission_columns = '
        '["id", "label"]\n'
    )
    task = config.Task(
        name="my-digits", source="competition", ref="my-digits", test_id_column="id", submission_columns=("id", "label")
    )
    folder = write_competition(workdir / "mine", sample, task=task)
    listed = cli_run("tasks", cwd=workdir)
    assert "my-digits\n  competition my-digits" in listed.stdout
    for command in ("train", "predict"):
        result = cli_run(command, "--task", "my-digits", *FAST, "--data-dir", str(folder), cwd=workdir)
        assert result.returncode == 0, result.stderr
    (written,) = (workdir / "submissions").glob("*-my-digits-logreg.csv")
    assert written.read_text().startswith("id,label\n0,")


def test_a_task_file_in_the_current_folder_counts_when_the_home_is_elsewhere(workdir, tmp_path, monkeypatch, cli_run):
    """docs/reference.md: task files go in ./tasks/. The README's serve-local recipe sets KAGGLE_DIGITS_HOME to
    another folder; ./tasks/ still counts there (before, only the home's tasks/ did: the task was "unknown")."""
    (workdir / "tasks").mkdir()
    (workdir / "tasks" / "here.toml").write_text('name = "here"\nsource = "competition"\nref = "here"\n')
    home = tmp_path / "local-kaggle"
    (home / "tasks").mkdir(parents=True)
    (home / "tasks" / "there.toml").write_text('name = "there"\nsource = "competition"\nref = "there"\n')
    monkeypatch.setattr(config, "HOME", home)
    listed = cli_run("tasks", cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    assert "here\n  competition here" in listed.stdout and "there\n  competition there" in listed.stdout
    from kaggle_digits.tasks import get_task

    monkeypatch.chdir(workdir)
    assert get_task("here").ref == "here" and get_task("there").ref == "there"


@pytest.mark.parametrize(
    "content, message",
    [
        ('name = "x"\nsource = "competition"\nref = ', "not valid TOML"),
        ('name = "x"\nsource = "competition"\nref = "x"\ncolour = "red"\n', "unknown key 'colour'"),
        ('name = "x"\nsource = "competition"\n', "'ref' is missing"),
        ('name = "x"\nsource = "kernel"\nref = "x"\n', 'source must be "competition" or "dataset"'),
        ('name = "x"\nsource = "dataset"\nref = "x"\n', "is not owner/dataset"),
        (
            'name = "x"\nsource = "competition"\nref = "x"\nfirst_pixel_index = "one"\n',
            "'first_pixel_index' must be int",
        ),
        ('name = "x"\nsource = "competition"\nref = "x"\nclass_names = ["a", "b"]\n', "lists 2 classes"),
    ],
)
def test_bad_task_file_is_one_clear_line(content, message, workdir, cli_run):
    path = workdir / "bad.toml"
    path.write_text(content)
    result = cli_run("validate", "--task", str(path), cwd=workdir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and message in lines[0], lines


def table_of(out):
    return (out / "bench.md").read_text()


def test_bench_runs_for_every_task(workdir, sample, cli_run):
    for task in config.BUILTIN_TASKS.values():
        archive = write_competition(workdir / task.name, sample, n_train=1500, n_test=200, task=task, as_zip=True)
        out = workdir / "bench" / task.name
        # What differs between tasks is the data's layout, not the models: the Keras baseline and a scikit-learn
        # model (its own child process, no TensorFlow) are enough. Few rows: a faster softmax, so it learns in seconds.
        result = cli_run(
            "bench",
            "--task",
            task.name,
            "--quick",
            "--models",
            "softmax,logreg",
            "--data",
            str(archive),
            "--out",
            str(out),
            "-p",
            "softmax:learning_rate=0.005",
            "-p",
            "logreg:max_iter=60",
            cwd=workdir,
        )
        assert result.returncode == 0, result.stderr + result.stdout
        report = json.loads((out / "bench.json").read_text())
        assert [row["model"] for row in report["results"]] == ["softmax", "logreg"]
        assert report["folds"] == 2
        for row in report["results"]:
            assert 0.5 < row["oof_accuracy"] <= 1 and row["predict_seconds_28k"] > 0 and row["images_per_second"] > 0, (
                table_of(out)
            )
            assert row["rows"] == 1500 and len(row["oof_predictions"]) == 1500, "every row is predicted once"
        table = (out / "bench.md").read_text()
        assert "| `softmax` |" in table and "| `logreg` |" in table and "x |" in table
