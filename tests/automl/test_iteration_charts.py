"""The charts of an AutoML iteration from its out-of-fold predictions (nbml.automl.iteration_charts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from nbml.automl import child
from nbml.automl.iteration_charts import (
    CLASSIFICATION_CHARTS,
    MAX_POINTS,
    MAX_SCATTER,
    REGRESSION_CHARTS,
    ChartsUnavailable,
    charts_from_file,
    iteration_charts,
)


def _binary(n: int = 5000, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.5 * y + rng.normal(0.25, 0.2, n), 0, 1)
    return y, np.c_[1 - p1, p1], np.array([0, 1])


def test_binary_classification_charts_are_small_json_with_the_right_numbers() -> None:
    y, proba, classes = _binary()
    charts = iteration_charts("classification", y, proba, classes)
    assert list(charts) == list(CLASSIFICATION_CHARTS)
    text = json.dumps(charts, allow_nan=False)
    assert len(text) < 60_000, len(text)  # 5,000 rows, yet a few KB per chart
    roc = charts["roc"]["data"][0]
    assert len(roc["x"]) <= MAX_POINTS
    assert f"AUC {roc_auc_score(y, proba[:, 1]):.3f}" in roc["name"]
    heat = charts["confusion_matrix"]["data"][0]
    assert sum(int(v) for row in heat["text"] for v in row) == len(y)
    assert heat["x"] == ["0", "1"]
    gains = charts["gains"]["data"][0]
    assert gains["y"][-1] == pytest.approx(1.0)  # every positive is found once every row is taken
    lift = charts["lift"]["data"][0]
    assert lift["y"][0] > 1.5  # a good model's top rows are mostly positives


def test_multiclass_text_labels_one_curve_per_class() -> None:
    rng = np.random.default_rng(0)
    classes = np.array(["cat", "dog", "<b>fish</b>"])
    y = classes[rng.integers(0, 3, 300)]
    proba = rng.dirichlet([1, 1, 1], 300)
    charts = iteration_charts("classification", y, proba, classes)
    shown = ["cat", "dog", "&lt;b&gt;fish&lt;/b&gt;"]  # plotly reads tags in text: labels are escaped
    assert [t["name"].split(" (")[0] for t in charts["roc"]["data"][:-1]] == shown
    assert charts["confusion_matrix"]["data"][0]["y"] == shown


def test_regression_charts_sample_the_scatter() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=5000)
    pred = y + rng.normal(scale=0.1, size=5000)
    charts = iteration_charts("regression", y, pred)
    assert list(charts) == list(REGRESSION_CHARTS)
    assert len(charts["predicted_vs_true"]["data"][0]["x"]) == MAX_SCATTER
    assert sum(charts["residuals"]["data"][0]["y"]) == 5000
    json.dumps(charts, allow_nan=False)


def test_bad_input_says_what_is_wrong() -> None:
    y, proba, classes = _binary(50)
    with pytest.raises(ChartsUnavailable, match="one probability column per class"):
        iteration_charts("classification", y, proba[:, :1], classes)
    with pytest.raises(ChartsUnavailable, match="no charts for task 'clustering'"):
        iteration_charts("clustering", y, proba, classes)


def test_charts_from_the_file_an_iteration_writes(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    y, proba, _ = _binary(200)
    labels = np.array(["no", "yes"], dtype=object)[y]
    child._save({"model": 1}, {}, proba, np.arange(200), labels, np.array(["no", "yes"], dtype=object))
    charts = charts_from_file(tmp_path / "outputs" / child.PREDICTIONS_FILE, "classification")
    assert charts["confusion_matrix"]["data"][0]["x"] == ["no", "yes"]
    np.savez(tmp_path / "old.npz", pred=proba, index=np.arange(200))  # written before labels were kept
    with pytest.raises(ChartsUnavailable, match="has no labels"):
        charts_from_file(tmp_path / "old.npz", "classification")
