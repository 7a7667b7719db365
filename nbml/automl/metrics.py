"""Every metric of each AutoML task, with the Azure ML SDK's names, computed from predictions.

Pure functions over numpy arrays: a child run logs the whole dict that `score` returns, the coordinator
compares runs on the primary metric with `is_better`, and ensemble selection scores blends with
`score_one`.
"""

from __future__ import annotations

import json
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


def is_blend(properties: Mapping[str, Any]) -> bool:
    """Whether an AutoML child with these run properties is an ensemble of at least two iterations: on a tie
    of the primary metric it is preferred to a single model (it averages several, so it varies less), by the
    coordinator and by ``AutoMLRun.get_best_child`` alike."""
    if properties.get("run_algorithm") not in ("VotingEnsemble", "StackEnsemble"):
        return False
    try:
        return len(json.loads(properties.get("ensembled_iterations") or "[]")) >= 2
    except (TypeError, ValueError):
        return False


def wins_tie(blend: bool, iteration: int, best_blend: bool, best_iteration: int) -> bool:
    """On equal scores: an ensemble of several iterations beats a single model, then the earlier iteration."""
    return (not blend, iteration) < (not best_blend, best_iteration)


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


def _label_index(values: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each label's column in `classes` (in any order); ValueError for a label that isn't one of them."""
    order = np.argsort(classes, kind="stable")
    pos = np.clip(np.searchsorted(classes[order], values), 0, len(classes) - 1)
    index = order[pos]
    if len(values) and not np.array_equal(classes[index], values):
        unknown = sorted({str(v) for v in values[classes[index] != values]})[:5]
        raise ValueError(f"labels {unknown} are not among the classes {list(classes)[:10]}.")
    return index


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of each column, ties getting the mean of their ranks (scipy's rankdata, in numpy only:
    the supervisor scores ensemble selections with it and would otherwise import scipy.stats, 1.4 s)."""
    values = values.reshape(len(values), -1)
    n = len(values)
    order = np.argsort(values, axis=0)  # ties share one average rank: their order among themselves is moot
    ordered = np.take_along_axis(values, order, axis=0)
    tie_with_next = ordered[1:] == ordered[:-1]
    position = np.arange(n)[:, None]
    ranks = np.empty(values.shape)
    if not tie_with_next.any():
        np.put_along_axis(ranks, order, np.broadcast_to(position + 1.0, values.shape), axis=0)
        return ranks
    # each sorted position's tie group spans [start, end): start carried down, end carried up
    opens = np.vstack([np.ones((1, values.shape[1]), bool), ~tie_with_next])
    closes = np.vstack([~tie_with_next, np.ones((1, values.shape[1]), bool)])
    start = np.maximum.accumulate(np.where(opens, position, 0), axis=0)
    end = np.minimum.accumulate(np.where(closes, position + 1, n)[::-1], axis=0)[::-1]
    np.put_along_axis(ranks, order, (start + end + 1) / 2, axis=0)
    return ranks


def _ranked_auc(onehot: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each column (Mann-Whitney U from average ranks, which counts ties as half)."""
    n_pos = onehot.sum(axis=0)
    n_neg = len(onehot) - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((_average_ranks(scores) * onehot).sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one column: the step-wise (uninterpolated) area under precision-recall."""
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each distinct score
    tps = np.cumsum(t)[last]
    if tps[-1] == 0:
        return float("nan")
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def _averaged(per_class: np.ndarray, support: np.ndarray, avg: str) -> float:
    if np.isnan(per_class).any():
        return float("nan")
    return float(np.average(per_class, weights=support) if avg == "weighted" else np.mean(per_class))


def classification_metrics(y_true: Any, proba: Any, classes: Any) -> dict[str, float]:
    """All classification metrics from class probabilities (columns ordered as `classes`).

    The values are scikit-learn's (tests/automl/test_metrics.py checks each one against it), computed in one
    pass from the confusion matrix and the ranks: calling the 29 validated scikit-learn functions took
    80-140 ms per iteration, more than many screens' fit.
    """
    classes = np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    truth = _label_index(np.asarray(y_true), classes)
    guess = np.argmax(proba, axis=1)
    n, k = len(truth), len(classes)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), truth] = 1.0
    confusion = np.bincount(truth * k + guess, minlength=k * k).reshape(k, k).astype(float)
    tp = np.diag(confusion)
    support = confusion.sum(axis=1)  # true rows per class
    predicted = confusion.sum(axis=0)
    present = support > 0
    out: dict[str, float] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(present, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    accuracy = float(tp.sum() / n) if n else float("nan")
    out["accuracy"] = accuracy
    out["balanced_accuracy"] = float(recall[present].mean()) if present.any() else float("nan")
    out["weighted_accuracy"] = float(np.sum((1 - (support + predicted - 2 * tp) / n) * support / n))
    auc = _ranked_auc(onehot[:, present], proba[:, present]) if present.sum() > 1 or k == 2 else np.array([np.nan])
    micro_auc = _ranked_auc(onehot.reshape(-1, 1), proba.reshape(-1, 1))[0]
    ap = np.array([_average_precision(onehot[:, i], proba[:, i]) for i in np.flatnonzero(present)])
    micro_ap = _average_precision(onehot.ravel(), proba.ravel())
    for avg in ("weighted", "macro", "micro"):
        if avg == "micro":
            out["AUC_micro"], out["average_precision_score_micro"] = float(micro_auc), micro_ap
            out["precision_score_micro"] = out["recall_score_micro"] = out["f1_score_micro"] = accuracy
            continue
        out[f"AUC_{avg}"] = _averaged(auc, support[present], avg)
        out[f"average_precision_score_{avg}"] = _averaged(ap, support[present], avg)
        for name, values in (("precision_score", precision), ("recall_score", recall), ("f1_score", f1)):
            out[f"{name}_{avg}"] = float(np.average(values, weights=support) if avg == "weighted" else values.mean())
    chance = 1.0 / k
    out["norm_macro_recall"] = max(0.0, (out["recall_score_macro"] - chance) / (1 - chance))
    clipped = np.clip(proba, 1e-15, 1 - 1e-15)
    clipped /= clipped.sum(axis=1, keepdims=True)
    out["log_loss"] = float(-np.mean(np.log(clipped[np.arange(n), truth])))
    s, c = float(n), float(tp.sum())
    denominator = math.sqrt((s * s - predicted @ predicted) * (s * s - support @ support))
    out["matthews_correlation"] = float((c * s - support @ predicted) / denominator) if denominator else 0.0
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
    """Support-weighted one-vs-rest ROC AUC over the classes present in `y_true` (as `classification_metrics`)."""
    truth = _label_index(y_true, classes)
    onehot = np.zeros(proba.shape)
    onehot[np.arange(len(truth)), truth] = 1.0
    support = onehot.sum(axis=0)
    present = support > 0
    return _averaged(_ranked_auc(onehot[:, present], proba[:, present]), support[present], "weighted")


def score_one(
    task: str,
    metric: str,
    y_true: np.ndarray,
    predictions: np.ndarray,
    classes: Any = None,
    y_range: float | None = None,
) -> float:
    """One metric, for the inner loop of ensemble selection: numpy only, so that the coordinator can select
    in the supervisor without importing scipy or scikit-learn (each value equals `score`'s)."""
    if task == CLASSIFICATION and metric == "AUC_weighted":
        return _fast_auc_weighted(np.asarray(y_true), np.asarray(predictions, dtype=float), np.asarray(classes))
    if task == CLASSIFICATION and metric == "accuracy":
        classes = np.asarray(classes)
        return float(np.mean(classes[np.argmax(predictions, axis=1)] == np.asarray(y_true)))
    if task == CLASSIFICATION:
        return score(task, y_true, predictions, classes, y_range)[metric]
    y = np.asarray(y_true, dtype=float)
    pred = np.asarray(predictions, dtype=float)
    span = float(y_range) if y_range else float(np.ptp(y)) or 1.0
    if metric == "r2_score":
        residual, total = float(np.sum((y - pred) ** 2)), float(np.sum((y - y.mean()) ** 2))
        return 1.0 - residual / total if total else (1.0 if residual == 0 else 0.0)
    if metric == "normalized_root_mean_squared_error":
        return float(np.sqrt(np.mean((y - pred) ** 2))) / span
    if metric == "normalized_mean_absolute_error":
        return float(np.mean(np.abs(y - pred))) / span
    if metric == "spearman_correlation":
        ranks = _average_ranks(np.column_stack([y, pred]))
        if np.ptp(ranks[:, 0]) == 0 or np.ptp(ranks[:, 1]) == 0:
            return float("nan")
        return float(np.corrcoef(ranks[:, 0], ranks[:, 1])[0, 1])
    return score(task, y_true, predictions, classes, y_range)[metric]
