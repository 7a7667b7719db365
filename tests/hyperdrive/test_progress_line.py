"""wait_for_completion(show_output=True) of a HyperDrive run: a line per ended child, a bar of runs done/total."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nbml import Experiment, ScriptRunConfig, Workspace
from nbml.hyperdrive import GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice

TRAIN = """
import argparse
from nbml import Run

p = argparse.ArgumentParser()
p.add_argument("--quality", type=float)
Run.get_context().log("accuracy", p.parse_args().quality)
"""


def test_show_output_prints_each_child_and_counts_runs_done(ws: Workspace, project: Callable[..., Path],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NBML_PROGRESS", "1")  # captured stderr is no terminal: ask for the line anyway
    folder = project(**{"train.py": TRAIN})
    hd = HyperDriveConfig(run_config=ScriptRunConfig(source_directory=str(folder), script="train.py"),
                          hyperparameter_sampling=GridParameterSampling({"--quality": choice(0.5, 0.75)}),
                          primary_metric_name="accuracy", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                          max_total_runs=2, max_concurrent_runs=2)
    run = Experiment(ws, "hd-progress").submit(hd)
    run.wait_for_completion(show_output=True, timeout_seconds=240)
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if line.startswith(run.id + "_")]
    assert len(rows) == 2 and all("Completed" in r for r in rows)
    assert any("best=0.75" in r for r in rows)
    line = captured.err.replace("\r", "\n").strip().splitlines()[-1]
    assert "Runs" in line and "2/2" in line
