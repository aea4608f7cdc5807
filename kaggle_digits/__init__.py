"""kaggle-digits: a toolkit for Kaggle's Digit Recognizer and other 28x28 CSV tasks."""

from importlib import metadata

try:  # pyproject.toml is the one place the version is written
    __version__ = metadata.version("kaggle-digits")
except metadata.PackageNotFoundError:  # a source tree that was never installed (a Kaggle kernel's bundle)
    __version__ = "unknown"
