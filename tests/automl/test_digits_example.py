"""The seed's remote AutoML example (digits, data_script, 2 concurrent iterations) on the local target."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets

from nbml import Experiment, Workspace
from nbml.automl import AutoMLConfig, AutoMLRun, ensemble, retrieve_model_explanation
from nbml.automl.metrics import ALL_METRICS
from nbml.runs.run import Run

GET_DATA = """
from sklearn import datasets

def get_data():
    digits = datasets.load_digits()
    return {"X": digits.data[10:, :], "y": digits.target[10:]}
"""


def test_seed_digits_example(ws: Workspace, project: Callable[..., Path], capsys: pytest.CaptureFixture[str],
                             tmp_path: Path) -> None:
    project_folder = str(project(**{"get_data.py": GET_DATA}))
    automl_config = AutoMLConfig(task="classification", debug_log="automl_errors.log", path=project_folder,
                                 compute_target="local", data_script=project_folder + "/get_data.py",
                                 iteration_timeout_minutes=10, iterations=6, n_cross_validations=5,
                                 primary_metric="AUC_weighted", preprocess=False, max_concurrent_iterations=2,
                                 verbosity=logging.INFO, model_explainability=True)
    remote_run = Experiment(ws, "automl_remote").submit(automl_config, show_output=True)
    assert isinstance(remote_run, AutoMLRun)
    assert remote_run.get_status() == "Completed"

    table = capsys.readouterr().out
    assert "ITERATION" in table and "PIPELINE" in table and "BEST" in table
    children = [c for c in remote_run.get_children() if c.type == "automl_iteration"]
    assert len(children) == 6
    for child in children:  # one table row per iteration, and every metric of the task logged
        assert f" {child.number:>9}   {child.display_name}" in table
        assert child.id == f"{remote_run.id}_{child.number}"
        assert child.get_status() == "Completed", child.get_details().get("error")
        assert set(ALL_METRICS["classification"]) <= set(child.get_metrics())
        props = child.get_properties()
        assert {"iteration", "run_preprocessor", "run_algorithm", "hyperparameters"} <= set(props)
        json.loads(props["hyperparameters"])
    algorithms = {c.get_properties()["run_algorithm"] for c in children}
    assert {"VotingEnsemble", "StackEnsemble"} <= algorithms

    # The voting ensemble is Caruana selection over every finished iteration's out-of-fold predictions (the
    # coordinator selects, and ships the ensemble children only the members it keeps)
    singles = [c for c in children if "Ensemble" not in c.get_properties()["run_algorithm"]]
    preds = []
    for c in singles:
        c.download_file("outputs/predictions.npz", str(tmp_path / f"{c.number}.npz"))
        with np.load(tmp_path / f"{c.number}.npz") as npz:
            preds.append(npz["pred"])
            y_oof, classes = npz["y_true"], npz["classes"]
    weights, _ = ensemble.caruana("classification", "AUC_weighted", y_oof, preds, classes, rounds=40, init_size=5)
    voting = next(c for c in children if c.get_properties()["run_algorithm"] == "VotingEnsemble")
    props = voting.get_properties()
    chosen = dict(zip(json.loads(props["ensembled_iterations"]), json.loads(props["ensemble_weights"]), strict=True))
    assert chosen == pytest.approx({singles[i].number: w for i, w in weights.items()})
    assert sorted(json.loads(props["hyperparameters"])["ensembled_iterations"]) == sorted(chosen)

    best_run, fitted_model = remote_run.get_output()
    assert best_run.get_metrics()["AUC_weighted"] >= 0.99
    digits = datasets.load_digits()
    held_out = fitted_model.predict(digits.data[:10])  # rows the search never saw
    assert np.mean(held_out == digits.target[:10]) >= 0.9

    first_run, first_model = remote_run.get_output(iteration=0)
    assert first_run.get_properties()["run_algorithm"] == "LightGBM"
    assert first_model.predict_proba(digits.data[:3]).shape == (3, 10)
    frame = remote_run.get_children_metrics()
    assert list(frame.index) == list(range(6)) and frame["AUC_weighted"].min() > 0.9

    registered = remote_run.register_model(model_name="digits-best", description="best AutoML pipeline")
    assert registered.version == 1 and registered.run_id == best_run.id

    again = AutoMLRun(Experiment(ws, "automl_remote"), remote_run.id)  # as after a kernel restart
    assert again.get_best_child().id == best_run.id
    assert isinstance(Run.get(ws, remote_run.id), AutoMLRun)

    shap_values, expected_values, overall_summary, overall_imp, per_class_summary, per_class_imp = \
        retrieve_model_explanation(best_run)
    assert len(overall_imp) == len(overall_summary) == 64
    assert overall_summary == sorted(overall_summary, reverse=True)
    assert len(per_class_summary) == len(per_class_imp) == 10 == len(expected_values) == len(shap_values)
