"""Early stopping inside one fit, for the boosting algorithms AutoML searches (imports scikit-learn)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split

from nbml.automl.estimators import EARLY_STOP_FRACTION, EARLY_STOP_MIN_VALID, EARLY_STOP_PATIENCE, ROUNDS


class EarlyStopped(BaseEstimator):  # type: ignore[misc]
    """A boosting estimator fitted with its own early stopping on a validation split of the rows it is given.

    Used for the cross-validation folds of an iteration: ``rounds_`` is how many rounds the validation
    split wanted, and the model refitted on all rows builds that many (`with_rounds`), without a split.
    On too few rows (a validation split under `EARLY_STOP_MIN_VALID`) it fits the estimator as it is.
    """

    def __init__(self, algo: str, estimator: Any, seed: int = 0) -> None:
        self.algo = algo
        self.estimator = estimator
        self.seed = seed

    @property
    def classes_(self) -> Any:
        return self.estimator.classes_

    def fit(self, X: Any, y: Any) -> EarlyStopped:
        est, n = self.estimator, len(y)
        self.rounds_: int | None = None
        total = int(est.get_params()[ROUNDS[self.algo]])
        if n * EARLY_STOP_FRACTION < EARLY_STOP_MIN_VALID or total < 2 * EARLY_STOP_PATIENCE:
            est.fit(X, y)
            return self
        if self.algo == "HistGradientBoosting":
            est.set_params(early_stopping=True, validation_fraction=EARLY_STOP_FRACTION,
                           n_iter_no_change=EARLY_STOP_PATIENCE)
            est.fit(X, y)
            self.rounds_ = int(est.n_iter_)
            return self
        y = np.asarray(y)
        is_cls = hasattr(est, "predict_proba")
        counts = np.bincount(y.astype(int)) if is_cls else None
        stratify = y if counts is not None and counts[counts > 0].min() >= 2 else None
        tr, va = train_test_split(np.arange(n), test_size=EARLY_STOP_FRACTION, random_state=self.seed,
                                  stratify=stratify)
        if counts is not None and len(np.unique(y[tr])) != len(np.unique(y)):
            est.fit(X, y)  # a class only in the validation split: the boosters' label checks would fail
            return self
        rows = getattr(X, "iloc", X)
        X_tr, X_va = rows[tr], rows[va]
        if self.algo == "LightGBM":
            import lightgbm as lgb

            with warnings.catch_warnings():  # eval_set: renamed in recent LightGBM, the old name still works
                warnings.simplefilter("ignore")
                est.fit(X_tr, y[tr], eval_set=[(X_va, y[va])],
                        callbacks=[lgb.early_stopping(EARLY_STOP_PATIENCE, first_metric_only=True, verbose=False)])
            self.rounds_ = int(est.best_iteration_ or total)
        else:  # XGBoost
            est.set_params(early_stopping_rounds=EARLY_STOP_PATIENCE)
            est.fit(X_tr, y[tr], eval_set=[(X_va, y[va])], verbose=False)
            self.rounds_ = int(est.best_iteration) + 1
        return self

    def predict(self, X: Any) -> Any:
        return self.estimator.predict(X)

    def predict_proba(self, X: Any) -> Any:
        return self.estimator.predict_proba(X)
