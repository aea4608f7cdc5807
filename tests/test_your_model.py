"""A model of the user's own through the whole loop, as a new user brings it: the worked examples of
docs/your-model.md copied into files of their own, then check-model, validate, submit, the scheduled run (skip when
unchanged, submit after an edit), --remote kaggle and bench; and every kind of broken model, each one line, exit 2,
nothing written."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE_ZIP

from kaggle_digits import models
from kaggle_digits.models import user

EXAMPLES = {
    name: text
    for text, name in re.findall(
        r"```python\n(# file: (\S+)\n.*?)```", (REPO / "docs" / "your-model.md").read_text(), re.S
    )
}
SKLEARN, KERAS, SUBCLASS = "pca_logreg.py:pca_logreg", "small_cnn.py:small_cnn", "centroids.py:Centroids"
TINY_KERAS = ["-p", "epochs=1", "-p", "filters=4", "-p", "dense=16"]


def copy_examples(folder: Path) -> None:
    for name, text in EXAMPLES.items():
        (folder / name).write_text(text)


def ledger(folder: Path) -> list[dict]:
    path = folder / "submissions" / "ledger.csv"
    return list(csv.DictReader(path.open())) if path.exists() else []


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "internal error" not in lines[0]
    return lines[0]


def test_the_docs_show_the_three_kinds():
    assert set(EXAMPLES) == {"pca_logreg.py", "small_cnn.py", "centroids.py"}


@pytest.mark.parametrize("reference", [SKLEARN, SUBCLASS])
def test_check_model_passes_the_worked_examples(reference, workdir, cli_run):
    copy_examples(workdir)
    result = cli_run("check-model", reference, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "the same seed (42) gives the same predictions" in result.stdout
    assert "a save and load round trip predicts the same" in result.stdout
    assert f"{reference} (source " in result.stdout and "keeps the contract" in result.stdout
    assert not (workdir / "submissions").exists() and not (workdir / "data" / "models").exists()


def test_new_model_writes_starters_that_pass_check_model(workdir, cli_run):
    made = cli_run("new-model", "mine.py", "--kind", "sklearn", cwd=workdir)
    assert made.returncode == 0, made.stderr
    assert cli_run("check-model", "mine.py:pca_logreg", cwd=workdir).returncode == 0
    again = cli_run("new-model", "mine.py", cwd=workdir)
    assert again.returncode == 2 and "the file exists; nothing was written" in one_error_line(again)


def test_models_lists_the_parameters_of_a_model_of_yours(workdir, cli_run):
    copy_examples(workdir)
    listed = cli_run("models", SKLEARN, cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    sha = user.resolve(str(workdir / SKLEARN)).short
    assert listed.stdout.startswith(f"pca_logreg.py:pca_logreg@{sha} components=40 C=1.0 max_iter=300")


def test_the_identity_is_the_file_and_what_it_imports_beside_it(tmp_path):
    (tmp_path / "helpers.py").write_text("SIZE = 3\n")
    (tmp_path / "unrelated.py").write_text("X = 1\n")
    (tmp_path / "mine.py").write_text("import numpy\nimport helpers\n\ndef build(size: int = 3):\n    return None\n")
    reference = f"{tmp_path / 'mine.py'}:build"
    first = user.resolve(reference)
    assert first.files == ("mine.py", "helpers.py") and first.display == "mine.py:build"
    (tmp_path / "unrelated.py").write_text("X = 2\n")
    assert user.resolve(reference).sha256 == first.sha256
    (tmp_path / "helpers.py").write_text("SIZE = 4\n")
    assert user.resolve(reference).sha256 != first.sha256
    assert models.file_name(reference) == "mine-build"


def test_a_model_beside_the_toolkits_package_does_not_count_the_toolkit_as_its_code(tmp_path):
    """A user's file in the checkout's root imports kaggle_digits from the folder beside it: that is a library, like
    numpy. An upgrade of the toolkit must not make it a new configuration, nor ship the package as the user's."""
    (tmp_path / "kaggle_digits").symlink_to(REPO / "kaggle_digits", target_is_directory=True)
    (tmp_path / "centroids.py").write_text(EXAMPLES["centroids.py"])
    assert user.resolve(f"{tmp_path / 'centroids.py'}:Centroids").files == ("centroids.py",)


@pytest.mark.slow
def test_the_keras_example_validates_and_submits(server, kaggle_env, workdir, cli_run):
    copy_examples(workdir)
    assert cli_run("check-model", KERAS, *TINY_KERAS, cwd=workdir).returncode == 0
    validated = cli_run("validate", "--model", KERAS, *TINY_KERAS, "--data-dir", str(SAMPLE_ZIP), "-q", cwd=workdir)
    assert validated.returncode == 0, validated.stderr
    assert (workdir / "data" / "reports" / "small_cnn-small_cnn" / "learning_curves.png").exists()
    metrics = json.loads((workdir / "data" / "reports" / "small_cnn-small_cnn" / "metrics.json").read_text())
    assert metrics["source_sha256"] == user.resolve(str(workdir / KERAS)).sha256 and metrics["params"]["filters"] == 4
    submitted = cli_run("submit", "--model", KERAS, *TINY_KERAS, cwd=workdir, env=kaggle_env)
    assert submitted.returncode == 0, submitted.stderr
    (row,) = ledger(workdir)
    sha = user.resolve(str(workdir / KERAS)).short
    assert row["model"] == f"small_cnn.py:small_cnn@{sha}" and row["status"] == "COMPLETE"
    assert server.state.submissions[0].description.startswith(f"kaggle-digits {row['run_id']}: small_cnn.py:small_cnn@")


@pytest.mark.slow
def test_the_scheduled_run_skips_an_unchanged_model_and_submits_an_edited_one(server, kaggle_env, workdir, cli_run):
    copy_examples(workdir)
    run = ["run", "-q", "--model", SKLEARN, "-p", "components=20"]
    first = cli_run(*run, cwd=workdir, env=kaggle_env)
    assert first.returncode == 0, first.stdout + first.stderr
    unchanged = cli_run(*run, cwd=workdir, env=kaggle_env)
    assert unchanged.returncode == 10 and "nothing changed since" in unchanged.stdout, unchanged.stdout
    # The same settings through submit: the configuration is on Kaggle, so nothing is trained or sent.
    refused = cli_run("submit", "--model", SKLEARN, "-p", "components=20", cwd=workdir, env=kaggle_env)
    assert refused.returncode == 10 and "Kaggle already has this configuration" in refused.stderr
    path = workdir / "pca_logreg.py"
    path.write_text(path.read_text().replace("C: float = 1.0", "C: float = 0.01"))  # an edit that changes predictions
    edited = cli_run(*run, cwd=workdir, env=kaggle_env)
    assert edited.returncode == 0, edited.stdout + edited.stderr
    rows = ledger(workdir)
    assert len(server.state.submissions) == 2 and len(rows) == 2 and rows[0]["config"] != rows[1]["config"]
    assert rows[0]["model"] != rows[1]["model"]  # each names its source's hash


@pytest.mark.slow
def test_predict_refuses_a_model_trained_from_an_older_source(workdir, cli_run):
    copy_examples(workdir)
    common = ["--model", SUBCLASS, "--data-dir", str(SAMPLE_ZIP), "-q"]
    assert cli_run("train", *common, cwd=workdir).returncode == 0
    assert cli_run("predict", *common, cwd=workdir).returncode == 0
    path = workdir / "centroids.py"
    path.write_text(path.read_text().replace("temperature: float = 20.0", "temperature: float = 10.0"))
    stale = cli_run("predict", *common, cwd=workdir)
    assert stale.returncode == 2
    assert "was trained from another version of 'centroids.py:Centroids'" in one_error_line(stale)
    assert len(list((workdir / "submissions").glob("*.csv"))) == 1


@pytest.mark.slow
def test_bench_ranks_a_model_of_yours_beside_the_built_ins(workdir, cli_run):
    copy_examples(workdir)
    result = cli_run(
        "bench",
        "--quick",
        "--models",
        f"softmax,{SKLEARN}",
        "-p",
        f"{SKLEARN}:components=20",
        "--out",
        "b",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["model"]: row for row in json.loads((workdir / "b" / "bench.json").read_text())["results"]}
    assert rows[SKLEARN]["params"]["components"] == 20 and 0.5 < rows[SKLEARN]["oof_accuracy"] <= 1


BROKEN = {
    "syntax": ("def build(:\n", "build", "broken.py, line 1: "),  # the wording of the error is Python's own
    "nul-byte": ("x = 1\0\n", "build", "broken.py: source code string cannot contain null bytes"),
    "no-name": ("def other():\n    return None\n", "build", "has no 'build'"),
    "no-fit": ("class Build:\n    pass\n", "Build", "has no fit(X, y)"),
    "no-default": ("def build(c):\n    return None\n", "build", "parameter 'c' has no default"),
    "wrong-shape": (
        "import numpy as np\n\nclass Build:\n    def fit(self, X, y):\n        return self\n\n"
        "    def predict_proba(self, X):\n        return np.full((len(X), 3), 1 / 3)\n",
        "Build",
        "expected (",
    ),
    "nan": (
        "import numpy as np\n\nclass Build:\n    def fit(self, X, y):\n        return self\n\n"
        "    def predict_proba(self, X):\n        return np.full((len(X), 10), np.nan)\n",
        "Build",
        "not finite (NaN or inf)",
    ),
    "labels": (
        "import numpy as np\n\nclass Build:\n    def fit(self, X, y):\n        return self\n\n"
        "    def predict(self, X):\n        return np.full(len(X), 12)\n",
        "Build",
        "labels outside 0..9",
    ),
    "raises": (
        "class Build:\n    def fit(self, X, y):\n        return self.deeper(X)\n\n"
        "    def deeper(self, X):\n        raise ValueError('my own bug')\n",
        "Build",
        "raised ValueError in its fit (broken.py, line 6): my own bug",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_model_is_one_line_exit_2_and_nothing_written(case, server, kaggle_env, workdir, cli_run):
    text, name, says = BROKEN[case]
    (workdir / "broken.py").write_text(text)
    result = cli_run("submit", "--model", f"broken.py:{name}", cwd=workdir, env=kaggle_env)
    assert result.returncode == 2, result.stderr
    assert says in one_error_line(result)
    if case == "raises":  # the user's own frames come first
        assert "Traceback of your model's code" in result.stderr and "raise ValueError('my own bug')" in result.stderr
    assert not list((workdir / "submissions").glob("*.csv")) and ledger(workdir) == []
    assert server.state.submissions == []


@pytest.mark.slow
def test_a_missing_file_and_a_keras_network_of_the_wrong_shape(workdir, cli_run):
    missing = cli_run("validate", "--model", "nowhere.py:build", "--data-dir", str(SAMPLE_ZIP), cwd=workdir)
    assert missing.returncode == 2 and "no such file nowhere.py" in one_error_line(missing)
    (workdir / "flat.py").write_text(
        "import keras\n\ndef build():\n    inputs = keras.Input((784,))\n"
        "    return keras.Model(inputs, keras.layers.Dense(10, activation='softmax')(inputs))\n"
    )
    wrong = cli_run(
        "validate", "--model", "flat.py:build", "-p", "epochs=1", "--data-dir", str(SAMPLE_ZIP), cwd=workdir
    )
    assert wrong.returncode == 2 and "expected input (28, 28, 1) and 10 outputs" in one_error_line(wrong)
    assert not (workdir / "data" / "reports").exists() and not (workdir / "submissions").exists()


MUTANTS = {
    "shape": ("return proba", "return proba[:, :9]", "expected ("),
    "nan": ("return proba", "return proba * np.nan", "not finite"),
    "seed": ("rng = np.random.default_rng(self.seed)", "rng = np.random.default_rng()", "'same seed, same model'"),
    "save": ("np.save(folder / 'w.npy', self.w)", "np.save(folder / 'w.npy', self.w * 0)", "'save and load'"),
}
RULED = """import numpy as np
from dataclasses import dataclass
from kaggle_digits.models import History, Model


class Noisy(Model):
    @dataclass
    class Params:
        scale: float = 1.0

    def fit(self, images, labels, validation=None, verbose=True):
        rng = np.random.default_rng(self.seed)
        self.w = rng.normal(size=(784, 10)) * self.params.scale
        return History()

    @property
    def fitted(self):
        return hasattr(self, "w")

    def _predict_proba(self, images):
        logits = images.astype(np.float32) / 255 @ self.w
        odds = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba = odds / odds.sum(axis=1, keepdims=True)
        return proba

    def save(self, folder):
        np.save(folder / 'w.npy', self.w)

    def _load_weights(self, folder):
        self.w = np.load(folder / 'w.npy')
"""


@pytest.mark.parametrize("rule", ["none", *sorted(MUTANTS)])
def test_check_model_sees_each_rule_broken(rule, workdir, cli_run):
    """Mutation: the same small model, each rule broken in turn; check-model names that rule, and only the intact
    one passes."""
    text = RULED
    if rule != "none":
        before, after, _ = MUTANTS[rule]
        assert before in text
        text = text.replace(before, after)
    (workdir / "ruled.py").write_text(text)
    result = cli_run("check-model", "ruled.py:Noisy", cwd=workdir)
    if rule == "none":
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2 and MUTANTS[rule][2] in one_error_line(result)


def test_check_model_sees_a_parameter_not_stored(workdir, cli_run):
    """scikit-learn's rule: __init__ stores each parameter under its own name (clone and searches rely on it)."""
    (workdir / "unstored.py").write_text(
        "from sklearn.base import BaseEstimator, ClassifierMixin\nfrom sklearn.linear_model import LogisticRegression"
        "\n\n\nclass Wrapped(ClassifierMixin, BaseEstimator):\n    def __init__(self, strength: float = 1.0):\n"
        "        self.c = strength\n\n    def fit(self, X, y):\n"
        "        self.model_ = LogisticRegression(C=self.c, max_iter=50).fit(X, y)\n        return self\n\n"
        "    def predict_proba(self, X):\n        return self.model_.predict_proba(X)\n"
    )
    result = cli_run("check-model", "unstored.py:Wrapped", cwd=workdir)
    assert result.returncode == 2 and "rule 'every parameter is stored' failed: 'strength'" in one_error_line(result)


class NotebookCentroids:
    """A model as a notebook defines it: a class in the session, handed over as an object."""

    def __init__(self, shrink: float = 0.0):
        self.shrink = shrink

    def fit(self, X, y):
        import numpy as np

        self.centroids_ = np.stack([X[y == digit].mean(axis=0) * (1 - self.shrink) for digit in range(10)])
        return self

    def predict(self, X):
        return ((X[:, None, :] - self.centroids_[None]) ** 2).sum(axis=2).argmin(axis=1)


@pytest.mark.slow
def test_the_loop_in_python_takes_an_object_and_keeps_the_guards(server, kaggle_env, workdir, monkeypatch):
    """`from kaggle_digits.api import validate, submit` in a notebook: an object in, typed results out, and the same
    ledger and guards as the CLI (a second submit of the same configuration is refused)."""
    from kaggle_digits import api
    from kaggle_digits.errors import Skipped

    for name, value in kaggle_env.items():
        if not name.startswith("KAGGLE_DIGITS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(workdir)
    result = api.validate(NotebookCentroids, data_dir=SAMPLE_ZIP, verbose=False)
    assert 0.5 < result.accuracy <= 1 and result.source_sha256 and result.model == "<notebook>:NotebookCentroids"
    submitted = api.submit(NotebookCentroids, params={"shrink": 0.0}, verbose=False)
    assert submitted.uploaded and submitted.status == "COMPLETE" and 0.5 < float(submitted.public_score) <= 1
    (row,) = ledger(workdir)
    assert row["model"].startswith("<notebook>:NotebookCentroids@")
    with pytest.raises(Skipped, match="Kaggle already has this configuration"):
        api.submit(NotebookCentroids, verbose=False)
    assert len(server.state.submissions) == 1
