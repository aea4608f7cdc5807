"""Write labeled 28x28 rows out in a task's exact Kaggle layout (the zip a competition download is).

The embedded sample, the local Kaggle server's competitions and the tests' generated data sets are
all made here, so that each of them matches what `data.py` accepts byte for byte.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from .config import Task
from .helpers import write_atomically


def csv_bytes(header: list[str], rows: np.ndarray) -> bytes:
    """Integer rows as Kaggle writes them: a header line, comma-separated, '\\n' line ends."""
    buffer = io.StringIO()
    buffer.write(",".join(header) + "\n")
    np.savetxt(buffer, rows, fmt="%d", delimiter=",")
    return buffer.getvalue().encode()


def split_holdout(labels: np.ndarray, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled indices into (train, test), the way Kaggle split MNIST: at random, seeded."""
    order = np.random.default_rng(seed).permutation(len(labels))
    return np.sort(order[test_size:]), np.sort(order[:test_size])


def task_files(
    task: Task,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray | None = None,
) -> dict[str, bytes]:
    """The task's files as bytes: train, test (labeled only where the task's is), sample submission."""
    files = {task.train_file: csv_bytes(task.train_header, np.column_stack([train_labels, train_images]))}
    test_ids = np.arange(1, len(test_images) + 1) if not task.test_id_column else np.arange(len(test_images))
    if task.test_labeled:
        assert test_labels is not None, f"{task.name}'s test file is labeled"
        test_rows = np.column_stack([test_labels, test_images])
    elif task.test_id_column:
        test_rows = np.column_stack([test_ids, test_images])
    else:
        test_rows = test_images
    files[task.test_file] = csv_bytes(task.test_header, test_rows)
    if task.sample_submission_file and task.submission_columns:
        files[task.sample_submission_file] = csv_bytes(
            list(task.submission_columns), np.column_stack([test_ids, np.zeros(len(test_ids), dtype=int)])
        )
    return files


def write_zip(path: Path, files: dict[str, bytes]) -> None:
    def write(handle) -> None:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for name, content in files.items():
                archive.writestr(name, content)

    write_atomically(Path(path), write)
