"""A HyperDrive parent whose supervisor dies mid-search resumes under a new one: every trial once, none lost.

The test sends SIGKILL to the parent's supervisor (the children's jobs run on, in their own sessions), then
takes the one recovery path any reader takes (`ensure_supervised`), which starts a new supervisor.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from nbml import Experiment, ScriptRunConfig, Workspace
from nbml.hyperdrive import HyperDriveConfig, PrimaryMetricGoal, RandomParameterSampling, choice, uniform
from nbml.hyperdrive.parameters import Sampler
from nbml.runs.recovery import ensure_supervised

TRAIN = """
import argparse, time
from nbml import Run

p = argparse.ArgumentParser()
p.add_argument("--quality", type=float)
args = p.parse_args()
run = Run.get_context()
for epoch in range(1, 5):
    run.log("accuracy", args.quality * epoch / 4)
    time.sleep(0.5)
"""


def _wait(fn: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_killed_parent_supervisor_resumes_the_trials(ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"train.py": TRAIN})
    src = ScriptRunConfig(source_directory=str(folder), script="train.py")
    hd = HyperDriveConfig(run_config=src, hyperparameter_sampling=RandomParameterSampling(
                              {"--quality": choice(0.2, 0.5, 0.9, 1.0)}),
                          primary_metric_name="accuracy", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                          max_total_runs=5, max_concurrent_runs=2, seed=3)
    run = Experiment(ws, "hd-resume").submit(hd)

    def mid_search() -> bool:
        kids = ws.store.children(run.id)
        return any(c["status"] == "Completed" for c in kids) and \
            any(c["status"] == "Running" and c["handle_json"] for c in kids)

    _wait(mid_search, 120, "a finished trial and a running one")
    pid = int(ws.store.get_run(run.id)["supervisor_pid"])
    proc = psutil.Process(pid)
    os.kill(pid, signal.SIGKILL)
    proc.wait(10)
    before = {c["run_id"]: c for c in ws.store.children(run.id)}
    finished = {k: c for k, c in before.items() if c["status"] == "Completed"}
    params_before = {k: json.loads(ws.store.get_properties(k)["hyperparameters"]) for k in before}

    assert ensure_supervised(ws.store, ws.store.get_run(run.id)) == "adopted"
    run.wait_for_completion(timeout_seconds=180)
    assert run.get_status() == "Completed"
    kids = ws.store.children(run.id)
    assert sorted(c["iteration"] for c in kids) == list(range(5))
    for c in kids:  # Completed; or, if the kill fell between starting a job and recording it, Failed saying so
        assert c["status"] == "Completed" or (c["run_id"] in before and "before it recorded the job's handle"
                                               in (c["error"] or "")), (c["run_id"], c["status"], c["error"])
    for run_id, old in finished.items():
        assert ws.store.get_run(run_id)["ended_at"] == old["ended_at"]  # not run again
    for c in kids:  # each trial's job ran once (an adopted one was reattached, not started again): 4 epochs
        if c["status"] == "Completed":
            assert len(ws.store.get_metrics(c["run_id"], "accuracy")["accuracy"]) == 4
    for run_id, params in params_before.items():
        assert json.loads(ws.store.get_properties(run_id)["hyperparameters"]) == params
    # the draws go on where they stopped: the same five as an uninterrupted search with this seed
    sampler = Sampler(run.config["sampling"], "maximize", seed=3)
    expected = [sampler.ask()[1] for _ in range(5)]  # type: ignore[index]
    got = [json.loads(ws.store.get_properties(c["run_id"])["hyperparameters"]) for c in kids]
    assert got == expected
    best = run.get_best_run_by_primary_metric()
    top = max(p["--quality"] for c, p in zip(kids, got, strict=True) if c["status"] == "Completed")
    assert best is not None and json.loads(best.get_properties()["hyperparameters"])["--quality"] == top


def test_a_bayesian_sampler_is_rebuilt_from_stored_trials() -> None:
    space = {"name": "BAYESIAN", "parameter_space": {"--lr": uniform(0.0, 1.0), "--bs": choice(16, 32, 64)}}
    first = Sampler(space, "maximize", seed=0)
    draws = [first.ask() for _ in range(3)]
    records = [first.records[t] for t, _ in draws]  # type: ignore[misc]
    second = Sampler(space, "maximize", seed=0)
    tokens = second.resume([(records[0], 0.7, False), (records[1], None, False), (records[2], None, True)])
    states = [t.state.name for t in second.study.trials]
    assert states == ["COMPLETE", "FAIL", "RUNNING"] and len(set(tokens)) == 3
    second.tell(tokens[2], 0.9)  # the adopted trial is told when it ends
    assert second.study.trials[2].value == 0.9
    token, params = second.ask()  # type: ignore[misc]
    assert token not in tokens and set(params) == {"--lr", "--bs"}
