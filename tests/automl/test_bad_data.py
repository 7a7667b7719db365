"""Bad data and bad settings fail at submit, with a message that says what to fix, and record nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nbml import Experiment, Workspace
from nbml.automl import AutoMLConfig
from nbml.automl.errors import ConfigException, DataException


def _submit_fails(ws: Workspace, exc: type[Exception], match: str, **settings: Any) -> None:
    with pytest.raises(exc, match=match):
        cfg = AutoMLConfig(**{"task": "classification", "iterations": 2, **settings})
        Experiment(ws, "bad-data").submit(cfg)
    assert ws.store.list_runs() == []


def test_data_script_without_get_data(ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"get_data.py": "def load():\n    return {}\n"})
    _submit_fails(ws, DataException, r"defines no get_data\(\)", path=str(folder),
                  data_script=str(folder / "get_data.py"))


def test_get_data_without_y(ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"get_data.py": "def get_data():\n    return {'X': [[1], [2]]}\n"})
    _submit_fails(ws, DataException, "returned no y", path=str(folder), data_script=str(folder / "get_data.py"))


def test_x_and_y_of_different_lengths(ws: Workspace) -> None:
    _submit_fails(ws, DataException, "X has 10 rows but y has 9 labels", X=np.zeros((10, 2)), y=[0, 1] * 4 + [0])


def test_label_column_that_does_not_exist(ws: Workspace) -> None:
    frame = pd.DataFrame({"a": range(10), "label": [0, 1] * 5})
    _submit_fails(ws, DataException, r"label_column_name='target' is not a column.*a, label", training_data=frame,
                  label_column_name="target")


def test_single_class(ws: Workspace) -> None:
    _submit_fails(ws, DataException, "single class", X=np.zeros((10, 2)), y=[1] * 10)


def test_nan_labels(ws: Workspace) -> None:
    y = np.array([0.0, 1.0] * 5)
    y[3] = np.nan
    _submit_fails(ws, DataException, r"1 missing \(NaN/None\) labels, e.g. at rows 3", X=np.zeros((10, 2)), y=y)


def test_metric_that_does_not_fit_the_task(ws: Workspace) -> None:
    _submit_fails(ws, ConfigException, "r2_score.*does not fit task='classification'", X=np.zeros((10, 2)),
                  y=[0, 1] * 5, primary_metric="r2_score")


def test_strings_with_featurization_off(ws: Workspace) -> None:
    frame = pd.DataFrame({"city": ["a", "b"] * 5, "y": [0, 1] * 5})
    _submit_fails(ws, DataException, "not numeric and featurization is off", training_data=frame,
                  label_column_name="y", preprocess=False)


def test_unknown_setting_and_unknown_model(ws: Workspace) -> None:
    _submit_fails(ws, ConfigException, "unknown settings: max_iterations", X=np.zeros((4, 1)), y=[0, 1] * 2,
                  max_iterations=3)
    _submit_fails(ws, ConfigException, "allowed_models: unknown model 'DeepForest'", X=np.zeros((4, 1)),
                  y=[0, 1] * 2, allowed_models=["DeepForest"])


def test_no_data_at_all() -> None:
    with pytest.raises(ConfigException, match="no training data"):
        AutoMLConfig(task="classification")


def test_old_and_new_setting_names_mean_the_same() -> None:
    old = AutoMLConfig(task="regression", X=[[1]], y=[1], max_time_sec=600, concurrent_iterations=3,
                       preprocess=True, blacklist_models=["KNN"])
    new = AutoMLConfig(task="regression", X=[[1]], y=[1], experiment_timeout_minutes=10,
                       max_concurrent_iterations=3, featurization="auto", blocked_models=["KNN"])
    assert old.user_settings == new.user_settings
