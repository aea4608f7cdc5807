"""The kernels `--remote kaggle` pushes, run on the Kaggle image's package versions (`make test-kaggle-image`).

Code that runs inside a kernel runs on Kaggle's TensorFlow, Keras, numpy, pandas and scikit-learn, not on the
newest ones installed here (Keras 3.13 has no `BatchNormalization.renorm`, say). `make test-kaggle-image`
builds .venv-kaggle-image from tests/kaggle-image-requirements.txt and points the local server's kernel
runner at it (KAGGLE_DIGITS_KERNEL_PYTHON); each kernel here then trains under those versions and says so
(its sidecar, or the member's log line, names them). Without that interpreter these tests are skipped.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from test_kaggle import ledger_rows

from kaggle_digits.helpers import STAMPED_PACKAGES

IMAGE_PYTHON = os.environ.get("KAGGLE_DIGITS_KERNEL_PYTHON")
REQUIREMENTS = Path(__file__).with_name("kaggle-image-requirements.txt")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not IMAGE_PYTHON, reason="the Kaggle image's versions: run make test-kaggle-image"),
]


def pinned(stamped_only: bool = True) -> dict[str, str]:
    """package -> version, as the requirements file pins them (the image's versions); by default those a kernel
    stamps into its sidecar and log (helpers.STAMPED_PACKAGES), which the tests below compare."""
    pins = dict(re.findall(r"^([A-Za-z0-9_-]+)==(\S+)", REQUIREMENTS.read_text(), flags=re.MULTILINE))
    return {name: version for name, version in pins.items() if name in STAMPED_PACKAGES or not stamped_only}


def test_the_requirements_pin_the_packages_the_kernels_depend_on():
    """The five the image pins, and three it leaves to Colab's runtime (filelock, which the toolkit imports;
    matplotlib and scipy, which it imports for plots and distortions), as that runtime has them."""
    assert set(pinned()) == {"tensorflow", "keras", "numpy", "pandas", "scikit-learn"}
    assert set(pinned(stamped_only=False)) - set(pinned()) == {"filelock", "matplotlib", "scipy"}


@pytest.mark.parametrize(
    "model, params",
    [
        ("cnn", ["-p", "epochs=1"]),  # the default model, as it is (fused batch norm included), one epoch
        ("softmax", ["-p", "epochs=2"]),  # the tutorial's baseline
    ],
)
def test_a_model_trains_in_a_kernel_on_the_image_versions(server, kaggle_env, workdir, model, params, kd):
    result = kd(
        "submit",
        "--remote",
        "kaggle",
        "--model",
        model,
        *params,
        cwd=workdir,
        env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.3"},
    )
    assert result.returncode == 0, result.stderr
    assert server.state.kernels.settings.python == IMAGE_PYTHON
    (row,) = ledger_rows(workdir)
    sidecar = json.loads((workdir / "submissions" / row["file"]).with_suffix(".json").read_text())
    stamped = sidecar["versions"]  # written in the kernel: what it trained with
    assert {package: stamped.get(package) for package in pinned()} == pinned(), stamped
    assert row["status"] == "COMPLETE" and row["accelerator"] == "NvidiaTeslaT4"


def test_the_ensemble_members_train_in_kernels_on_the_image_versions(server, kaggle_env, workdir, kd):
    tiny = ["-p", "members=2", "-p", "epochs=1", "-p", "batch_size=64"]
    result = kd(
        "submit",
        "--remote",
        "kaggle",
        "--model",
        "ensemble",
        *tiny,
        cwd=workdir,
        env={**kaggle_env, "KAGGLE_DIGITS_KERNEL_POLL": "0.3"},
    )
    assert result.returncode == 0, result.stderr
    logs = ["".join(entry["data"] for entry in session.log) for session in server.state.kernels.sessions.values()]
    assert len(logs) == 2
    for log in logs:
        assert all(f"{package} {version}" in log for package, version in pinned().items()), log[-2000:]
    (row,) = ledger_rows(workdir)
    assert row["status"] == "COMPLETE"
