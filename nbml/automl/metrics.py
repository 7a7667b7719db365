"""Every metric of each AutoML task, with the Azure ML SDK's names, computed from predictions.

Pure functions over numpy arrays: a child run logs the whole dict that `score` returns, the coordinator
compares runs on the primary metric with `is_better`, and ensemble selection scores blends with
`score_one`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def is_screen(properties: Mapping[str, Any]) -> bool:
    """Whether an AutoML child with these run properties was a low-fidelity screen of the search (property
    ``fidelity`` below 1): scored on part of the data, without a model, never the best."""
    try:
        return float(properties.get("fidelity") or 1) < 1
    except (TypeError, ValueError):
        return False


CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

#: primary metrics a user may choose, per task (the SDK's list)
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    CLASSIFICATION: (
        "accuracy",
        "AUC_weighted",
        "average_precision_score_weighted",
        "norm_macro_recall",
        "precision_score_weighted",
    ),
    REGRESSION: (
        "spearman_correlation",
        "normalized_root_mean_squared_error",
        "r2_score",
        "normalized_mean_absolute_error",
    ),
}

DEFAULT_PRIMARY = {CLASSIFICATION: "accuracy", REGRESSION: "spearman_correlation"}

_CLASSIFICATION_METRICS = (
    "accuracy", "balanced_accuracy", "weighted_accuracy", "AUC_weighted", "AUC_macro", "AUC_micro",
    "average_precision_score_weighted", "average_precision_score_macro", "average_precision_score_micro",
    "precision_score_weighted", "precision_score_macro", "precision_score_micro",
    "recall_score_weighted", "recall_score_macro", "recall_score_micro",
    "f1_score_weighted", "f1_score_macro", "f1_score_micro",
    "norm_macro_recall", "log_loss", "matthews_correlation",
)
_REGRESSION_METRICS = (
    "explained_variance", "r2_score", "spearman_correlation",
    "mean_absolute_error", "normalized_mean_absolute_error",
    "median_absolute_error", "normalized_median_absolute_error",
    "root_mean_squared_error", "normalized_root_mean_squared_error",
    "root_mean_squared_log_error", "normalized_root_mean_squared_log_error",
)
ALL_METRICS = {CLASSIFICATION: _CLASSIFICATION_METRICS, REGRESSION: _REGRESSION_METRICS}

_LOWER_IS_BETTER = frozenset(
    {"log_loss", "mean_absolute_error", "normalized_mean_absolute_error", "median_absolute_error",
     "normalized_median_absolute_error", "root_mean_squared_error", "normalized_root_mean_squared_error",
     "root_mean_squared_log_error", "normalized_root_mean_squared_log_error"}
)


def goal(metric: str) -> str:
    """``"maximize"`` or ``"minimize"``."""
    return "minimize" if metric in _LOWER_IS_BETTER else "maximize"


def is_better(a: float | None, b: float | None, metric: str) -> bool:
    """Whether score `a` beats `b` on `metric` (NaN and None never win)."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return False
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return True
    return a < b if goal(metric) == "minimize" else a > b


def check_metric(task: str, metric: str) -> None:
    """Raise ValueError naming the valid choices when `metric` can't be the primary metric of `task`."""
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not supported; use 'classification' or 'regression'.")
    if metric not in PRIMARY_METRICS[task]:
        other = next(t for t in TASKS if t != task)
        hint = f" ({metric!r} is a {other} metric)" if metric in PRIMARY_METRICS[other] else ""
        raise ValueError(
            f"primary_metric={metric!r} does not fit task={task!r}{hint}; "
            f"choose one of {', '.join(PRIMARY_METRICS[task])}."
        )


def _safe(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(fn(*args, **kwargs))
        except (ValueError, ZeroDivisionError, FloatingPointError):
            return float("nan")
    return value


def classification_metrics(
    y_true: Any, proba: Any, classes: Any, sample_weight: np.ndarray | None = None
) -> dict[str, float]:
    """All classification metrics from class probabilities (columns ordered as `classes`)."""
    from sklearn import metrics as m
    from sklearn.preprocessing import label_binarize

    classes = np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    y_true = np.asarray(y_true)
    y_pred = classes[np.argmax(proba, axis=1)]
    n_classes = len(classes)
    onehot = label_binarize(y_true, classes=classes)
    if n_classes == 2:
        onehot = np.hstack([1 - onehot, onehot])
    present = onehot.sum(axis=0) > 0
    sw = sample_weight
    out: dict[str, float] = {}
    out["accuracy"] = _safe(lambda: m.accuracy_score(y_true, y_pred, sample_weight=sw))
    out["balanced_accuracy"] = _safe(lambda: m.balanced_accuracy_score(y_true, y_pred, sample_weight=sw))
    counts = onehot.sum(axis=0)
    class_weight = counts / counts.sum()
    per_class_acc = [
        _safe(m.accuracy_score, onehot[:, i], (y_pred == classes[i]).astype(int)) for i in range(n_classes)
    ]
    out["weighted_accuracy"] = float(np.nansum(np.asarray(per_class_acc) * class_weight))
    for avg in ("weighted", "macro", "micro"):
        cols = present if avg != "micro" else slice(None)
        out[f"AUC_{avg}"] = _safe(m.roc_auc_score, onehot[:, cols], proba[:, cols], average=avg, sample_weight=sw)
        out[f"average_precision_score_{avg}"] = _safe(
            m.average_precision_score, onehot[:, cols], proba[:, cols], average=avg, sample_weight=sw
        )
        for name, fn in (("precision_score", m.precision_score), ("recall_score", m.recall_score),
                         ("f1_score", m.f1_score)):
            out[f"{name}_{avg}"] = _safe(fn, y_true, y_pred, labels=classes, average=avg, sample_weight=sw,
                                         zero_division=0)
    chance = 1.0 / n_classes
    out["norm_macro_recall"] = max(0.0, (out["recall_score_macro"] - chance) / (1 - chance))
    clipped = np.clip(proba, 1e-15, 1 - 1e-15)
    out["log_loss"] = _safe(lambda: m.log_loss(y_true, clipped / clipped.sum(axis=1, keepdims=True),
                                               labels=classes, sample_weight=sw))
    out["matthews_correlation"] = _safe(lambda: m.matthews_corrcoef(y_true, y_pred, sample_weight=sw))
    return out


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, y_range: float | None = None, sample_weight: np.ndarray | None = None
) -> dict[str, float]:
    """All regression metrics; normalized ones divide by the range of the training target (`y_range`)."""
    from scipy.stats import spearmanr
    from sklearn import metrics as m

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    sw = sample_weight
    span = float(y_range) if y_range else float(np.ptp(y_true)) or 1.0
    out: dict[str, float] = {}
    out["explained_variance"] = _safe(lambda: m.explained_variance_score(y_true, y_pred, sample_weight=sw))
    out["r2_score"] = _safe(lambda: m.r2_score(y_true, y_pred, sample_weight=sw))
    out["spearman_correlation"] = _safe(lambda: spearmanr(y_true, y_pred)[0])
    out["mean_absolute_error"] = _safe(lambda: m.mean_absolute_error(y_true, y_pred, sample_weight=sw))
    out["median_absolute_error"] = _safe(lambda: m.median_absolute_error(y_true, y_pred))
    out["root_mean_squared_error"] = _safe(lambda: math.sqrt(m.mean_squared_error(y_true, y_pred, sample_weight=sw)))
    for name in ("mean_absolute_error", "median_absolute_error", "root_mean_squared_error"):
        out[f"normalized_{name}"] = out[name] / span
    if np.all(y_true > -1) and np.all(y_pred > -1):
        rmsle = _safe(lambda: math.sqrt(m.mean_squared_log_error(y_true, y_pred, sample_weight=sw)))
        log_span = float(np.log1p(np.max(y_true)) - np.log1p(np.min(y_true))) or 1.0
    else:
        rmsle, log_span = float("nan"), 1.0
    out["root_mean_squared_log_error"] = rmsle
    out["normalized_root_mean_squared_log_error"] = rmsle / log_span
    return out


def score(
    task: str,
    y_true: np.ndarray,
    predictions: np.ndarray,
    classes: Any = None,
    y_range: float | None = None,
) -> dict[str, float]:
    """Every metric of `task`: `predictions` are class probabilities (classification) or values."""
    if task == CLASSIFICATION:
        if classes is None:
            raise ValueError("classification metrics need the class labels (classes=...).")
        return classification_metrics(y_true, predictions, classes)
    return regression_metrics(y_true, predictions, y_range)


def _fast_auc_weighted(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Support-weighted one-vs-rest ROC AUC from ranks (Mann-Whitney U): same value as sklearn's, faster."""
    from scipy.stats import rankdata

    onehot = (y_true[:, None] == classes[None, :])
    n_pos = onehot.sum(axis=0).astype(float)
    n_neg = len(y_true) - n_pos
    ok = (n_pos > 0) & (n_neg > 0)
    if not ok.any():
        return float("nan")
    ranks = rankdata(proba[:, ok], axis=0)
    pos = onehot[:, ok]
    auc = ((ranks * pos).sum(axis=0) - n_pos[ok] * (n_pos[ok] + 1) / 2) / (n_pos[ok] * n_neg[ok])
    return float(np.sum(auc * n_pos[ok]) / np.sum(n_pos[ok]))


def score_one(
    task: str,
    metric: str,
    y_true: np.ndarray,
    predictions: np.ndarray,
    classes: Any = None,
    y_range: float | None = None,
) -> float:
    """One metric, for the inner loop of ensemble selection (skips computing the others where it can)."""
    from sklearn import metrics as m

    if task == CLASSIFICATION and metric == "AUC_weighted":
        return _fast_auc_weighted(np.asarray(y_true), np.asarray(predictions, dtype=float), np.asarray(classes))
    if task == CLASSIFICATION and metric == "accuracy":
        classes = np.asarray(classes)
        return float(np.mean(classes[np.argmax(predictions, axis=1)] == np.asarray(y_true)))
    if task == REGRESSION and metric == "r2_score":
        return _safe(lambda: m.r2_score(y_true, predictions))
    return score(task, y_true, predictions, classes, y_range)[metric]
