"""Read the competition files exactly as Kaggle ships them, refuse anything else, cache parsed arrays.

Validation is strict and happens before any training: a bad file is reported as one line naming the
file, the line, the column and the fix. Parsed arrays are cached by the sources' checksum, so a
second run loads in a fraction of a second and an edited file is parsed again.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from . import config, helpers, lazy
from .config import Task
from .errors import DataError

CACHE_FORMAT = 1  # bump when the cached arrays change meaning
REFETCH_HINT = "re-download it with 'make data FORCE=1' (or 'kaggle-digits fetch --force')"


@dataclass
class Dataset:
    """The parsed competition: pixels as uint8 rows of 784, labels as uint8."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_ids: np.ndarray  # ImageId 1..N, or the test file's id column
    test_labels: np.ndarray | None  # only where the task's test file is labeled (Fashion-MNIST)
    checksum: str
    from_cache: bool = False


@dataclass
class _Member:
    """One CSV, in a folder or inside the zip; `open` gives a fresh binary stream each time."""

    display: str
    open: Callable[[], IO[bytes]]


def find_sources(data_dir: Path, task: Task) -> tuple[list[Path], dict[str, _Member | None]]:
    """Locate the task's CSVs: extracted files win over `<name>.zip`; `data_dir` may be the zip itself."""
    data_dir = Path(data_dir)
    wanted = [task.train_file, task.test_file] + ([task.sample_submission_file] if task.sample_submission_file else [])
    if data_dir.is_file():
        return _zip_sources(data_dir, wanted)
    if not data_dir.exists():
        raise DataError(
            f"{data_dir}: no such folder. Fix: run 'make data' to download the competition, "
            f"or pass --data-dir (Make: DATA_DIR=) pointing at the folder or zip that holds {task.train_file}"
        )
    if (data_dir / task.train_file).exists() or (data_dir / task.test_file).exists():
        files = {name: _file_member(data_dir / name) for name in wanted}
        for name in (task.train_file, task.test_file):
            if files[name] is None:
                raise DataError(
                    f"{data_dir / name}: file is missing. Fix: {REFETCH_HINT}, or copy it next to "
                    f"{task.train_file if name != task.train_file else task.test_file}"
                )
        return [data_dir / name for name in wanted if files[name] is not None], files
    archives = (
        [data_dir / task.archive_name] if (data_dir / task.archive_name).exists() else sorted(data_dir.glob("*.zip"))
    )
    if len(archives) == 1:
        return _zip_sources(archives[0], wanted)
    raise DataError(
        f"{data_dir}: no {task.train_file}/{task.test_file} and no {task.archive_name} found. "
        f"Fix: run 'make data' (or 'kaggle-digits fetch') to download them, or pass --data-dir"
    )


def _file_member(path: Path) -> _Member | None:
    if not path.exists():
        return None
    return _Member(str(path), lambda: open(path, "rb"))


def _zip_sources(archive: Path, wanted: list[str]) -> tuple[list[Path], dict[str, _Member | None]]:
    try:
        with zipfile.ZipFile(archive) as zf:
            check_member_sizes(archive, zf)
            names = {Path(info.filename).name: info.filename for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"{archive}: not a readable zip ({error}). Fix: delete it and {REFETCH_HINT}") from None

    def member(name: str) -> _Member | None:
        inner = names.get(name)
        if inner is None:
            return None

        def open_member() -> IO[bytes]:
            return zipfile.ZipFile(archive).open(inner)

        return _Member(f"{archive}:{name}", open_member)

    files = {name: member(name) for name in wanted}
    for name in wanted[:2]:
        if files[name] is None:
            raise DataError(f"{archive}: has no {name} inside. Fix: delete the zip and {REFETCH_HINT}")
    return [archive], files


# Digit Recognizer's train.csv is 73 MB; a member declared larger than this is refused before it is read
# (zipfile never inflates a member past its declared size, so the declared sizes bound what a zip bomb yields).
MAX_MEMBER_BYTES = 1 << 30
MAX_ARCHIVE_BYTES = 2 << 30


def check_member_sizes(archive: Path, zf: zipfile.ZipFile) -> None:
    members = [info for info in zf.infolist() if not info.is_dir()]
    largest = max(members, key=lambda info: info.file_size, default=None)
    total = sum(info.file_size for info in members)
    if (largest and largest.file_size > MAX_MEMBER_BYTES) or total > MAX_ARCHIVE_BYTES:
        raise DataError(
            f"{archive}: inflates to {total / 1e9:.1f} GB ({largest.filename if largest else ''}: "
            f"{(largest.file_size if largest else 0) / 1e9:.1f} GB), past the {MAX_MEMBER_BYTES >> 30} GiB a member "
            f"may have; "
            f"nothing was extracted. Fix: delete it and {REFETCH_HINT}"
        )


def checksum(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load(data_dir: Path, task: Task | None = None, cache_dir: Path | None = None, use_cache: bool = True) -> Dataset:
    """Validate and parse the task's files under `data_dir`, served from the cache when unchanged."""
    task = task or config.BUILTIN_TASKS[config.DEFAULT_TASK]
    cache_dir = Path(cache_dir or config.CACHE_DIR)
    paths, members = find_sources(Path(data_dir), task)
    for path in paths:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty. Fix: {REFETCH_HINT}")
    digest = checksum(paths)
    cache_path = cache_dir / f"{task.name}-v{CACHE_FORMAT}-{digest[:24]}.npz"
    if use_cache and cache_path.exists():
        try:
            with np.load(cache_path) as cached:
                arrays = {key: cached[key] for key in cached.files}
            return _dataset(arrays, digest, from_cache=True)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            cache_path.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    arrays = parse(members, task)
    if use_cache:
        # (numpy's stubs type savez's **kwds as bool)
        helpers.write_atomically(cache_path, lambda handle: np.savez(handle, **arrays))  # type: ignore[arg-type]
    return _dataset(arrays, digest, from_cache=False)


def _dataset(arrays: dict[str, np.ndarray], digest: str, from_cache: bool) -> Dataset:
    return Dataset(
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"],
        test_images=arrays["test_images"],
        test_ids=arrays["test_ids"],
        test_labels=arrays.get("test_labels"),
        checksum=digest,
        from_cache=from_cache,
    )


def parse(members: dict[str, _Member | None], task: Task) -> dict[str, np.ndarray]:
    """Parse and validate every file; returns the arrays that `Dataset` is made of."""
    train_member, test_member = members[task.train_file], members[task.test_file]
    assert train_member and test_member, "find_sources checked that both files are there"
    train = _read_table(train_member, task.train_header, task, labeled=True)
    test = _read_table(test_member, task.test_header, task, labeled=task.test_labeled)
    pixels = task.pixel_columns
    arrays = {
        "train_images": train[pixels].to_numpy(dtype=np.uint8),
        "train_labels": train[task.label_column].to_numpy(dtype=np.uint8),
        "test_images": test[pixels].to_numpy(dtype=np.uint8),
    }
    if task.test_id_column:
        arrays["test_ids"] = test[task.test_id_column].to_numpy(dtype=np.int64)
    else:
        arrays["test_ids"] = np.arange(1, len(test) + 1, dtype=np.int64)
    if task.test_labeled:
        arrays["test_labels"] = test[task.label_column].to_numpy(dtype=np.uint8)
    sample = members.get(task.sample_submission_file) if task.sample_submission_file else None
    if sample is not None and task.submission_columns:
        _check_sample_submission(sample, task, arrays["test_ids"])
    return arrays


def _read_table(member: _Member, header: list[str], task: Task, labeled: bool):
    pd = lazy.pandas()

    name = member.display
    try:
        with member.open() as handle:
            first_line = handle.readline().decode("utf-8", errors="replace").strip()
        if not first_line:
            raise DataError(f"{name}: file is empty. Fix: {REFETCH_HINT}")
        _check_header(first_line.split(","), header, name, task, labeled)
        with member.open() as handle:
            table = pd.read_csv(handle, dtype=None, engine="c", skip_blank_lines=False)
    except pd.errors.ParserError as error:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if match:
            expected, line, seen = match.groups()
            raise DataError(
                f"{name} line {line}: {seen} values where the header has {expected}. "
                f"Fix: every row needs exactly {expected} comma-separated values; {REFETCH_HINT}"
            ) from None
        raise DataError(f"{name}: not a valid CSV ({error}). Fix: {REFETCH_HINT}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: file is empty. Fix: {REFETCH_HINT}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DataError(f"{name}: cannot be read ({error}). Fix: delete it and {REFETCH_HINT}") from None
    if len(table) == 0:
        raise DataError(f"{name}: has a header but no rows. Fix: {REFETCH_HINT}")
    _check_values(table, member, header, task)
    return table


def _check_header(found: list[str], expected: list[str], name: str, task: Task, labeled: bool) -> None:
    if found == expected:
        return
    label = task.label_column
    if found and found[0] == label and not labeled:
        raise DataError(
            f"{name} line 1: has a '{label}' column, but this file must be unlabeled "
            f"(the test file has no labels on Kaggle). Fix: did you swap the train and test files?"
        )
    if labeled and found and found[0] != label and label not in found:
        raise DataError(
            f"{name} line 1: no '{label}' column, but this file must start with it. "
            f"Fix: did you swap the train and test files? {REFETCH_HINT}"
        )
    if len(found) != len(expected):
        raise DataError(
            f"{name} line 1: header has {len(found)} columns, expected {len(expected)} "
            f"({expected[0]},{expected[1]},...,{expected[-1]}). Fix: {REFETCH_HINT}"
        )
    position = next(index for index, (a, b) in enumerate(zip(found, expected, strict=False)) if a != b)
    raise DataError(
        f"{name} line 1, column {position + 1}: header says '{found[position]}', expected '{expected[position]}'. "
        f"Fix: the header must be exactly {expected[0]},{expected[1]},...,{expected[-1]}; {REFETCH_HINT}"
    )


def _check_values(table, member: _Member, header: list[str], task: Task) -> None:
    """Integers only, no blanks, pixels 0..255, labels 0..9; the first offence is reported."""
    pd = lazy.pandas()

    name = member.display
    bad_types = [column for column in table.columns if not pd.api.types.is_integer_dtype(table[column].dtype)]
    if bad_types:
        numeric = table[bad_types].apply(pd.to_numeric, errors="coerce")
        blank = table[bad_types].isna()
        not_number = numeric.isna() & ~blank
        not_integer = numeric.notna() & (numeric != numeric.round())
        for mask, problem in ((blank, "blank"), (not_number, "not a number"), (not_integer, "not an integer")):
            rows = np.flatnonzero(mask.to_numpy().any(axis=1))
            if len(rows):
                row = rows[0]
                column = bad_types[int(np.flatnonzero(mask.to_numpy()[row])[0])]
                line = row + 2  # the header is line 1
                if problem == "blank":
                    count = _field_count(member, line)
                    if count != len(header):
                        raise DataError(
                            f"{name} line {line}: {count} values where the header has {len(header)}. "
                            f"Fix: every row needs exactly {len(header)} comma-separated values; {REFETCH_HINT}"
                        )
                    raise DataError(
                        f"{name} line {line}, column {column}: value is blank. "
                        f"Fix: every pixel and label must be an integer; {REFETCH_HINT}"
                    )
                value = table[column].iloc[row]
                raise DataError(
                    f"{name} line {line}, column {column}: '{value}' is {problem}. "
                    f"Fix: every pixel and label must be an integer; {REFETCH_HINT}"
                )
    ranges = [(task.pixel_columns, 0, 255, "pixels must be 0..255")]
    if task.label_column in table.columns:
        ranges.insert(
            0, ([task.label_column], 0, len(task.class_names) - 1, f"labels must be 0..{len(task.class_names) - 1}")
        )
    for columns, low, high, rule in ranges:
        values = table[columns].to_numpy()
        outside = (values < low) | (values > high)
        if outside.any():
            row, position = map(int, np.argwhere(outside)[0])
            raise DataError(
                f"{name} line {row + 2}, column {columns[position]}: value {values[row, position]} is out of range. "
                f"Fix: {rule}; {REFETCH_HINT}"
            )


def _field_count(member: _Member, line_number: int) -> int:
    with member.open() as handle:
        for number, raw in enumerate(io.TextIOWrapper(handle, encoding="utf-8", errors="replace"), start=1):
            if number == line_number:
                return len(raw.rstrip("\r\n").split(","))
    return 0


def _check_sample_submission(member: _Member, task: Task, test_ids: np.ndarray) -> None:
    pd = lazy.pandas()

    name = member.display
    try:
        with member.open() as handle:
            sample = pd.read_csv(handle)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, zipfile.BadZipFile, OSError) as error:
        raise DataError(f"{name}: cannot be read ({error}). Fix: {REFETCH_HINT}") from None
    expected = list(task.submission_columns or ())
    if list(sample.columns) != expected:
        raise DataError(
            f"{name} line 1: header is {','.join(map(str, sample.columns))}, expected {','.join(expected)}. Fix: "
            f"{REFETCH_HINT}"
        )
    if len(sample) != len(test_ids):
        raise DataError(
            f"{name}: {len(sample)} rows, but {task.test_file} has {len(test_ids)}: the two files do not belong "
            f"together. "
            f"Fix: {REFETCH_HINT}"
        )
    ids = sample[expected[0]].to_numpy()
    if not np.array_equal(ids, test_ids):
        row = int(np.flatnonzero(ids != test_ids)[0])
        raise DataError(
            f"{name} line {row + 2}: {expected[0]} {ids[row]} does not match test row {row + 1} ({test_ids[row]}). "
            f"Fix: {REFETCH_HINT}"
        )
