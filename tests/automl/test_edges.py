"""AutoML's edges: too few rows for the folds, a model within the time limit, a failed iteration's real error."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbml import Experiment, Workspace
from nbml.automl import AutoMLConfig
from nbml.automl.errors import DataException


def _refused(ws: Workspace, match: str, **settings: Any) -> None:
    with pytest.raises(DataException, match=match):
        Experiment(ws, "edges").submit(AutoMLConfig(**{"task": "classification", "iterations": 2, **settings}))
    assert ws.store.list_runs() == []  # nothing recorded
    assert not (ws.path / "runs").exists() or not any((ws.path / "runs").iterdir())


def test_fewer_rows_than_folds_is_refused_at_submit(ws: Workspace) -> None:
    _refused(ws, r"n_cross_validations=5 needs at least 5 rows, but the training data has 4; .*"
                 r"n_cross_validations=4 or fewer", X=np.arange(8.0).reshape(4, 2), y=[0, 1, 0, 1],
             n_cross_validations=5)


def test_a_class_with_fewer_rows_than_folds_is_refused_at_submit(ws: Workspace) -> None:
    y = ["a"] * 10 + ["b"] * 2
    _refused(ws, r"n_cross_validations=3 needs at least 3 rows of every class, but class 'b' has 2 row.*"
                 r"n_cross_validations=2 or fewer", X=np.arange(24.0).reshape(12, 2), y=y, n_cross_validations=3)


def test_the_default_folds_are_named_when_a_class_is_too_small(ws: Workspace) -> None:
    y = [0] * 20 + [1] * 3
    _refused(ws, r"n_cross_validations=5 \(the default below 20,000 rows\) .* class 1 has 3 rows",
             X=np.arange(46.0).reshape(23, 2), y=y)


DESTRUCTOR_GET_DATA = """
import os
from sklearn.datasets import load_iris


class Handle:
    def __del__(self):
        raise RuntimeError("secondary error from a destructor")


def get_data():
    X, y = load_iris(return_X_y=True)
    if os.environ.get("NBML_RUN_ID"):  # inside an iteration: fail, leaving an object in a reference cycle
        h = Handle()
        h.me = h
        raise ValueError("the real cause")
    return {"X": X, "y": y}
"""


def test_a_failed_iteration_shows_its_real_exception(ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"get_data.py": DESTRUCTOR_GET_DATA})
    cfg = AutoMLConfig(task="classification", path=str(folder), data_script=str(folder / "get_data.py"),
                       iterations=1, allowed_models=["LogisticRegression"])
    run = Experiment(ws, "edges").submit(cfg)
    run.wait_for_completion(raise_on_error=False, timeout_seconds=120)
    child = ws.store.get_run(f"{run.id}_0")
    assert child is not None and child["status"] == "Failed"
    assert child["error"].rstrip().endswith("ValueError: the real cause"), child["error"]
    assert "the real cause" in run._refresh()["error"]
    log = (run.workspace.run_dir(child["run_id"]) / "nbml-logs" / "driver_log.txt").read_text()
    assert "secondary error from a destructor" in log  # still shown, but not as the run's error


@pytest.mark.slow  # the experiment runs its full minute
def test_a_model_within_the_time_limit_on_wide_random_data(ws: Workspace) -> None:
    """1,000 rows x 5,000 random features, experiment_timeout_minutes=1: the baseline gives a model in time."""
    rng = np.random.default_rng(0)
    X, y = rng.random((1000, 5000)), rng.integers(0, 2, 1000)
    started = time.time()
    run = Experiment(ws, "edges").submit(AutoMLConfig(task="classification", X=X, y=y,
                                                      experiment_timeout_minutes=1))
    run.wait_for_completion(timeout_seconds=180)
    rec = run._refresh()
    assert rec["status"] == "Completed", rec["error"]
    assert rec["ended_at"] - rec["created_at"] < 75  # the minute, plus stopping the last iteration
    best, model = run.get_output()
    assert best.get_status() == "Completed"
    assert model.predict(X[:10]).shape == (10,)
    for child in run.get_children():  # an iteration the limit stopped says so, naming the user's setting
        error = child._refresh().get("error") or ""
        assert "max_run_duration_seconds" not in error
        if child.get_status() == "Failed":
            assert "experiment_timeout_minutes=1" in error, error
    assert time.time() - started < 180


def test_on_a_tie_the_best_model_is_the_ensemble_of_several_iterations(ws: Workspace) -> None:
    """Saturated data: every model scores AUC 1.0 out of fold. The voting ensemble ties them and averages
    several, so it is the best child (and the model get_output returns), for the coordinator and the run alike;
    between single models the earlier iteration still wins."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-5, 1, (60, 3)), rng.normal(5, 1, (60, 3))])  # two far-apart blobs
    y = np.repeat(["a", "b"], 60)
    cfg = AutoMLConfig(task="classification", primary_metric="AUC_weighted", X=X, y=y, iterations=4,
                       n_cross_validations=3, allowed_models=["LogisticRegression", "KNN"])
    run = Experiment(ws, "tie").submit(cfg)
    run.wait_for_completion(timeout_seconds=180)
    children = {c.get_properties()["run_algorithm"]: c for c in run.get_children() if c.type == "automl_iteration"}
    assert {c.get_metrics()["AUC_weighted"] for c in children.values()} == {1.0}
    voting = children["VotingEnsemble"]
    assert len(json.loads(voting.get_properties()["ensembled_iterations"])) == 2
    assert run.get_properties()["best_child_run_id"] == voting.id == run.get_best_child().id
    best, model = run.get_output()
    assert best.id == voting.id and type(model).__name__ == "EnsembleModel"
    assert run.get_output(iteration=0)[0].id == children["LogisticRegression"].id
