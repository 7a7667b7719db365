"""Metrics: every metric of each task, their directions, and which metrics fit which task."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.metrics import roc_auc_score

from nbml.automl import metrics


def test_classification_scores_every_metric_of_the_task() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(["cat", "dog", "eel"], 300)
    proba = rng.random((300, 3))
    proba /= proba.sum(axis=1, keepdims=True)
    scores = metrics.score("classification", y, proba, classes=["cat", "dog", "eel"])
    assert set(scores) == set(metrics.ALL_METRICS["classification"])
    assert set(metrics.PRIMARY_METRICS["classification"]) <= set(scores)
    assert all(np.isfinite(v) for v in scores.values())


def test_regression_scores_every_metric_of_the_task() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(200) * 10
    scores = metrics.score("regression", y, y + rng.normal(0, 0.5, 200))
    assert set(scores) == set(metrics.ALL_METRICS["regression"])
    assert scores["r2_score"] > 0.9
    assert scores["normalized_root_mean_squared_error"] == pytest.approx(scores["root_mean_squared_error"] / np.ptp(y))


def test_perfect_predictions_score_best() -> None:
    y = np.array([0, 1, 2, 1, 0, 2])
    s = metrics.score("classification", y, np.eye(3)[y], classes=[0, 1, 2])
    assert s["accuracy"] == 1.0 and s["AUC_weighted"] == 1.0 and s["norm_macro_recall"] == 1.0


@pytest.mark.parametrize("k", [2, 3, 7])
def test_fast_auc_matches_sklearn(k: int) -> None:
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 400)
    proba = rng.random((400, k))
    proba[np.arange(400), y] += 0.4
    proba /= proba.sum(axis=1, keepdims=True)
    expected = roc_auc_score(np.eye(k)[y], proba, average="weighted")
    assert metrics.score_one("classification", "AUC_weighted", y, proba, np.arange(k)) == pytest.approx(expected)


def _sklearn_reference(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Each classification metric computed by scikit-learn's own function, one call per metric."""
    import warnings

    y_pred = classes[np.argmax(proba, axis=1)]
    onehot = (y[:, None] == classes[None, :]).astype(int)
    present = onehot.sum(axis=0) > 0
    out: dict[str, float] = {}

    def safe(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return float(fn(*args, **kwargs))
            except ValueError:
                return float("nan")

    out["accuracy"] = skm.accuracy_score(y, y_pred)
    out["balanced_accuracy"] = safe(skm.balanced_accuracy_score, y, y_pred)
    out["weighted_accuracy"] = float(sum(skm.accuracy_score(onehot[:, i], (y_pred == c).astype(int)) * onehot[:, i].mean()
                                         for i, c in enumerate(classes)))
    for avg in ("weighted", "macro", "micro"):
        cols = present if avg != "micro" else slice(None)
        out[f"AUC_{avg}"] = safe(skm.roc_auc_score, onehot[:, cols], proba[:, cols], average=avg)
        out[f"average_precision_score_{avg}"] = safe(skm.average_precision_score, onehot[:, cols], proba[:, cols],
                                                     average=avg)
        for name, fn in (("precision_score", skm.precision_score), ("recall_score", skm.recall_score),
                         ("f1_score", skm.f1_score)):
            out[f"{name}_{avg}"] = safe(fn, y, y_pred, labels=classes, average=avg, zero_division=0)
    out["norm_macro_recall"] = max(0.0, (out["recall_score_macro"] - 1 / len(classes)) / (1 - 1 / len(classes)))
    clipped = np.clip(proba, 1e-15, 1 - 1e-15)[:, np.argsort(classes)]  # log_loss takes columns in sorted order
    out["log_loss"] = safe(skm.log_loss, y, clipped / clipped.sum(axis=1, keepdims=True), labels=np.sort(classes))
    out["matthews_correlation"] = safe(skm.matthews_corrcoef, y, y_pred)
    return out


def _case(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    k = {"binary": 2, "three": 3, "seven": 7, "ties": 4, "absent": 5, "strings": 3, "one_class": 3,
         "perfect": 6, "never_predicted": 4}[name]
    n = 157
    y = rng.integers(0, k, n)
    if name == "absent":  # a fold in which one class has no rows
        y[y == 2] = 3
    if name == "one_class":
        y[:] = 1
    proba = rng.random((n, k))
    proba[np.arange(n), y] += 0.5
    if name == "ties":  # coarse scores: many ties at every threshold
        proba = np.round(proba, 1) + 0.01
    if name == "perfect":
        proba = np.eye(k)[y] * 0.9 + 0.01
    if name == "never_predicted":
        proba[:, 0] = 0.0
    proba /= proba.sum(axis=1, keepdims=True)
    classes = np.arange(k)
    if name == "strings":
        classes = np.array(["eel", "cat", "dog"])  # not sorted: columns follow the classes given
        y = classes[y]
    return y, proba, classes


@pytest.mark.parametrize("name", ["binary", "three", "seven", "ties", "absent", "strings", "one_class", "perfect",
                                  "never_predicted"])
def test_every_classification_metric_equals_scikit_learns(name: str) -> None:
    y, proba, classes = _case(name)
    ours = metrics.score("classification", y, proba, classes)
    expected = _sklearn_reference(y, proba, classes)
    assert set(ours) == set(expected)
    for metric, value in expected.items():
        assert ours[metric] == pytest.approx(value, nan_ok=True, abs=1e-12), metric
    if name != "one_class":
        assert np.isfinite(list(ours.values())).all()


def test_labels_outside_the_classes_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"\['frog'\] are not among the classes"):
        metrics.score("classification", np.array(["cat", "frog"]), np.full((2, 2), 0.5), ["cat", "dog"])


def test_directions() -> None:
    assert metrics.goal("AUC_weighted") == "maximize"
    assert metrics.goal("normalized_root_mean_squared_error") == "minimize"
    assert metrics.is_better(0.1, 0.2, "normalized_mean_absolute_error")
    assert metrics.is_better(0.9, float("nan"), "accuracy")
    assert not metrics.is_better(float("nan"), 0.1, "accuracy")


def test_metric_of_the_other_task_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="r2_score.*regression metric.*AUC_weighted"):
        metrics.check_metric("classification", "r2_score")
    with pytest.raises(ValueError, match="task='forecasting'"):
        metrics.check_metric("forecasting", "accuracy")


@pytest.mark.parametrize("metric", [*metrics.PRIMARY_METRICS["classification"], *metrics.PRIMARY_METRICS["regression"]])
def test_score_one_equals_the_full_scores(metric: str) -> None:
    rng = np.random.default_rng(7)
    if metric in metrics.PRIMARY_METRICS["regression"]:
        y = np.round(rng.random(300) * 10)  # whole numbers: ties in the ranks
        pred = np.round(y + rng.normal(0, 2, 300))
        full = metrics.score("regression", y, pred, y_range=12.0)
        assert metrics.score_one("regression", metric, y, pred, y_range=12.0) == pytest.approx(full[metric])
    else:
        y, proba, classes = _case("ties")
        full = metrics.score("classification", y, proba, classes)
        assert metrics.score_one("classification", metric, y, proba, classes) == pytest.approx(full[metric])


def test_score_one_imports_neither_scipy_nor_scikit_learn() -> None:
    import subprocess
    import sys

    code = ("import sys, numpy as np; from nbml.automl import ensemble\n"
            "y = np.arange(60) % 3; p = np.eye(3)[y] * 0.5 + 0.1\n"
            "ensemble.caruana('classification', 'AUC_weighted', y, [p, p[::-1]], np.arange(3), init_size=2)\n"
            "ensemble.caruana('regression', 'spearman_correlation', y * 1.0, [y * 1.0, y[::-1] * 1.0])\n"
            "print(sorted(m for m in ('scipy', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("shape", [(1347, 10), (50, 1), (7, 3), (1, 1)])
def test_average_ranks_equal_scipys_rankdata(shape: tuple[int, int]) -> None:
    from scipy.stats import rankdata

    rng = np.random.default_rng(shape[0])
    for values in (rng.random(shape), np.round(rng.random(shape), 1)):  # distinct values, and many ties
        assert np.array_equal(metrics._average_ranks(values), rankdata(values, axis=0))
