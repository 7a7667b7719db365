"""An AutoML parent whose supervisor dies mid-search resumes under a new one: nothing lost, nothing twice.

The test kills the parent's supervisor with SIGKILL (its children's jobs keep running: they are in their
own sessions), then takes the one recovery path any reader takes (`ensure_supervised`), which starts a new
supervisor; that one runs the coordinator again from the top, and the coordinator resumes the search.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil
import pytest
from sklearn.datasets import load_iris

from nbml import Experiment, Workspace
from nbml.automl import AutoMLConfig, AutoMLRun, estimators
from nbml.automl.search import PastTrial, SearchStrategy
from nbml.runs.recovery import ensure_supervised


def _wait(fn: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def kill_supervisor(ws: Workspace, run_id: str) -> None:
    """SIGKILL the run's supervisor and wait until it is gone."""
    pid = int(ws.store.get_run(run_id)["supervisor_pid"])
    proc = psutil.Process(pid)
    os.kill(pid, signal.SIGKILL)
    proc.wait(10)


def _children(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    return ws.store.children(run_id)


@pytest.mark.slow  # eight iteration processes and two supervisors: about 40 s alone, 2 min on a busy machine
def test_a_killed_parent_supervisor_resumes_the_search(ws: Workspace) -> None:
    X, y = load_iris(return_X_y=True)
    cfg = AutoMLConfig(task="classification", X=X, y=y, iterations=8, max_concurrent_iterations=2,
                       n_cross_validations=3, allowed_models=["LogisticRegression", "DecisionTree", "RandomForest"])
    run = Experiment(ws, "resume").submit(cfg)

    def mid_search() -> bool:
        kids = _children(ws, run.id)
        done = [c for c in kids if c["status"] == "Completed"]
        return len(done) >= 2 and any(c["status"] == "Running" and c["handle_json"] for c in kids)

    _wait(mid_search, 180, "two finished iterations and one running")
    kill_supervisor(ws, run.id)
    before = {c["run_id"]: c for c in _children(ws, run.id)}
    finished_before = {k: c for k, c in before.items() if c["status"] in ("Completed", "Failed", "Canceled")}
    assert finished_before and len(before) < 8

    assert ensure_supervised(ws.store, ws.store.get_run(run.id)) == "adopted"
    run.wait_for_completion(timeout_seconds=300)
    assert run.get_status() == "Completed"

    kids = _children(ws, run.id)
    numbers = [c["iteration"] for c in kids if c["kind"] == "automl_iteration"]
    assert sorted(numbers) == list(range(8))  # every iteration exactly once, numbering went on
    assert len({c["run_id"] for c in kids}) == len(kids)
    for run_id, old in finished_before.items():  # finished children kept as they were, not run again
        now = ws.store.get_run(run_id)
        assert now["status"] == old["status"] and now["ended_at"] == old["ended_at"]
    adopted = [k for k, c in before.items() if c["status"] == "Running"]
    for run_id in adopted:  # reattached, not started again: each metric logged once
        assert not isinstance(ws.store.get_metrics(run_id, "accuracy").get("accuracy"), list)
    names = [c["display_name"] for c in kids]
    assert names.count("VotingEnsemble") == 1 and names.count("StackEnsemble") == 1
    assert all(c["status"] in ("Completed", "Failed", "Canceled") for c in kids)

    best, model = AutoMLRun(run.experiment, run.id).get_output()
    assert best.get_status() == "Completed"
    assert np.mean(model.predict(X) == y) > 0.8


def test_the_search_is_rebuilt_from_stored_trials() -> None:
    algos = estimators.algorithms_for("classification", 150, None, ["SVM", "KNN"])
    first = SearchStrategy("classification", "accuracy", algos, 150, 4)
    asked = [first.ask() for _ in range(3)]
    assert all(p.record and p.record["default"] for p in asked)
    history = [PastTrial(asked[0].record, 0.9), PastTrial(asked[1].record, None), PastTrial(asked[2].record,
                                                                                             running=True)]
    second = SearchStrategy("classification", "accuracy", algos, 150, 4, history=history)
    assert len(second.study.trials) >= 3 and second.pending == 1
    # the defaults already proposed are not proposed again: the next one is the 4th algorithm's
    assert second.ask().algorithm == algos[3]
    second.tell(second.restored[2], 0.8)  # the adopted trial is told when it ends
    assert second.pending == 1


@pytest.mark.slow  # two AutoML runs' worth of processes: 15 to 35 s on a shared machine
def test_a_resumed_parent_with_nothing_left_to_do_just_concludes(ws: Workspace) -> None:
    """A supervisor that died after the last child ended but before the parent did (simulated: the parent's
    status is set back to Running in the store, a moment a kill can't hit reliably)."""
    X, y = load_iris(return_X_y=True)
    cfg = AutoMLConfig(task="classification", X=X, y=y, iterations=2, n_cross_validations=3,
                       allowed_models=["LogisticRegression", "DecisionTree"])
    run = Experiment(ws, "resume").submit(cfg)
    run.wait_for_completion(timeout_seconds=180)
    ended = {c["run_id"]: c["ended_at"] for c in _children(ws, run.id)}
    best_before = run.get_properties()["best_child_run_id"]
    try:  # the finished parent's supervisor exits just after the parent's status is set
        psutil.Process(int(ws.store.get_run(run.id)["supervisor_pid"])).wait(30)
    except psutil.NoSuchProcess:
        pass
    with ws.store.db.tx() as c:
        c.execute("UPDATE runs SET status = 'Running', ended_at = NULL WHERE run_id = ?", (run.id,))
    assert ensure_supervised(ws.store, ws.store.get_run(run.id)) == "adopted"
    run.wait_for_completion(timeout_seconds=120)
    assert run.get_status() == "Completed"
    assert {c["run_id"]: c["ended_at"] for c in _children(ws, run.id)} == ended  # no child ran again
    assert run.get_properties()["best_child_run_id"] == best_before
