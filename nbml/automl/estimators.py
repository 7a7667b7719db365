"""The estimators AutoML searches over: their search spaces, cheap starting points, and construction.

Each algorithm has a name (used in pipeline names, `allowed_models` / `blocked_models` and the
`run_algorithm` property), the scalers it may follow, an Optuna search space (parameter names are
prefixed with the algorithm so spaces stay disjoint: TPE's grouped sampler treats each as its own group)
and a default configuration that the search tries first, cheapest and strongest first, as FLAML does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from nbml.automl.metrics import CLASSIFICATION, REGRESSION

#: the scalers a pipeline may start with (the classes are in `nbml.automl.featurize`); this module imports no
#: scikit-learn, so the coordinator (a supervisor process) starts without it
SCALER_NAMES = ("StandardScalerWrapper", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "Normalizer")

Space = dict[str, tuple[str, Any, Any, bool]]  # name -> ("int"|"float", low, high, log) or ("cat", choices,..)


@dataclasses.dataclass(frozen=True)
class Algorithm:
    name: str
    tasks: tuple[str, ...]
    scale_sensitive: bool
    max_rows: int | None = None


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("LightGBM", (CLASSIFICATION, REGRESSION), False),
        Algorithm("SVM", (CLASSIFICATION, REGRESSION), True, max_rows=20_000),
        Algorithm("LogisticRegression", (CLASSIFICATION,), True),
        Algorithm("ElasticNet", (REGRESSION,), True),
        Algorithm("ExtremeRandomTrees", (CLASSIFICATION, REGRESSION), False),
        Algorithm("XGBoost", (CLASSIFICATION, REGRESSION), False),
        Algorithm("RandomForest", (CLASSIFICATION, REGRESSION), False),
        Algorithm("KNN", (CLASSIFICATION, REGRESSION), True, max_rows=200_000),
        Algorithm("HistGradientBoosting", (CLASSIFICATION, REGRESSION), False),
        Algorithm("SGD", (CLASSIFICATION, REGRESSION), True),
        Algorithm("DecisionTree", (CLASSIFICATION, REGRESSION), False),
    )
}

#: names users may also write (the SDK's spellings)
ALIASES = {
    "XGBoostClassifier": "XGBoost", "XGBoostRegressor": "XGBoost", "GradientBoosting": "HistGradientBoosting",
    "LinearSVM": "SVM", "SVC": "SVM", "SVR": "SVM", "kNN": "KNN", "DT": "DecisionTree",
    "ExtraTrees": "ExtremeRandomTrees", "RF": "RandomForest", "LogisticRegressionCV": "LogisticRegression",
    "LightGBMClassifier": "LightGBM", "LightGBMRegressor": "LightGBM", "Lasso": "ElasticNet",
    "Ridge": "ElasticNet", "LinearRegression": "ElasticNet", "LassoLars": "ElasticNet",
}


def canonical(name: str) -> str:
    """The algorithm a user-given model name refers to; ValueError listing the choices if none."""
    if name in ALGORITHMS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    lower = {k.lower(): k for k in (*ALGORITHMS, *ALIASES)}
    if name.lower() in lower:
        return canonical(lower[name.lower()])
    raise ValueError(f"unknown model {name!r}; known models: {', '.join(ALGORITHMS)}.")


def algorithms_for(task: str, n_rows: int, allowed: list[str] | None, blocked: list[str] | None) -> list[str]:
    """The algorithms to search, in the order their starting configurations are tried."""
    names = [a.name for a in ALGORITHMS.values() if task in a.tasks and (a.max_rows is None or n_rows <= a.max_rows)]
    if allowed:
        keep = {canonical(n) for n in allowed}
        names = [n for n in names if n in keep]
    if blocked:
        drop = {canonical(n) for n in blocked}
        names = [n for n in names if n not in drop]
    return names


def scalers_for(algo: str) -> tuple[str, ...]:
    # trees ignore scaling: a single choice keeps the search from spending trials on it
    return SCALER_NAMES if ALGORITHMS[algo].scale_sensitive else ("MaxAbsScaler",)


def space(algo: str, task: str, n_rows: int) -> Space:
    """The search space of one algorithm (unprefixed parameter names)."""
    cls = task == CLASSIFICATION
    if algo == "LightGBM":
        return {"n_estimators": ("int", 10, 1000, True), "num_leaves": ("int", 4, 256, True),
                "min_child_samples": ("int", 2, 100, True), "learning_rate": ("float", 0.01, 0.5, True),
                "colsample_bytree": ("float", 0.4, 1.0, False), "subsample": ("float", 0.5, 1.0, False),
                "reg_alpha": ("float", 1e-4, 10.0, True), "reg_lambda": ("float", 1e-3, 10.0, True)}
    if algo == "XGBoost":
        return {"n_estimators": ("int", 10, 1000, True), "max_depth": ("int", 2, 12, False),
                "learning_rate": ("float", 0.01, 0.5, True), "subsample": ("float", 0.5, 1.0, False),
                "colsample_bytree": ("float", 0.4, 1.0, False), "min_child_weight": ("float", 0.5, 20.0, True),
                "reg_lambda": ("float", 1e-3, 10.0, True)}
    if algo in ("RandomForest", "ExtremeRandomTrees"):
        return {"n_estimators": ("int", 20, 500, True), "max_features": ("float", 0.05, 1.0, False),
                "min_samples_leaf": ("int", 1, 20, True),
                "criterion": ("cat", ["gini", "entropy"] if cls else ["squared_error"], None, False)}
    if algo == "HistGradientBoosting":
        return {"max_iter": ("int", 20, 500, True), "learning_rate": ("float", 0.01, 0.5, True),
                "max_leaf_nodes": ("int", 4, 128, True), "min_samples_leaf": ("int", 2, 100, True),
                "l2_regularization": ("float", 1e-4, 10.0, True)}
    if algo == "LogisticRegression":
        return {"C": ("float", 1e-3, 1e3, True)}
    if algo == "ElasticNet":
        return {"alpha": ("float", 1e-5, 10.0, True), "l1_ratio": ("float", 0.0, 1.0, False)}
    if algo == "SGD":
        losses = ["log_loss", "modified_huber"] if cls else ["squared_error", "huber"]
        return {"alpha": ("float", 1e-6, 1e-1, True), "loss": ("cat", losses, None, False),
                "penalty": ("cat", ["l2", "l1", "elasticnet"], None, False)}
    if algo == "KNN":
        return {"n_neighbors": ("int", 1, max(2, min(50, n_rows // 3)), True),
                "weights": ("cat", ["uniform", "distance"], None, False)}
    if algo == "DecisionTree":
        return {"max_depth": ("int", 2, 32, True), "min_samples_leaf": ("int", 1, 50, True),
                "criterion": ("cat", ["gini", "entropy"] if cls else ["squared_error", "absolute_error"], None,
                              False)}
    if algo == "SVM":
        return {"C": ("float", 1e-2, 1e3, True), "gamma_factor": ("float", 1e-2, 1e2, True)}
    raise ValueError(f"unknown algorithm {algo!r}")


def default_config(algo: str, task: str, n_rows: int, n_features: int) -> dict[str, Any]:
    """The configuration tried first: each library's sensible defaults, inside the search space."""
    cls = task == CLASSIFICATION
    sqrt_share = min(1.0, max(0.05, 1.0 / math.sqrt(max(n_features, 1))))
    defaults: dict[str, dict[str, Any]] = {
        "LightGBM": {"n_estimators": 100, "num_leaves": 31, "min_child_samples": min(20, max(2, n_rows // 20)),
                     "learning_rate": 0.1, "colsample_bytree": 1.0, "subsample": 1.0, "reg_alpha": 1e-4,
                     "reg_lambda": 1e-3},
        "XGBoost": {"n_estimators": 100, "max_depth": 6, "learning_rate": 0.1, "subsample": 1.0,
                    "colsample_bytree": 1.0, "min_child_weight": 1.0, "reg_lambda": 1.0},
        "RandomForest": {"n_estimators": 100, "max_features": sqrt_share if cls else 1.0, "min_samples_leaf": 1,
                         "criterion": "gini" if cls else "squared_error"},
        "ExtremeRandomTrees": {"n_estimators": 100, "max_features": sqrt_share if cls else 1.0,
                               "min_samples_leaf": 1, "criterion": "gini" if cls else "squared_error"},
        "HistGradientBoosting": {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31,
                                 "min_samples_leaf": min(20, max(2, n_rows // 20)), "l2_regularization": 1e-4},
        "LogisticRegression": {"C": 1.0},
        "ElasticNet": {"alpha": 1e-3, "l1_ratio": 0.5},
        "SGD": {"alpha": 1e-4, "loss": "modified_huber" if cls else "squared_error", "penalty": "l2"},
        "KNN": {"n_neighbors": min(5, max(1, n_rows // 3)), "weights": "distance"},
        "DecisionTree": {"max_depth": 8, "min_samples_leaf": 2, "criterion": "gini" if cls else "squared_error"},
        "SVM": {"C": 1.0, "gamma_factor": 1.0},
    }
    return dict(defaults[algo])


def _lightgbm(cls: bool, p: dict[str, Any], n_jobs: int, seed: int) -> Any:
    import lightgbm as lgb

    est = lgb.LGBMClassifier if cls else lgb.LGBMRegressor
    return est(**p, subsample_freq=1 if p.get("subsample", 1.0) < 1.0 else 0, n_jobs=n_jobs, random_state=seed,
               verbose=-1)


def _xgboost(cls: bool, p: dict[str, Any], n_jobs: int, seed: int) -> Any:
    import xgboost as xgb

    est = xgb.XGBClassifier if cls else xgb.XGBRegressor
    return est(**p, tree_method="hist", n_jobs=n_jobs, random_state=seed, verbosity=0)


def _sklearn(algo: str, cls: bool, p: dict[str, Any], n_jobs: int, seed: int) -> Any:
    from sklearn import ensemble, linear_model, neighbors, tree

    if algo == "RandomForest":
        est = ensemble.RandomForestClassifier if cls else ensemble.RandomForestRegressor
        return est(**p, n_jobs=n_jobs, random_state=seed)
    if algo == "ExtremeRandomTrees":
        est = ensemble.ExtraTreesClassifier if cls else ensemble.ExtraTreesRegressor
        return est(**p, n_jobs=n_jobs, random_state=seed)
    if algo == "HistGradientBoosting":
        est = ensemble.HistGradientBoostingClassifier if cls else ensemble.HistGradientBoostingRegressor
        return est(**p, early_stopping=False, random_state=seed)
    if algo == "LogisticRegression":
        return linear_model.LogisticRegression(**p, max_iter=2000)
    if algo == "ElasticNet":
        return linear_model.ElasticNet(**p, max_iter=5000, random_state=seed)
    if algo == "SGD":
        est = linear_model.SGDClassifier if cls else linear_model.SGDRegressor
        return est(**p, max_iter=2000, tol=1e-4, random_state=seed)
    if algo == "KNN":
        est = neighbors.KNeighborsClassifier if cls else neighbors.KNeighborsRegressor
        return est(**p, n_jobs=n_jobs)
    if algo == "DecisionTree":
        est = tree.DecisionTreeClassifier if cls else tree.DecisionTreeRegressor
        return est(**p, random_state=seed)
    if algo == "SVM":
        from nbml.automl._svm import SVMClassifier, SVMRegressor

        return SVMClassifier(C=p["C"], gamma_factor=p["gamma_factor"], random_state=seed) if cls else \
            SVMRegressor(C=p["C"], gamma_factor=p["gamma_factor"])
    raise ValueError(f"unknown algorithm {algo!r}")


_BUILDERS: dict[str, Callable[[bool, dict[str, Any], int, int], Any]] = {
    "LightGBM": _lightgbm,
    "XGBoost": _xgboost,
}


#: the parameter that counts boosting rounds, for the algorithms whose fits stop early on a validation split
ROUNDS = {"LightGBM": "n_estimators", "XGBoost": "n_estimators", "HistGradientBoosting": "max_iter"}
#: a fit stops early only when the split it holds out has at least this many rows (fewer: too noisy to judge)
EARLY_STOP_MIN_VALID = 50
EARLY_STOP_FRACTION = 0.1
EARLY_STOP_PATIENCE = 20


def size_of(algo: str, params: dict[str, Any]) -> float:
    """How many trees/rounds a configuration builds (1 for the others): its fit cost grows with it."""
    for name in ("n_estimators", "max_iter"):
        if name in params and algo in (*ROUNDS, "RandomForest", "ExtremeRandomTrees"):
            return float(params[name])
    return 1.0


def with_rounds(algo: str, params: dict[str, Any], rounds: list[int]) -> dict[str, Any]:
    """`params` with the rounds the folds' early stopping chose (their mean, 10 % more for the extra rows)."""
    if algo not in ROUNDS or not rounds:
        return dict(params)
    name = ROUNDS[algo]
    chosen = math.ceil(round(1.1 * sum(rounds) / len(rounds), 6))
    return {**params, name: max(1, min(int(params[name]), chosen))}


def pipeline_name(scaler: str, algorithm: str) -> str:
    """The PIPELINE column of the progress table, e.g. ``"MaxAbsScaler LightGBM"``."""
    return f"{scaler} {algorithm}"


def build(algo: str, task: str, params: dict[str, Any], n_jobs: int = 1, seed: int = 0,
          early_stopping: bool = False) -> Any:
    """An unfitted estimator for `algo` with hyperparameters `params`; with `early_stopping`, a boosting
    algorithm's fit holds out a validation split and stops when it no longer improves
    (`nbml.automl._early.EarlyStopped`)."""
    cls = task == CLASSIFICATION
    builder = _BUILDERS.get(algo)
    est = builder(cls, dict(params), n_jobs, seed) if builder is not None else _sklearn(algo, cls, dict(params),
                                                                                        n_jobs, seed)
    if early_stopping and algo in ROUNDS:
        from nbml.automl._early import EarlyStopped

        return EarlyStopped(algo, est, seed)
    return est


def __getattr__(name: str) -> Any:
    """The SVM classes moved to `nbml.automl._svm`; models pickled before still load."""
    if name in ("SVMEstimator", "SVMClassifier", "SVMRegressor"):
        from nbml.automl import _svm

        return getattr(_svm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
