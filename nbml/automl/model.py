"""The fitted models AutoML returns: one pipeline, or an ensemble of pipelines.

Labels are encoded to 0..k-1 before fitting (XGBoost needs that) and decoded by `predict`, so a user's
string or integer labels come back as they went in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from nbml.automl import estimators
from nbml.automl.estimators import pipeline_name  # noqa: F401  (where it used to live)
from nbml.automl.featurize import AutoFeaturizer, make_scaler
from nbml.automl.metrics import CLASSIFICATION


def make_pipeline(
    task: str, algorithm: str, scaler: str, params: dict[str, Any], featurize: bool, n_jobs: int = 1, seed: int = 0,
    early_stopping: bool = False,
) -> Pipeline:
    """featurizer → scaler → estimator, as an unfitted sklearn Pipeline (`early_stopping`: see
    `nbml.automl.estimators.build`)."""
    return Pipeline(
        [
            ("datatransformer", AutoFeaturizer(enabled=featurize)),
            ("scaler", make_scaler(scaler)),
            ("estimator", estimators.build(algorithm, task, params, n_jobs=n_jobs, seed=seed,
                                            early_stopping=early_stopping)),
        ]
    )


class AutoMLModel:
    """A fitted pipeline with the task's label handling; what `get_output()` returns for one iteration.

    Attributes
    ----------
    pipeline : sklearn.pipeline.Pipeline
        The fitted featurizer, scaler and estimator (``.steps`` shows them), refitted on all training rows.
    classes_ : numpy.ndarray or None
        The class labels in the column order of `predict_proba` (classification).
    fold_pipelines : list of sklearn.pipeline.Pipeline
        On small data, the same pipeline as fitted on each cross-validation fold's training rows: predictions
        average them with `pipeline` (bagging; less variance than one fit on a few hundred rows). Empty
        otherwise.
    """

    def __init__(self, task: str, pipeline: Pipeline, classes: np.ndarray | None = None) -> None:
        self.task = task
        self.pipeline = pipeline
        self.classes_: Any = classes
        self.fold_pipelines: list[Pipeline] = []

    def bag(self, fold_models: list[AutoMLModel]) -> AutoMLModel:
        """Predict with the average of this model and `fold_models` (the same pipeline fitted on each CV fold)."""
        self.fold_pipelines = [m.pipeline for m in fold_models]
        return self

    @property
    def steps(self) -> list[tuple[str, Any]]:
        return self.pipeline.steps

    @property
    def named_steps(self) -> Any:
        """The pipeline's steps by name: ``datatransformer``, ``scaler``, ``estimator`` (sklearn's Bunch)."""
        return self.pipeline.named_steps

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The pipeline's hyperparameters (sklearn's ``Pipeline.get_params``)."""
        return self.pipeline.get_params(deep=deep)  # type: ignore[no-any-return]

    def fit(self, X: Any, y: Any) -> AutoMLModel:
        """Refit the pipeline on `X`, `y`; fold fits kept from the search no longer apply and are dropped."""
        self.fold_pipelines = []
        y = np.asarray(y)
        if self.task == CLASSIFICATION:
            if self.classes_ is None:
                self.classes_ = np.unique(y)
            codes = np.searchsorted(self.classes_, y)
            self.pipeline.fit(X, codes)
        else:
            self.pipeline.fit(X, y.astype(float))
        return self

    def _pipelines(self) -> list[Pipeline]:
        return [self.pipeline, *getattr(self, "fold_pipelines", [])]  # models pickled before bagging have none

    def _proba(self, pipeline: Pipeline, X: Any) -> np.ndarray:
        proba = np.asarray(pipeline.predict_proba(X), dtype=float)
        fitted = getattr(pipeline, "classes_", None)
        if fitted is not None and len(fitted) != len(self.classes_):
            # a cross-validation fold lacked some class: put its columns back where they belong
            full = np.zeros((proba.shape[0], len(self.classes_)))
            full[:, np.asarray(fitted, dtype=int)] = proba
            proba = full
        return proba

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of `classes_`."""
        if self.task != CLASSIFICATION:
            raise AttributeError("predict_proba is only available for classification models")
        probas = [self._proba(p, X) for p in self._pipelines()]
        return probas[0] if len(probas) == 1 else np.mean(probas, axis=0)

    def raw_predictions(self, X: Any) -> np.ndarray:
        """Probabilities (classification) or values (regression): what metrics and ensembles use."""
        if self.task == CLASSIFICATION:
            return self.predict_proba(X)
        values = [np.asarray(p.predict(X), dtype=float) for p in self._pipelines()]
        return values[0] if len(values) == 1 else np.mean(values, axis=0)

    def predict(self, X: Any) -> np.ndarray:
        if self.task == CLASSIFICATION:
            return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]
        return self.raw_predictions(X)

    def __repr__(self) -> str:
        names = " → ".join(type(s).__name__ for _, s in self.pipeline.steps)
        bagged = getattr(self, "fold_pipelines", [])
        return f"AutoMLModel({self.task}: {names}{f', bagged with {len(bagged)} fold fits' if bagged else ''})"


class EnsembleModel:
    """A weighted blend (voting) of fitted models, or a meta-learner over their predictions (stacking)."""

    def __init__(self, task: str, models: list[AutoMLModel], weights: list[float], classes: np.ndarray | None,
                 meta: Any = None, kind: str = "VotingEnsemble") -> None:
        self.task = task
        self.models = models
        self.weights = [float(w) for w in weights]
        self.classes_ = classes
        self.meta = meta
        self.kind = kind
        self.member_iterations: list[int] = []

    @property
    def steps(self) -> list[tuple[str, Any]]:
        name = "stackensemble" if self.meta is not None else "prefittedsoftvotingensemble"
        return [(name, self)]

    @property
    def named_steps(self) -> dict[str, Any]:
        return dict(self.steps)

    @property
    def estimators(self) -> list[tuple[str, AutoMLModel]]:
        """``(name, model)`` per member, named by its iteration where known (the SDK's ensemble attribute)."""
        names = [str(i) for i in self.member_iterations] if len(self.member_iterations) == len(self.models) else \
            [str(i) for i in range(len(self.models))]
        return list(zip(names, self.models, strict=True))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ensemble's settings: members, weights, and the meta-learner's parameters when stacking."""
        params: dict[str, Any] = {"kind": self.kind, "estimators": [n for n, _ in self.estimators],
                                  "weights": list(self.weights)}
        if self.meta is not None:
            params["meta_learner"] = self.meta
            if deep and hasattr(self.meta, "get_params"):
                params.update({f"meta_learner__{k}": v for k, v in self.meta.get_params().items()})
        return params

    def _stacked(self, X: Any) -> list[np.ndarray]:
        return [m.raw_predictions(X) for m in self.models]

    def raw_predictions(self, X: Any) -> np.ndarray:
        preds = self._stacked(X)
        if self.meta is not None:
            features = stack_features(self.task, preds)
            if self.task == CLASSIFICATION:
                return np.asarray(self.meta.predict_proba(features), dtype=float)
            return np.asarray(self.meta.predict(features), dtype=float)
        total = sum(self.weights)
        blend: np.ndarray = sum(w * p for w, p in zip(self.weights, preds, strict=True)) / total  # type: ignore[assignment]
        return blend

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.task != CLASSIFICATION:
            raise AttributeError("predict_proba is only available for classification models")
        return self.raw_predictions(X)

    def predict(self, X: Any) -> np.ndarray:
        raw = self.raw_predictions(X)
        if self.task == CLASSIFICATION:
            return np.asarray(self.classes_)[np.argmax(raw, axis=1)]
        return raw

    def __repr__(self) -> str:
        return f"{self.kind}({len(self.models)} models, weights={[round(w, 3) for w in self.weights]})"


def stack_features(task: str, preds: list[np.ndarray]) -> np.ndarray:
    """The meta-learner's input: each model's probabilities (minus one redundant column) or values."""
    if task == CLASSIFICATION:
        return np.hstack([p[:, 1:] for p in preds])
    return np.column_stack(preds)
