"""wait_for_completion(show_output=True) of an AutoML run: the iteration table, and a bar of iterations done/total."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_iris

from nbml import Experiment, Workspace
from nbml.automl import AutoMLConfig


@pytest.mark.slow  # about 20 s on an idle machine: AutoML children are real runs
def test_show_output_counts_iterations_done_of_total(ws: Workspace, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NBML_PROGRESS", "1")  # captured stderr is no terminal: ask for the line anyway
    X, y = load_iris(return_X_y=True)
    cfg = AutoMLConfig(task="classification", X=X, y=y, iterations=3, n_cross_validations=2,
                       primary_metric="accuracy", allowed_models=["LogisticRegression", "DecisionTree"],
                       enable_voting_ensemble=False, enable_stack_ensemble=False)
    run = Experiment(ws, "progress").submit(cfg)
    run.wait_for_completion(show_output=True)
    captured = capsys.readouterr()
    assert captured.out.count("\n") >= 3 + 3  # the header, then one row per iteration
    line = captured.err.replace("\r", "\n").strip().splitlines()[-1]
    assert "Iterations" in line and "3/3" in line
