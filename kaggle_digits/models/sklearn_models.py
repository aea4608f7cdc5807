"""scikit-learn baselines: logistic regression, random forest, k-nearest neighbours."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

from .. import lazy
from .base import History, Model


class SklearnModel(Model):
    """Scales pixels to [0, 1], fits the estimator; saved with joblib."""

    def build(self):
        raise NotImplementedError

    def fit(self, images, labels, validation=None, verbose=True) -> History:
        ConvergenceWarning = lazy.sklearn().exceptions.ConvergenceWarning  # noqa: N806 (a class)
        self.estimator = self.build()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            self.estimator.fit(images.astype(np.float32) / 255.0, labels)
        if any(issubclass(warning.category, ConvergenceWarning) for warning in caught):
            # scikit-learn's own warning is a dozen lines; one says the same.
            logging.getLogger("kaggle_digits").warning(
                "%s: the solver stopped before converging (raise -p max_iter=...)", self.name
            )
        return History()

    @property
    def fitted(self) -> bool:
        return getattr(self, "estimator", None) is not None

    def _predict_proba(self, images):
        probabilities = np.zeros((len(images), 10), dtype=np.float32)
        # Columns follow the classes seen in training, which a tiny slice may not cover fully.
        probabilities[:, self.estimator.classes_] = self.estimator.predict_proba(images.astype(np.float32) / 255.0)
        return probabilities

    def save(self, folder: Path) -> None:
        joblib.dump(self.estimator, folder / "model.joblib")

    def _load_weights(self, folder: Path) -> None:
        self.estimator = joblib.load(folder / "model.joblib")


class LogisticRegressionModel(SklearnModel):
    name = "logreg"

    @dataclass
    class Params:
        C: float = 0.1  # inverse regularisation strength; 0.1 beat 1.0 on a holdout
        max_iter: int = 200  # lbfgs iterations; enough to converge on scaled pixels

    @classmethod
    def search_space(cls, trial):
        return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}

    def build(self):
        return lazy.sklearn().linear_model.LogisticRegression(
            C=self.params.C, max_iter=self.params.max_iter, random_state=self.seed
        )


class RandomForestModel(SklearnModel):
    name = "random-forest"

    @dataclass
    class Params:
        n_estimators: int = 200  # Kaggle's own random-forest benchmark used 1000 trees; 200 is within 0.2%
        max_features: str = "sqrt"
        n_jobs: int = -1  # all cores

    @classmethod
    def search_space(cls, trial):
        return {
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
            "max_features": trial.suggest_categorical("max_features", ["sqrt", "log2"]),
        }

    def build(self):
        return lazy.sklearn().ensemble.RandomForestClassifier(
            n_estimators=self.params.n_estimators,
            max_features=self.params.max_features,
            n_jobs=self.params.n_jobs,
            random_state=self.seed,
        )


class KNeighborsModel(SklearnModel):
    name = "knn"

    @dataclass
    class Params:
        n_neighbors: int = 3  # 3 neighbours, distance-weighted: the classic best on MNIST pixels
        weights: str = "distance"
        n_jobs: int = -1

    @classmethod
    def search_space(cls, trial):
        return {
            "n_neighbors": trial.suggest_int("n_neighbors", 1, 10),
            "weights": trial.suggest_categorical("weights", ["distance", "uniform"]),
        }

    def build(self):
        return lazy.sklearn().neighbors.KNeighborsClassifier(
            n_neighbors=self.params.n_neighbors, weights=self.params.weights, n_jobs=self.params.n_jobs
        )
