"""The Keras models on Keras 3's other backends: JAX here (the GPU machines this project is lent have JAX and PyTorch
but no TensorFlow), PyTorch where it is installed. Each run is a process of its own: the backend is chosen once,
at Keras' import, from KERAS_BACKEND."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_ZIP, read_submission, run_cli

pytestmark = pytest.mark.slow

TINY_FAST = ["--model", "fast", "-p", "epochs=1", "-p", "filters=8", "--data-dir", str(SAMPLE_ZIP)]
# The cnn's own loop, augmentation and elastic distortion included: the layer that resamples in keras.ops.
TINY_CNN = [
    "--model",
    "cnn",
    "-p",
    "epochs=1",
    "-p",
    "filters=8",
    "-p",
    "elastic=8",
    "-p",
    "batch_size=64",
    "--data-dir",
    str(SAMPLE_ZIP),
]


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


BACKENDS = [
    "jax",
    pytest.param("torch", marks=pytest.mark.skipif(not installed("torch"), reason="PyTorch is not installed here")),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_validate_train_predict_save_and_load_on_another_backend(workdir, backend):
    env = {"KERAS_BACKEND": backend}
    validated = run_cli("validate", *TINY_CNN, cwd=workdir, env=env)
    assert validated.returncode == 0, validated.stderr
    assert f"Keras on {backend})" in validated.stdout
    metrics = json.loads((workdir / "data" / "reports" / "cnn" / "metrics.json").read_text())
    assert metrics["backend"] == backend and 0.1 < metrics["accuracy"] <= 1.0
    for command in ("train", "predict"):
        result = run_cli(command, *TINY_FAST, cwd=workdir, env=env)
        assert result.returncode == 0, result.stderr
    (first,) = sorted((workdir / "submissions").glob("*-fast.csv"))
    assert json.loads(first.with_suffix(".json").read_text())["backend"] == backend
    saved = json.loads((workdir / "data" / "models" / "fast" / "config.json").read_text())
    assert saved["backend"] == backend
    # The model saved under this backend loads under TensorFlow (the default) and predicts the same digits.
    again = run_cli("predict", *TINY_FAST, cwd=workdir, env={"KERAS_BACKEND": "tensorflow"})
    assert again.returncode == 0, again.stderr
    second = next(path for path in sorted((workdir / "submissions").glob("*-fast.csv")) if path != first)
    agree = np.mean(read_submission(first)[:, 1] == read_submission(second)[:, 1])
    assert agree > 0.99, f"the same weights predict the same digits on both backends ({agree:.3f})"


NO_TENSORFLOW = """
import sys


class NoTensorFlow:
    # As on the GPU machines: no TensorFlow to import.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoTensorFlow())
from kaggle_digits import cli

sys.exit(cli.main(sys.argv[1:]))
"""


def test_the_jax_backend_runs_where_tensorflow_is_not_installed(workdir):
    """The GPU machines have no TensorFlow: under JAX the training path, the saved model and the GPU check's dry run
    need none."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    for command in (["validate", *TINY_CNN], ["train", *TINY_FAST], ["predict", *TINY_FAST]):
        result = subprocess.run(
            [sys.executable, "-c", NO_TENSORFLOW, *command],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
    assert list((workdir / "submissions").glob("*-fast.csv"))


def test_gpu_check_dry_run_measures_nothing_but_runs_every_step(workdir, tmp_path):
    """`make gpu-check ARGS=--dry-run`: the GPU check's code on a CPU, with tiny sizes."""
    out = tmp_path / "gpu-check"
    result = run_cli("bench", "--gpu-check", "--dry-run", "--out", str(out), cwd=workdir, env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "bench.json").read_text())
    assert report["dry_run"] is True and report["backend"] == "jax" and report["device"] == "CPU"
    assert report["cnn"]["epochs"] == 1 and 0.0 <= report["cnn"]["accuracy"] <= 1.0
    ensemble = report["ensemble"]
    assert ensemble["preset_members"] == 15 and 1 <= ensemble["members_measured"] <= 15
    assert len(ensemble["member_accuracies"]) == ensemble["members_measured"]
    assert 0.0 <= ensemble["committee_accuracy"] <= 1.0
    assert report["derived_t4x2"]["note"].startswith("derived")
    text = (out / "bench.md").read_text()
    assert "dry run: tiny sizes, nothing measured" in text and "Derived, not measured" in text
    assert Path(report["source"]) == SAMPLE_ZIP


def test_dry_run_goes_with_the_gpu_check_only(workdir, cli_run):
    result = cli_run("bench", "--dry-run", cwd=workdir)
    assert result.returncode == 2 and "--dry-run goes with --gpu-check" in result.stderr
