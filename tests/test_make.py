"""Every Make variable on every target: passed on where the target takes it, refused in one line where not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from conftest import REPO

# A value for each option and what the target's command line must then contain.
VALUES = {
    "MODEL": ("fast", "--model fast"),
    "TASK": ("kannada-mnist", "--task kannada-mnist"),
    "SEED": ("7", "--seed 7"),
    "DATA_DIR": ("some/dir", '--data-dir "some/dir"'),
    "DATA": ("some.zip", "some.zip"),
    "COMPETITION": ("other-competition", "--competition other-competition"),
    "MESSAGE": ("hello", '--message "hello"'),
    "UPLOAD": ("0", "--no-upload"),
    "FORCE": ("1", "--force"),
    "ARGS": ("--an-extra-option", "--an-extra-option"),
    "REMOTE": ("kaggle", "--remote kaggle"),
    "ACCELERATOR": ("NvidiaL4", "--remote-accelerator NvidiaL4"),
}


def make_table() -> dict[str, list[str]]:
    """The Makefile's own `takes_<target> := ...` lines: which target takes which option."""
    text = (REPO / "Makefile").read_text()
    return {target: options.split() for target, options in re.findall(r"^takes_([\w-]+) :=(.*)$", text, flags=re.M)}


def make_n(*args: str) -> subprocess.CompletedProcess:
    # A clean environment: a parent `make test ARGS=...` passes its command-line variables on in MAKEFLAGS.
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", *VALUES}}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def test_the_table_covers_every_documented_target():
    targets = set(make_table())
    documented = set(re.findall(r"^([\w-]+):.*## ", (REPO / "Makefile").read_text(), flags=re.M))
    assert documented <= targets, documented - targets
    readme = (REPO / "README.md").read_text()
    for option in VALUES:
        assert f"`{option}=" in readme, f"README's table of Make variables lacks {option}"


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(make_table()))
def test_each_option_is_passed_on_or_refused(target):
    takes = make_table()[target]
    for option, (value, expected) in VALUES.items():
        result = make_n(target, f"{option}={value}")
        if option in takes:
            assert result.returncode == 0, (option, result.stderr)
            if target not in {"check"}:  # check only depends on test: its own recipe is empty
                assert expected in result.stdout, (target, option, result.stdout)
        else:
            assert result.returncode == 2, (target, option, result.stdout)
            (line,) = [line for line in result.stderr.splitlines() if line.strip()]
            assert f"make {target} does not take {option}=" in line and "README.md" in line
