"""Featurization 'auto': frames with missing values, strings, categories and dates just work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbml.automl.featurize import SCALER_NAMES, AutoFeaturizer, describe_columns, make_scaler
from nbml.automl.model import AutoMLModel, make_pipeline, pipeline_name


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "age": np.where(rng.random(n) < 0.2, np.nan, rng.integers(18, 80, n)),
        "city": rng.choice(["Lisboa", "Porto", None], n),
        "note": [f"free text number {i}" for i in range(n)],
        "flag": rng.random(n) < 0.5,
        "when": pd.date_range("2024-01-01", periods=n, freq="D"),
        "price": [str(v) for v in rng.random(n).round(2)],
        "empty": [np.nan] * n,
    })


def test_auto_featurizer_makes_a_numeric_matrix_without_nan() -> None:
    X = _frame()
    Z = AutoFeaturizer().fit(X).transform(X)
    assert Z.dtype == float and not np.isnan(Z).any()
    roles = describe_columns(X)
    assert roles["onehot"] == ["city"] and roles["ordinal"] == ["note"] and roles["datetime"] == ["when"]
    assert roles["numeric_text"] == ["price"] and "empty" in roles["drop"]


def test_unseen_categories_and_missing_values_at_predict_time() -> None:
    X = _frame()
    fz = AutoFeaturizer().fit(X)
    new = X.head(3).copy()
    new.loc[:, "city"] = ["Faro", None, "Porto"]
    new.loc[:, "age"] = np.nan
    Z = fz.transform(new)
    assert Z.shape == (3, len(fz.feature_names_)) and not np.isnan(Z).any()


def test_missing_column_at_predict_time_is_named() -> None:
    fz = AutoFeaturizer().fit(_frame())
    with pytest.raises(ValueError, match="city"):
        fz.transform(_frame().drop(columns=["city"]))


@pytest.mark.parametrize("scaler", SCALER_NAMES)
def test_every_scaler_builds_a_named_pipeline_that_fits_a_frame(scaler: str) -> None:
    X = _frame()
    y = np.where(X["flag"], "yes", "no")
    model = AutoMLModel("classification", make_pipeline("classification", "LogisticRegression", scaler, {"C": 1.0},
                                                        featurize=True)).fit(X, y)
    assert set(model.predict(X)) <= {"yes", "no"}
    assert model.predict_proba(X).shape == (len(X), 2)
    assert pipeline_name(scaler, "LightGBM").endswith(" LightGBM")
    assert make_scaler(scaler) is not None
