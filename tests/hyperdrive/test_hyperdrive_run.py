"""A HyperDrive parent run on the local target: script children, bandit early termination, best run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from nbml import Experiment, Run, ScriptRunConfig, Workspace
from nbml.hyperdrive import (
    BanditPolicy,
    HyperDriveConfig,
    HyperDriveRun,
    PrimaryMetricGoal,
    RandomParameterSampling,
    choice,
)

TRAIN = """
import argparse, time
from nbml import Run

p = argparse.ArgumentParser()
p.add_argument("--quality", type=float)
args = p.parse_args()
run = Run.get_context()
for epoch in range(1, 9):
    run.log("accuracy", args.quality * epoch / 8)
    time.sleep(0.5)
"""


def test_random_search_with_bandit_policy(ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"train.py": TRAIN})
    src = ScriptRunConfig(source_directory=str(folder), script="train.py")
    hd = HyperDriveConfig(run_config=src, hyperparameter_sampling=RandomParameterSampling(
                              {"--quality": choice(0.2, 0.9, 1.0)}),
                          policy=BanditPolicy(slack_factor=0.2, evaluation_interval=1, delay_evaluation=2),
                          primary_metric_name="accuracy", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                          max_total_runs=5, max_concurrent_runs=3, seed=3)
    run = Experiment(ws, "hd").submit(hd)
    assert isinstance(run, HyperDriveRun) and isinstance(Run.get(ws, run.id), HyperDriveRun)
    run.wait_for_completion(timeout_seconds=240)
    assert run.get_status() == "Completed"
    children = list(run.get_children())
    assert len(children) == 5 and all(c.id.startswith(run.id + "_") for c in children)
    params = run.get_hyperparameters()
    assert all("--quality" in p for p in params.values())
    best = run.get_best_run_by_primary_metric()
    assert best is not None and json.loads(best.get_properties()["hyperparameters"])["--quality"] >= 0.9
    stopped = [c for c in children if c.get_properties().get("early_termination") == "Bandit"]
    low = [c for c in children if json.loads(c.get_properties()["hyperparameters"])["--quality"] == 0.2]
    assert low and {c.id for c in stopped} == {c.id for c in low}  # seed 3 draws 1.0, then 0.2 four times
    assert all(c.get_status() == "Canceled" for c in stopped)
    ranked = run.get_children_sorted_by_primary_metric(top=2)
    assert ranked[0]["run_id"] == best.id and len(ranked) == 2
