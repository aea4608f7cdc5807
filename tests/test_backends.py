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


# Every built-in Keras model, tiny, in one process per backend (the backend is chosen once, at Keras' import):
# "fit" trains each on the sample's first rows, saves it, loads it back and writes both predictions; "load" loads
# each saved model (under another backend) and predicts the same rows.
EVERY_MODEL = """
import json
import sys
from pathlib import Path

import numpy as np

from kaggle_digits import config, data, models

mode, folder = sys.argv[1], Path(sys.argv[2])
TINY = {
    "softmax": {"epochs": "1"},
    "mlp": {"epochs": "1", "hidden_units": "16"},
    "fast": {"epochs": "1", "filters": "8", "dense_units": "16", "rotation": "10"},
    "cnn": {"epochs": "1", "filters": "8", "elastic": "8", "ema": "true", "batch_size": "64"},
    "deotte": {"epochs": "1", "filters": "8"},
    "ensemble": {"epochs": "1", "filters": "8", "members": "2"},
}
dataset = data.load(config.SAMPLE_ZIP, use_cache=False)
images, labels = dataset.train_images[:512], dataset.train_labels[:512]
rows = dataset.test_images[:64]
report = {}
for name, overrides in TINY.items():
    params = models.params_for(name, overrides)
    where = folder / name
    if mode == "fit":
        model = models.create(name, params, 42)
        model.fit(images, labels, verbose=False)
        where.mkdir(parents=True)
        model.save(where)
        np.save(where / "fitted.npy", model.predict_proba(rows))
    loaded = models.model_class(name).load(where, params, 42)
    np.save(where / f"{mode}.npy", loaded.predict_proba(rows))
    report[name] = loaded.keras_backend()
print(json.dumps(report))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_keras_model_fits_saves_and_loads_on_another_backend_and_under_tensorflow(tmp_path, backend):
    def run(mode: str, name: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", EVERY_MODEL, mode, str(tmp_path)],
            env={**os.environ, "KERAS_BACKEND": name},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    trained = run("fit", backend)
    assert set(trained.values()) == {backend}
    assert run("load", "tensorflow") == dict.fromkeys(trained, "tensorflow")
    for name in trained:
        fitted, reloaded, elsewhere = (np.load(tmp_path / name / f"{what}.npy") for what in ("fitted", "fit", "load"))
        assert fitted.shape == (64, 10) and np.allclose(fitted.sum(axis=1), 1.0, atol=1e-4), name
        # The same weights give the same probabilities after a save and load, here and under TensorFlow (float32
        # kernels differ by backend: a tolerance, not equality).
        assert np.allclose(reloaded, fitted, atol=1e-5), name
        assert np.allclose(elsewhere, fitted, atol=1e-3), name


NO_TENSORFLOW = """
import importlib.machinery
import sys


class WithoutTensorFlow(importlib.machinery.PathFinder):
    # As on the GPU machines: TensorFlow is not on the path (find_spec says None, an import fails as it would there).
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            return None
        return super().find_spec(name, path, target)


sys.meta_path = [WithoutTensorFlow if finder is importlib.machinery.PathFinder else finder for finder in sys.meta_path]
from kaggle_digits import cli

sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_validate_train_and_predict_on_another_backend_where_tensorflow_is_not_installed(workdir, backend):
    """The GPU machines have no TensorFlow: the commands, the saved model and the submission need none, and say which
    backend trained them."""
    env = {**os.environ, "KERAS_BACKEND": backend}
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
        if command[0] == "validate":
            assert f"Keras on {backend})" in result.stdout
    metrics = json.loads((workdir / "data" / "reports" / "cnn" / "metrics.json").read_text())
    assert metrics["backend"] == backend and 0.0 <= metrics["accuracy"] <= 1.0  # one tiny epoch: any score
    saved = json.loads((workdir / "data" / "models" / "fast" / "config.json").read_text())
    assert saved["backend"] == backend
    (submission,) = sorted((workdir / "submissions").glob("*-fast.csv"))
    assert json.loads(submission.with_suffix(".json").read_text())["backend"] == backend
    assert len(read_submission(submission)) == 1000


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
