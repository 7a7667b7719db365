"""Stopping an experiment: cancel one iteration or all, per-iteration and experiment timeouts, exit score."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nbml import Experiment, Workspace
from nbml.automl import AutoMLConfig, AutoMLRun

# get_data() is slow only inside an iteration (a job has NBML_RUN_ID), so submitting stays fast
SLOW_GET_DATA = """
import os, time
from sklearn.datasets import load_iris

def get_data():
    if os.environ.get("NBML_RUN_ID"):
        time.sleep(60)
    X, y = load_iris(return_X_y=True)
    return {"X": X, "y": y}
"""


def _wait(fn: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def _status(run: AutoMLRun, n: int) -> str | None:
    rec = run.workspace.store.get_run(f"{run.id}_{n}")
    return rec["status"] if rec else None


def test_cancel_one_iteration_then_the_experiment(ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"get_data.py": SLOW_GET_DATA})
    cfg = AutoMLConfig(task="classification", path=str(folder), data_script=str(folder / "get_data.py"),
                       iterations=10, max_concurrent_iterations=2, enable_voting_ensemble=False,
                       enable_stack_ensemble=False)
    run = Experiment(ws, "control").submit(cfg)
    _wait(lambda: _status(run, 0) == "Running" and _status(run, 1) == "Running")
    run.cancel_iteration(0)
    _wait(lambda: _status(run, 0) == "Canceled", 20)
    _wait(lambda: _status(run, 2) == "Running", 20)  # the search goes on with another iteration
    assert _status(run, 1) == "Running" and run.get_status() == "Running"
    started = time.monotonic()
    run.cancel()
    _wait(lambda: run.get_status() == "Canceled", 30)
    assert time.monotonic() - started < 30
    assert {c.get_status() for c in run.get_children()} == {"Canceled"}


def test_iteration_timeout_and_experiment_timeout(ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"get_data.py": SLOW_GET_DATA})
    cfg = AutoMLConfig(task="classification", path=str(folder), data_script=str(folder / "get_data.py"),
                       iterations=50, max_concurrent_iterations=2, iteration_timeout_minutes=0.1,
                       experiment_timeout_minutes=0.4)
    started = time.time()
    run = Experiment(ws, "control").submit(cfg)
    run.wait_for_completion(raise_on_error=False, timeout_seconds=120)
    rec = run._refresh()
    assert rec["ended_at"] - rec["created_at"] < 45  # 24 s allowed, plus the last iterations' shutdown
    assert rec["status"] == "Failed" and "iterations failed" in rec["error"]
    children = list(run.get_children())
    assert 2 <= len(children) <= 10
    errors = [c.get_details().get("error", {}).get("error", {}).get("message", "") for c in children]
    # stopped by iteration_timeout_minutes, or (on a slow machine) by experiment_timeout_minutes: named either way
    assert any("exceeded iteration_timeout_minutes=0.1" in e or "experiment_timeout_minutes=0.4 ran out" in e
               for e in errors), errors
    assert time.time() - started < 120


def test_frame_with_missing_values_and_strings_stops_at_the_exit_score(ws: Workspace) -> None:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"size": rng.random(n) * 100, "city": rng.choice(["Lisboa", "Porto", "Faro"], n),
                          "note": [f"id-{i}" for i in range(n)]})
    frame["price"] = frame["size"] * 3 + frame["city"].map({"Lisboa": 50, "Porto": 20, "Faro": 0}) + rng.normal(0, 5, n)
    frame.loc[rng.random(n) < 0.1, "size"] = np.nan
    frame.loc[rng.random(n) < 0.1, "city"] = None
    cfg = AutoMLConfig(task="regression", primary_metric="r2_score", training_data=frame,
                       label_column_name="price", validation_size=0.25, iterations=12, max_concurrent_iterations=2,
                       experiment_exit_score=0.5, enable_voting_ensemble=False, enable_stack_ensemble=False)
    run = Experiment(ws, "control").submit(cfg)
    run.wait_for_completion(timeout_seconds=180)
    children = list(run.get_children())
    assert len(children) < 12  # stopped early
    best, model = run.get_output()
    assert best.get_metrics()["r2_score"] >= 0.5
    best_so_far = run.get_metrics()["r2_score"]  # the parent logs the best score each time it improves
    assert (best_so_far[-1] if isinstance(best_so_far, list) else best_so_far) == best.get_metrics()["r2_score"]
    new = pd.DataFrame({"size": [10.0, np.nan], "city": ["Braga", None], "note": ["id-x", None]})
    assert np.isfinite(model.predict(new)).all()


def test_out_of_time_before_any_model_the_baseline_still_finishes(ws: Workspace, project: Callable[..., Path]) -> None:
    """Every iteration takes longer than the experiment's time (here: slow data loading; in life, a loaded
    machine): the quick baseline goes on past the limit so the run ends with a model, the others stop."""
    folder = project(**{"get_data.py": SLOW_GET_DATA.replace("time.sleep(60)", "time.sleep(12)")})
    cfg = AutoMLConfig(task="classification", path=str(folder), data_script=str(folder / "get_data.py"),
                       iterations=20, max_concurrent_iterations=2, experiment_timeout_minutes=0.1,
                       enable_voting_ensemble=False, enable_stack_ensemble=False)
    run = Experiment(ws, "control").submit(cfg)
    run.wait_for_completion(raise_on_error=False, timeout_seconds=120)
    rec = run._refresh()
    assert rec["status"] == "Completed", rec["error"]
    best, model = run.get_output()
    assert best.get_properties().get("baseline") == "True" and best.get_status() == "Completed"
    assert model.predict(np.zeros((2, 4))).shape == (2,)
    others = [c for c in run.get_children() if c.id != best.id]
    assert others and all(c.get_status() == "Failed" for c in others)
    for child in others:
        assert "experiment_timeout_minutes=0.1 ran out" in child._refresh()["error"]
