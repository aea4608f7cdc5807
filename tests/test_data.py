"""Data in: every bad input gets one clear line and exit code 3, and nothing is written."""

from __future__ import annotations

import zipfile

import pytest
from conftest import DIGITS, files_under, write_competition

from kaggle_digits import cli, data
from kaggle_digits.errors import DataError


def edit_line(path, number, change):
    lines = path.read_text().splitlines()
    lines[number - 1] = change(lines[number - 1])
    path.write_text("\n".join(lines) + "\n")


def set_value(column_index, value):
    def change(line):
        parts = line.split(",")
        parts[column_index] = value
        return ",".join(parts)

    return change


def run_validate(capsys, data_dir):
    code = cli.main(["validate", "--model", "logreg", "--data-dir", str(data_dir), "-q"])
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


BAD_INPUTS = {
    # name: (how to break the competition folder, words the message must contain)
    "missing train.csv": (lambda d: (d / "train.csv").unlink(), ["train.csv", "missing", "Fix:"]),
    "empty train.csv": (lambda d: (d / "train.csv").write_text(""), ["train.csv", "empty", "Fix:"]),
    "empty test.csv": (lambda d: (d / "test.csv").write_text(""), ["test.csv", "empty", "Fix:"]),
    "wrong header": (
        lambda d: edit_line(d / "train.csv", 1, lambda line: line.replace("pixel5,", "pixel_5,")),
        ["train.csv line 1", "column 7", "pixel_5", "expected 'pixel5'"],
    ),
    "too many columns": (
        lambda d: edit_line(d / "train.csv", 5, lambda line: line + ",0"),
        ["train.csv line 5", "786 values", "785"],
    ),
    "too few columns": (
        lambda d: edit_line(d / "train.csv", 6, lambda line: line.rsplit(",", 1)[0]),
        ["train.csv line 6", "784 values", "785"],
    ),
    "non-numeric pixel": (
        lambda d: edit_line(d / "train.csv", 3, set_value(100, "abc")),
        ["train.csv line 3", "pixel99", "'abc'", "not a number"],
    ),
    "fractional pixel": (
        lambda d: edit_line(d / "test.csv", 4, set_value(10, "1.5")),
        ["test.csv line 4", "pixel10", "not an integer"],
    ),
    "pixel 256": (
        lambda d: edit_line(d / "train.csv", 7, set_value(200, "256")),
        ["train.csv line 7", "pixel199", "256", "0..255"],
    ),
    "pixel -1": (
        lambda d: edit_line(d / "test.csv", 2, set_value(0, "-1")),
        ["test.csv line 2", "pixel0", "-1", "0..255"],
    ),
    "label 10": (
        lambda d: edit_line(d / "train.csv", 9, set_value(0, "10")),
        ["train.csv line 9", "column label", "10", "0..9"],
    ),
    "blank value": (
        lambda d: edit_line(d / "train.csv", 4, set_value(300, "")),
        ["train.csv line 4", "pixel299", "blank"],
    ),
    "test.csv with a label column": (
        lambda d: (d / "test.csv").write_bytes((d / "train.csv").read_bytes()),
        ["test.csv line 1", "'label' column", "swap"],
    ),
    "train.csv without a label column": (
        lambda d: (d / "train.csv").write_bytes((d / "test.csv").read_bytes()),
        ["train.csv line 1", "no 'label' column", "swap"],
    ),
    "sample_submission of another test set": (
        lambda d: edit_line(d / "sample_submission.csv", 3, lambda line: "99,0"),
        ["sample_submission.csv line 3", "99", "does not match"],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_clear_line_and_writes_nothing(case, workdir, sample, capsys):
    folder = write_competition(workdir / "comp", sample, n_train=300, n_test=50)
    before = set(files_under(workdir))
    breaker, words = BAD_INPUTS[case]
    breaker(folder)
    code, err, out = run_validate(capsys, folder)
    assert code == DataError.exit_code
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert "Fix:" in err
    assert "Traceback" not in err
    # Nothing written: no cache, no report, no model, no submission.
    assert set(files_under(workdir)) - before <= {
        folder / name for name in ("train.csv", "test.csv", "sample_submission.csv")
    }
    assert not (workdir / "data").exists()


def test_missing_folder_says_how_to_get_the_data(workdir, capsys):
    code, err, _ = run_validate(capsys, workdir / "nowhere")
    assert code == 3
    assert "no such folder" in err and "make data" in err


def test_corrupt_zip(workdir, capsys):
    archive = workdir / "digit-recognizer.zip"
    archive.write_bytes(b"PK\x03\x04 this is not really a zip file")
    code, err, _ = run_validate(capsys, archive)
    assert code == 3
    assert "digit-recognizer.zip" in err and "not a readable zip" in err and "Fix:" in err


def test_truncated_zip_download(workdir, sample, capsys):
    archive = write_competition(workdir / "comp", sample, as_zip=True)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    code, err, _ = run_validate(capsys, archive)
    assert code == 3 and "digit-recognizer.zip" in err


def test_zip_and_extracted_folder_parse_the_same(workdir, sample):
    folder = write_competition(workdir / "csv", sample)
    archive = write_competition(workdir / "zip", sample, as_zip=True)
    from_csv = data.load(folder, DIGITS, use_cache=False)
    from_zip = data.load(archive.parent, DIGITS, use_cache=False)
    assert (from_csv.train_images == from_zip.train_images).all()
    assert (from_csv.train_labels == sample.train_labels[:600]).all()
    assert from_csv.test_images.shape == (200, 784)
    assert list(from_csv.test_ids[:3]) == [1, 2, 3]


def test_cache_serves_the_second_load_and_an_edit_invalidates_it(workdir, sample):
    folder = write_competition(workdir / "comp", sample, n_train=2000, n_test=500)
    first = data.load(folder, DIGITS)
    assert not first.from_cache
    second = data.load(folder, DIGITS)
    assert second.from_cache  # how fast it is, is the benchmark's business (make bench), not a test's
    assert (second.train_images == first.train_images).all() and (second.test_ids == first.test_ids).all()
    edit_line(folder / "train.csv", 2, set_value(0, str((int(sample.train_labels[0]) + 1) % 10)))
    third = data.load(folder, DIGITS)
    assert not third.from_cache
    assert third.train_labels[0] == (sample.train_labels[0] + 1) % 10


def test_damaged_cache_is_rebuilt(workdir, sample):
    folder = write_competition(workdir / "comp", sample)
    data.load(folder, DIGITS)
    for cached in (workdir / "data" / "cache").glob("*.npz"):
        cached.write_bytes(b"garbage")
    again = data.load(folder, DIGITS)
    assert not again.from_cache and len(again.train_labels) == 600


def test_embedded_sample_is_small_real_and_in_kaggle_layout(sample):
    from conftest import SAMPLE_ZIP

    assert SAMPLE_ZIP.stat().st_size <= 2_000_000
    with zipfile.ZipFile(SAMPLE_ZIP) as archive:
        assert sorted(archive.namelist()) == ["sample_submission.csv", "test.csv", "train.csv"]
        assert archive.read("train.csv").startswith(b"label,pixel0,pixel1,")
        assert archive.read("test.csv").startswith(b"pixel0,pixel1,")
    assert sample.train_images.shape == (5000, 784) and sample.test_images.shape == (1000, 784)
    assert set(sample.train_labels.tolist()) == set(range(10))
