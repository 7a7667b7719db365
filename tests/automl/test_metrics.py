"""Metrics: every metric of each task, their directions, and which metrics fit which task."""

from __future__ import annotations

import numpy as np
import pytest
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
