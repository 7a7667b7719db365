"""Search proposes cheap defaults first, then TPE; ensemble selection blends out-of-fold predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from threadpoolctl import threadpool_limits

from nbml.automl import ensemble, estimators, metrics
from nbml.automl.child import run_iteration
from nbml.automl.data import from_sources
from nbml.automl.search import SearchStrategy


def test_defaults_of_every_algorithm_come_first_then_tpe_proposals() -> None:
    algos = estimators.algorithms_for("classification", 1000, None, ["DecisionTree"])
    s = SearchStrategy("classification", "AUC_weighted", algos, 1000, 20)
    first = [s.ask() for _ in algos]
    assert [p.algorithm for p in first] == algos
    assert first[0].hyperparameters == estimators.default_config("LightGBM", "classification", 1000, 20)
    for i, p in enumerate(first):
        s.tell(p.trial, 0.9 if p.algorithm == "SVM" else 0.5 + i / 100)
    pending = [s.ask() for _ in range(3)]  # asked concurrently: the constant liar keeps them apart
    assert len({str(p.hyperparameters) for p in pending}) == 3
    for p in pending:
        s.tell(p.trial, None)  # failed iterations are told as failures
    assert s.pending == 0


def test_allowed_and_blocked_models_accept_the_sdk_spellings() -> None:
    assert estimators.algorithms_for("classification", 100, ["XGBoostClassifier", "kNN"], None) == ["XGBoost", "KNN"]
    assert "SVM" not in estimators.algorithms_for("regression", 100, None, ["SVR"])
    assert "SVM" not in estimators.algorithms_for("classification", 50_000, None, None)  # too slow there
    with pytest.raises(ValueError, match="known models"):
        estimators.canonical("DeepForest")


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("algo", list(estimators.ALGORITHMS))
def test_every_estimator_default_fits_and_scores(task: str, algo: str) -> None:
    if task not in estimators.ALGORITHMS[algo].tasks:
        pytest.skip(f"{algo} is not a {task} algorithm")
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:150], y[:150]
    ds = from_sources(X=X, y=y.astype(float) if task == "regression" else y)
    scaler = estimators.scalers_for(algo)[0]
    spec = {"task": task, "algorithm": algo, "scaler": scaler, "featurization": False, "seed": 0,
            "hyperparameters": estimators.default_config(algo, task, 150, X.shape[1]),
            "validation": {"n_cross_validations": 3}}
    with threadpool_limits(limits=1):  # as in an iteration's process: one thread
        model, scores, pred, index, _ = run_iteration(spec, ds)
    assert set(scores) == set(metrics.ALL_METRICS[task])
    assert len(pred) == len(index) == 150
    assert model.predict(X[:5]).shape == (5,)


def test_caruana_blend_is_no_worse_than_its_best_member() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    members = []
    for noise in (0.8, 0.9, 1.0):
        p = np.eye(3)[y] + rng.random((300, 3)) * noise * 2
        members.append(p / p.sum(axis=1, keepdims=True))
    single = [metrics.score_one("classification", "AUC_weighted", y, p, np.arange(3)) for p in members]
    weights, score = ensemble.caruana("classification", "AUC_weighted", y, members, np.arange(3))
    assert sum(weights.values()) == pytest.approx(1.0)
    assert score >= max(single)
    _meta, pred = ensemble.fit_stack("classification", y, members, np.arange(3))
    assert pred.shape == (300, 3)


def test_caruana_from_a_sorted_start_falls_back_to_the_best_single_model_when_the_start_is_worse() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=200)
    good = y + rng.normal(scale=0.1, size=200)
    noise = [rng.normal(size=200) for _ in range(4)]  # the average of all five is far worse than `good` alone
    weights, score = ensemble.caruana("regression", "r2_score", y, [*noise, good], rounds=0, init_size=5)
    assert weights == {4: 1.0}
    assert score == pytest.approx(metrics.score_one("regression", "r2_score", y, good))
    weights, score = ensemble.caruana("regression", "r2_score", y, [*noise, good], rounds=10, init_size=5)
    assert score >= metrics.score_one("regression", "r2_score", y, good)


@pytest.mark.parametrize("task,metric", [("classification", "AUC_weighted"), ("classification", "accuracy"),
                                         ("regression", "r2_score"), ("regression", "spearman_correlation")])
def test_the_stack_ensemble_is_never_worse_than_the_best_single_model(task: str, metric: str) -> None:
    rng = np.random.default_rng(1)
    n = 120
    classes = np.arange(3) if task == "classification" else None
    y = rng.integers(0, 3, n) if task == "classification" else rng.normal(size=n)
    members = []
    for noise in (0.0, 0.7, 1.5):  # one member nearly perfect: a meta-learner can only lose against it
        if task == "classification":
            p = np.eye(3)[y] * (1 + noise) + rng.random((n, 3)) * noise * 2 + 0.01
            members.append(p / p.sum(axis=1, keepdims=True))
        else:
            members.append(y * (1 + noise) + rng.normal(size=n) * (noise + 0.001))
    single = [metrics.score_one(task, metric, y, p, classes, 1.0) for p in members]
    weights, _ = ensemble.caruana(task, metric, y, members, classes, y_range=1.0)
    _meta, pred = ensemble.stack_or_blend(task, metric, y, members, weights, classes, 1.0)
    score = metrics.score_one(task, metric, y, pred, classes, 1.0)
    best = max(single) if metrics.goal(metric) == "maximize" else min(single)
    assert not metrics.is_better(best, score, metric), (score, single)
