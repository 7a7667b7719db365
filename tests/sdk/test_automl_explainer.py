"""``from nbml.train.automl.automlexplainer import explain_model``: the SDK's six-value tuple, from a fitted model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

from nbml.automl.model import AutoMLModel, make_pipeline
from nbml.errors import UserErrorException
from nbml.train.automl.automlexplainer import explain_model


def _fitted(task: str, algorithm: str, X: np.ndarray, y: np.ndarray) -> AutoMLModel:
    classes = np.unique(y) if task == "classification" else None
    return AutoMLModel(task, make_pipeline(task, algorithm, "StandardScalerWrapper", {}, True), classes).fit(X, y)


def test_classification_explanation_has_the_sdk_shape() -> None:
    X, y = load_iris(return_X_y=True)
    model = _fitted("classification", "LogisticRegression", X, y)
    names = ["sepal length", "sepal width", "petal length", "petal width"]
    shap_values, expected, overall_summary, overall_imp, per_class_summary, per_class_imp = explain_model(
        model, X[::3], X[1::30], features=names)
    assert len(shap_values) == 3 and np.asarray(shap_values[0]).shape == (len(X[1::30]), 4)  # one slice per class
    assert len(expected) == 3
    assert sorted(overall_imp) == sorted(names) and len(overall_summary) == 4
    assert overall_summary == sorted(overall_summary, reverse=True)
    assert overall_imp[0].startswith("petal")  # iris is told apart by its petals
    assert len(per_class_summary) == 3 and all(sorted(imp) == sorted(names) for imp in per_class_imp)


def test_regression_explanation_has_no_per_class_part() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = _fitted("regression", "ElasticNet", X, y)
    shap_values, expected, _, overall_imp, per_class_summary, per_class_imp = explain_model(
        model, X[:100], X[100:105])
    assert np.asarray(shap_values).shape == (5, X.shape[1])
    assert isinstance(expected, float)
    assert len(overall_imp) == X.shape[1]
    assert per_class_summary is None and per_class_imp is None


def test_a_model_that_is_not_automl_is_refused_clearly() -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    with pytest.raises(UserErrorException, match=r"get_output\(\)"):
        explain_model(LogisticRegression(max_iter=1000).fit(X, y), X, X)
