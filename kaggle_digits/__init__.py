"""kaggle-digits: a toolkit for Kaggle's Digit Recognizer and other 28x28 CSV tasks."""

__version__ = "0.1.0"
