"""Every Make variable on every target: passed on where the target takes it, refused in one line where not."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

# A value for each option and the arguments the CLI must then receive, word for word.
VALUES = {
    "MODEL": ("fast", ["--model", "fast"]),
    "TASK": ("kannada-mnist", ["--task", "kannada-mnist"]),
    "SEED": ("7", ["--seed", "7"]),
    "DATA_DIR": ("some dir", ["--data-dir", "some dir"]),
    "DATA": ("some.zip", ["--data", "some.zip"]),
    "COMPETITION": ("other-competition", ["--competition", "other-competition"]),
    "MESSAGE": ("hello there", ["--message", "hello there"]),
    "UPLOAD": ("0", ["--no-upload"]),
    "FORCE": ("1", ["--force"]),
    "ARGS": ("--an-extra-option -q", ["--an-extra-option", "-q"]),
    "REMOTE": ("kaggle", ["--remote", "kaggle"]),
    "ACCELERATOR": ("NvidiaL4", ["--remote-accelerator", "NvidiaL4"]),
}
# Targets whose recipe runs pytest or tools, not the CLI: checked with `make -n` (ARGS only).
NOT_THE_CLI = {"test", "test-fast", "check", "test-kaggle-image"}


def make_table() -> dict[str, list[str]]:
    """The Makefile's own `takes_<target> := ...` lines: which target takes which option."""
    text = (REPO / "Makefile").read_text()
    return {target: options.split() for target, options in re.findall(r"^takes_([\w-]+) :=(.*)$", text, flags=re.M)}


def make(*args: str, dry_run: bool = False, cwd=REPO) -> subprocess.CompletedProcess:
    # A clean environment: a parent `make test ARGS=...` passes its command-line variables on in MAKEFLAGS.
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", *VALUES}}
    return subprocess.run(
        ["make", "--no-print-directory", *(["-n"] if dry_run else []), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def fake_cli(tmp_path_factory):
    """Stands in for .venv/bin/kaggle-digits: prints the arguments it received, as JSON."""
    path = tmp_path_factory.mktemp("cli") / "kaggle-digits"
    path.write_text(f"#!{sys.executable}\nimport json, sys\nprint('ARGV=' + json.dumps(sys.argv[1:]))\n")
    path.chmod(0o755)
    return path


def received(result: subprocess.CompletedProcess) -> list[str]:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("ARGV=")]
    return json.loads(line[5:])


def contains(arguments: list[str], expected: list[str]) -> bool:
    return any(arguments[start : start + len(expected)] == expected for start in range(len(arguments)))


pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or not (REPO / ".venv" / ".installed").exists(), reason="needs make and .venv"
)


def test_the_table_covers_every_documented_target_and_the_reference_says_what_it_says():
    table = make_table()
    documented = set(re.findall(r"^([\w-]+):.*## ", (REPO / "Makefile").read_text(), flags=re.M))
    assert documented <= set(table), documented - set(table)
    reference = (REPO / "docs" / "reference.md").read_text()
    for option in VALUES:
        (row,) = [line for line in reference.splitlines() if line.startswith(f"| `{option}=")]
        taken_by = {name.strip() for name in row.rstrip(" |").rsplit(" | ", 1)[1].split(",")}
        assert taken_by == {target for target, takes in table.items() if option in takes}, (option, taken_by)


# The command line flag each variable becomes (Makefile's pass_<NAME>), and the CLI command behind each target.
FLAGS = {option: expected[0] for option, (_, expected) in VALUES.items() if option != "ARGS"}
COMMANDS = {"data": "fetch", "resubmit": "run", "gpu-check": "bench"}


def test_the_table_is_what_each_commands_own_parser_takes():
    """Derived from argparse, the owner of the CLI's options: a target takes a variable exactly when its command
    has that variable's flag (and every command takes ARGS). `demo` hands its options on to `submit`: it takes the
    remote ones, the demo being offline on the embedded sample otherwise."""
    import argparse

    from kaggle_digits import cli

    parser = cli.build_parser()
    (subcommands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    checked = 0
    for target, takes in make_table().items():
        command = subcommands.choices.get(COMMANDS.get(target, target))
        if command is None or target == "demo":
            continue
        flags = {flag for action in command._actions for flag in action.option_strings}
        derived = {option for option, flag in FLAGS.items() if flag in flags} | {"ARGS"}
        assert set(takes) == derived, (target, "Makefile:", sorted(takes), "argparse:", sorted(derived))
        checked += 1
    assert checked >= 13
    assert make_table()["demo"] == ["REMOTE", "ACCELERATOR", "ARGS"]
    assert {"--remote", "--remote-accelerator"} <= {
        flag for action in subcommands.choices["submit"]._actions for flag in action.option_strings
    }


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(make_table()))
def test_each_option_is_passed_on_or_refused(target, fake_cli):
    takes = make_table()[target]
    for option, (value, expected) in VALUES.items():
        if target in NOT_THE_CLI:
            result = make(target, f"{option}={value}", dry_run=True)
        else:
            result = make(target, f"{option}={value}", f"CLI={fake_cli}")
        if option in takes:
            assert result.returncode == 0, (option, result.stderr)
            if target in NOT_THE_CLI:
                if target != "check":  # check only depends on test: its own recipe is empty
                    assert "$KD_ARGS" in result.stdout, (target, result.stdout)
            else:
                assert contains(received(result), expected), (target, option, received(result))
        else:
            assert result.returncode == 2, (target, option, result.stdout)
            (line,) = [line for line in result.stderr.splitlines() if line.strip()]
            assert f"make {target} does not take {option}=" in line and "docs/reference.md" in line


@pytest.mark.slow
def test_variables_reach_the_cli_as_text_never_as_shell_code(fake_cli, tmp_path):
    """Backticks, $(...) and quotes in a Make variable are the argument's text: nothing runs, nothing splits."""
    marker = tmp_path / "ran"
    hostile = f"`touch {marker}` $(touch {marker}) \"'; touch {marker}; echo '"
    submit = make(
        "submit", f"MESSAGE={hostile}", f"COMPETITION=a$(touch {marker})", f"MODEL=x;touch {marker}", f"CLI={fake_cli}"
    )
    assert submit.returncode == 0, submit.stderr
    arguments = received(submit)
    assert contains(arguments, ["--message", hostile]) and contains(arguments, ["--model", f"x;touch {marker}"])
    assert contains(arguments, ["--competition", f"a$(touch {marker})"])
    # make's own expansion too: a $(shell ...) in a value is never expanded, even by `make -n`.
    expanded = make("train", f"MODEL=$(shell touch {marker})", f"ARGS=$(shell touch {marker})", dry_run=True)
    assert expanded.returncode == 0 and not marker.exists()
