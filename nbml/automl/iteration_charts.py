"""The charts of one AutoML iteration, from its out-of-fold predictions: plotly figure dicts.

Classification: ROC, precision-recall, calibration, lift and cumulative gains curves (one-vs-rest for each
class, at most ``MAX_CLASSES`` of them) and the confusion matrix. Regression: predicted against true values
and the histogram of residuals. The curves come from scikit-learn's metric functions; every series is
thinned to at most ``MAX_POINTS`` points, so a figure stays a few kilobytes whatever the row count.

Pure functions of arrays: the run page and the RunDetails widget both call :func:`charts_from_file` on the
iteration's ``outputs/predictions.npz`` (written by nbml.automl.child with the labels and classes).
The figures are plain dicts of lists, strings and floats (``json.dumps`` takes them as they are).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

#: Most points a curve keeps (the scatter of predicted vs true keeps MAX_SCATTER).
MAX_POINTS = 200
MAX_SCATTER = 1000
#: Most classes drawn one curve each; beyond it, only the micro-average curves.
MAX_CLASSES = 10
HIST_BINS = 30

#: Chart keys in the order pages show them, with their titles.
CLASSIFICATION_CHARTS = {
    "roc": "ROC curve",
    "precision_recall": "Precision-recall curve",
    "calibration": "Calibration curve",
    "lift": "Lift curve",
    "gains": "Cumulative gains curve",
    "confusion_matrix": "Confusion matrix",
}
REGRESSION_CHARTS = {
    "predicted_vs_true": "Predicted vs true",
    "residuals": "Residual histogram",
}


class ChartsUnavailable(ValueError):
    """The predictions cannot be charted (missing labels, unknown task); the message says why."""


def _floats(values: Any) -> list[float | None]:
    """Plain floats for JSON; NaN and infinities become None (plotly draws a gap)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=float).ravel().tolist()]


def label(value: Any) -> str:
    """A class label as plotly text: escaped, since plotly reads a few HTML tags (``<a href>``, ``<b>``) in text."""
    return html.escape(str(value), quote=False)


def thin(*arrays: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, ...]:
    """The arrays cut to at most `limit` evenly spaced points, first and last kept."""
    n = len(arrays[0])
    if n <= limit:
        return arrays
    keep = np.unique(np.linspace(0, n - 1, limit).round().astype(int))
    return tuple(a[keep] for a in arrays)


def _layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title},
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
    }
    layout.update(extra)
    return layout


def _line(x: Any, y: Any, name: str, **extra: Any) -> dict[str, Any]:
    trace = {"type": "scatter", "mode": "lines", "x": _floats(x), "y": _floats(y), "name": name}
    trace.update(extra)
    return trace


def _diagonal(name: str, x0: float = 0.0, x1: float = 1.0, y0: float = 0.0, y1: float = 1.0) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines", "x": [x0, x1], "y": [y0, y1], "name": name,
            "line": {"dash": "dash", "color": "#9e9e9e"}, "hoverinfo": "skip"}


def _one_vs_rest(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, 0/1 truth, score) per class drawn: the positive class only when there are two."""
    if len(classes) == 2:
        return [(label(classes[1]), (y_true == classes[1]).astype(int), proba[:, 1])]
    if len(classes) > MAX_CLASSES:
        truth = (y_true[:, None] == classes[None, :]).astype(int)
        return [("micro-average", truth.ravel(), proba.ravel())]
    return [(label(c), (y_true == c).astype(int), proba[:, i]) for i, c in enumerate(classes)]


def _roc(curves: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score, roc_curve

    data = []
    for name, truth, score in curves:
        if truth.min() == truth.max():
            continue  # a class absent from (or alone in) the scored rows has no curve
        fpr, tpr, _ = roc_curve(truth, score)
        fpr, tpr = thin(fpr, tpr)
        data.append(_line(fpr, tpr, f"{name} (AUC {roc_auc_score(truth, score):.3f})"))
    data.append(_diagonal("chance"))
    return {"data": data, "layout": _layout("ROC curve", "False positive rate", "True positive rate")}


def _precision_recall(curves: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    data = []
    for name, truth, score in curves:
        if truth.max() == 0:
            continue
        precision, recall, _ = precision_recall_curve(truth, score)
        recall, precision = thin(recall, precision)
        data.append(_line(recall, precision, f"{name} (AP {average_precision_score(truth, score):.3f})"))
    return {"data": data, "layout": _layout("Precision-recall curve", "Recall", "Precision")}


def _calibration(curves: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    from sklearn.calibration import calibration_curve

    data = []
    for name, truth, score in curves:
        if truth.min() == truth.max():
            continue
        frac_pos, mean_pred = calibration_curve(truth, np.clip(score, 0.0, 1.0), n_bins=10)
        data.append(_line(mean_pred, frac_pos, name, mode="lines+markers"))
    data.append(_diagonal("perfectly calibrated"))
    return {"data": data, "layout": _layout("Calibration curve", "Mean predicted probability",
                                            "Fraction of positives")}


def _gains(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fraction of rows, fraction of positives) taking rows by decreasing score."""
    order = np.argsort(-score, kind="stable")
    hits = np.cumsum(truth[order])
    frac_rows = np.arange(1, len(order) + 1) / len(order)
    return frac_rows, hits / max(1, hits[-1])


def _lift_and_gains(curves: list[tuple[str, np.ndarray, np.ndarray]]) -> tuple[dict[str, Any], dict[str, Any]]:
    lift, gains = [], []
    for name, truth, score in curves:
        if truth.max() == 0:
            continue
        frac_rows, frac_pos = _gains(truth, score)
        frac_rows, frac_pos = thin(frac_rows, frac_pos)
        gains.append(_line(np.r_[0.0, frac_rows], np.r_[0.0, frac_pos], name))
        lift.append(_line(frac_rows, frac_pos / frac_rows, name))
    gains.append(_diagonal("random"))
    lift.append(_diagonal("random", y0=1.0, y1=1.0))
    return (
        {"data": lift, "layout": _layout("Lift curve", "Fraction of rows (by decreasing score)", "Lift")},
        {"data": gains, "layout": _layout("Cumulative gains curve", "Fraction of rows (by decreasing score)",
                                          "Fraction of positives found")},
    )


def _confusion(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix

    predicted = classes[np.argmax(proba, axis=1)]
    counts = confusion_matrix(y_true, predicted, labels=classes)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    labels = [label(c) for c in classes]
    return {
        "data": [{
            "type": "heatmap", "x": labels, "y": labels, "z": [_floats(r) for r in share],
            "text": [[str(int(v)) for v in r] for r in counts], "texttemplate": "%{text}",
            "colorscale": "Blues", "zmin": 0, "zmax": 1, "colorbar": {"title": {"text": "share of row"}},
            "hovertemplate": "true %{y}, predicted %{x}: %{text}<extra></extra>",
        }],
        "layout": _layout("Confusion matrix", "Predicted label", "True label",
                          yaxis={"title": {"text": "True label"}, "autorange": "reversed", "type": "category"},
                          xaxis={"title": {"text": "Predicted label"}, "type": "category"}),
    }


def classification_charts(y_true: Any, proba: Any, classes: Any) -> dict[str, dict[str, Any]]:
    """Every classification chart; `proba` holds one column of probabilities per class of `classes`."""
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=float)
    cls = np.asarray(classes)
    if p.ndim != 2 or p.shape[1] != len(cls) or len(cls) < 2:
        raise ChartsUnavailable(
            f"classification charts need one probability column per class; got predictions of shape {p.shape} "
            f"for {len(cls)} classes")
    keep = np.isfinite(p).all(axis=1)
    y, p = y[keep], p[keep]
    if cls.dtype.kind != y.dtype.kind:  # labels saved as text, e.g. when the data's labels were objects
        y, cls = y.astype(str), cls.astype(str)
    curves = _one_vs_rest(y, p, cls)
    lift, gains = _lift_and_gains(curves)
    return {
        "roc": _roc(curves),
        "precision_recall": _precision_recall(curves),
        "calibration": _calibration(curves),
        "lift": lift,
        "gains": gains,
        "confusion_matrix": _confusion(y, p, cls),
    }


def regression_charts(y_true: Any, predicted: Any, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Predicted vs true values (a sample of MAX_SCATTER rows) and the histogram of residuals."""
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if y.shape != p.shape:
        raise ChartsUnavailable(f"{len(p)} predictions for {len(y)} labels")
    keep = np.isfinite(y) & np.isfinite(p)
    y, p = y[keep], p[keep]
    if len(y) == 0:
        raise ChartsUnavailable("no finite predictions to chart")
    shown_y, shown_p = y, p
    if len(y) > MAX_SCATTER:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), MAX_SCATTER, replace=False))
        shown_y, shown_p = y[rows], p[rows]
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    sample = f" ({MAX_SCATTER} of {len(y)} rows)" if len(y) > MAX_SCATTER else ""
    counts, edges = np.histogram(p - y, bins=HIST_BINS)
    return {
        "predicted_vs_true": {
            "data": [
                {"type": "scatter", "mode": "markers", "x": _floats(shown_y), "y": _floats(shown_p),
                 "name": "rows", "marker": {"size": 5, "opacity": 0.6}},
                _diagonal("ideal", lo, hi, lo, hi),
            ],
            "layout": _layout("Predicted vs true" + sample, "True value", "Predicted value"),
        },
        "residuals": {
            "data": [{"type": "bar", "x": _floats((edges[:-1] + edges[1:]) / 2), "y": [int(c) for c in counts],
                      "width": float(edges[1] - edges[0]), "name": "rows"}],
            "layout": _layout("Residual histogram", "Residual (predicted - true)", "Rows", bargap=0.02),
        },
    }


def iteration_charts(task: str, y_true: Any, predictions: Any, classes: Any = None) -> dict[str, dict[str, Any]]:
    """The charts of `task` ('classification', 'regression' or 'forecasting') keyed as in *_CHARTS."""
    if task == "classification":
        if classes is None:
            raise ChartsUnavailable("classification charts need the classes the probability columns stand for")
        return classification_charts(y_true, predictions, classes)
    if task in ("regression", "forecasting"):
        return regression_charts(y_true, predictions)
    raise ChartsUnavailable(f"no charts for task {task!r}; expected classification, regression or forecasting")


def charts_from_file(path: Path | str, task: str) -> dict[str, dict[str, Any]]:
    """The charts of an iteration's ``predictions.npz`` (arrays ``pred``, ``y_true`` and, to classify,
    ``classes``). Files written before the labels were saved raise ChartsUnavailable, saying so."""
    with np.load(path, allow_pickle=False) as npz:
        if "y_true" not in npz.files:
            raise ChartsUnavailable(
                f"{Path(path).name} has no labels (written by an older nbml); run the experiment again to get charts")
        classes = npz["classes"] if "classes" in npz.files and npz["classes"].size else None
        return iteration_charts(task, npz["y_true"], npz["pred"], classes)


def chart_titles(task: str) -> dict[str, str]:
    return dict(CLASSIFICATION_CHARTS if task == "classification" else REGRESSION_CHARTS)
