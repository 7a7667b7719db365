"""An RBF support vector machine for AutoML (imported only when an SVM pipeline is built)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from nbml.automl.metrics import CLASSIFICATION, REGRESSION


class SVMEstimator(BaseEstimator):
    """An RBF SVM whose gamma is a multiple of sklearn's 'scale' value, so one search range fits any data."""

    def __init__(self, task: str = CLASSIFICATION, C: float = 1.0, gamma_factor: float = 1.0,
                 random_state: int | None = None) -> None:
        self.task = task
        self.C = C
        self.gamma_factor = gamma_factor
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> SVMEstimator:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC, SVR

        X = np.asarray(X, dtype=float)
        var = float(X.var()) or 1.0
        gamma = self.gamma_factor / (X.shape[1] * var)
        if self.task == CLASSIFICATION:
            # Platt scaling on internal folds, as SVC(probability=True) did before its deprecation
            self.model_ = CalibratedClassifierCV(SVC(C=self.C, gamma=gamma, random_state=self.random_state),
                                                 ensemble=False, cv=3)
        else:
            self.model_ = SVR(C=self.C, gamma=gamma)
        self.model_.fit(X, y)
        if self.task == CLASSIFICATION:
            self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.model_.predict(np.asarray(X, dtype=float))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(np.asarray(X, dtype=float))


class SVMClassifier(ClassifierMixin, SVMEstimator):
    """SVMEstimator for classification (the mixin gives sklearn's estimator type)."""


class SVMRegressor(RegressorMixin, SVMEstimator):
    """SVMEstimator for regression."""

    def __init__(self, task: str = REGRESSION, C: float = 1.0, gamma_factor: float = 1.0,
                 random_state: int | None = None) -> None:
        super().__init__(task, C, gamma_factor, random_state)
