"""The seed's remote AutoML example (digits, data_script) on the cluster target with 2 Dask workers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from cluster_factories import dask_target, stop_dask_targets
from sklearn import datasets

from nbml import Experiment

automl = pytest.importorskip("nbml.automl")
pytestmark = pytest.mark.dask

GET_DATA = """
from sklearn import datasets

def get_data():
    digits = datasets.load_digits()
    return {"X": digits.data[10:, :], "y": digits.target[10:]}
"""


def test_digits_automl_runs_its_iterations_on_two_dask_workers(ws, project):
    folder = str(project(**{"get_data.py": GET_DATA}))
    target = dask_target(ws, min_nodes=2, max_nodes=2)
    try:
        config = automl.AutoMLConfig(task="classification", path=folder, compute_target=target,
                                     data_script=folder + "/get_data.py", iteration_timeout_minutes=10,
                                     iterations=6, n_cross_validations=5, primary_metric="AUC_weighted",
                                     preprocess=False, max_concurrent_iterations=2, verbosity=logging.INFO)
        remote_run = Experiment(ws, "automl_dask").submit(config, show_output=False)
        remote_run.wait_for_completion(raise_on_error=True)
        children = [c for c in remote_run.get_children() if c.type == "automl_iteration"]
        assert len(children) == 6 and all(c.get_status() == "Completed" for c in children)
        for child in children:  # staged and run by the Dask backend, not locally
            prepare_log = (child.run_dir / "nbml-logs" / "prepare_log.txt").read_text()
            assert f"jobs/{target.name}/{child.id}" in prepare_log
        best_run, fitted_model = remote_run.get_output()
        assert best_run.get_metrics()["AUC_weighted"] >= 0.99
        digits = datasets.load_digits()
        assert np.mean(fitted_model.predict(digits.data[:10]) == digits.target[:10]) >= 0.9
    finally:
        stop_dask_targets(ws)
