"""The SDK's estimators submit as script runs; HyperDrive's sampled values replace the script's own arguments."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from nbml import Experiment, Workspace
from nbml.errors import UserErrorException
from nbml.hyperdrive.config import without_sampled
from nbml.train._distributed import DistributedTrainingNotAvailable
from nbml.train.dnn import Gloo, Mpi, PyTorch, TensorFlow
from nbml.train.estimator import Estimator
from nbml.train.hyperdrive import GridParameterSampling, HyperDriveRunConfig, PrimaryMetricGoal, choice
from nbml.train.sklearn import SKLearn

TRAIN = """
import sys
from nbml import Run

run = Run.get_context()
run.log("argv", " ".join(sys.argv[1:]))
run.log("accuracy", 0.5)
"""


def _argv(run: object) -> str:
    return str(run.get_metrics()["argv"])  # type: ignore[attr-defined]


def test_sklearn_estimator_runs_its_script_with_script_params(ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"train_iris.py": TRAIN})
    est = SKLearn(source_directory=str(folder), entry_script="train_iris.py", compute_target="local",
                  script_params={"--kernel": "linear", "--penalty": 1.0, "--verbose": ""}, framework_version="0.20.3")
    run = Experiment(ws, "sk").submit(est)
    run.wait_for_completion(timeout_seconds=120)
    assert run.get_status() == "Completed"
    assert _argv(run) == "--kernel linear --penalty 1.0 --verbose"
    props = run.get_properties()
    assert props["framework"] == "scikit-learn" and props["framework_version"] == "0.20.3"


def test_distributed_settings_that_cannot_run_fail_at_submit_and_nothing_is_recorded(
        ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"train.py": TRAIN})
    exp = Experiment(ws, "dist")
    cases = [  # (estimator, what the message must say)
        (PyTorch(source_directory=str(folder), entry_script="train.py", node_count=2, distributed_training=Gloo()),
         "node_count=2 but a local"),
        (Estimator(source_directory=str(folder), entry_script="train.py", distributed_training=Mpi(0)),
         "process_count_per_node must be at least 1"),
        (TensorFlow(source_directory=str(folder), entry_script="train.py", process_count_per_node=4),
         "no distributed backend was given"),
        (Estimator(source_directory=str(folder), entry_script="train.py", distributed_backend="horovod"),
         "distributed_backend='horovod' is not one nbml runs"),
    ]
    for est, message in cases:
        with pytest.raises(UserErrorException, match=message):
            exp.submit(est)
    hd = HyperDriveRunConfig(estimator=Estimator(source_directory=str(folder), entry_script="train.py",
                                                 distributed_training=Mpi(2)),
                             hyperparameter_sampling=GridParameterSampling({"--a": choice(1)}),
                             primary_metric_name="accuracy", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                             max_total_runs=1)
    with pytest.raises(DistributedTrainingNotAvailable, match="HyperDrive runs each trial as one process"):
        exp.submit(hd)
    assert list(exp.get_runs()) == []


def test_use_gpu_is_accepted_with_a_note(project: Callable[..., Path]) -> None:
    folder = project(**{"train.py": TRAIN})
    with pytest.warns(UserWarning, match="use_gpu=True is ignored"):
        est = PyTorch(source_directory=str(folder), entry_script="train.py", use_gpu=True, framework_version="1.1")
    assert est.run_properties["framework_version"] == "1.1"


def test_hyperdrive_sampled_values_replace_the_script_arguments(ws: Workspace, project: Callable[..., Path]) -> None:
    folder = project(**{"train.py": TRAIN})
    est = SKLearn(source_directory=str(folder), entry_script="train.py",
                  script_params={"--kernel": "linear", "--penalty": 1.0, "--data": "iris"})
    hd = HyperDriveRunConfig(estimator=est, hyperparameter_sampling=GridParameterSampling(
                                 {"--kernel": choice("poly"), "--penalty": choice(0.5)}),
                             primary_metric_name="accuracy", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                             max_total_runs=1, max_concurrent_runs=1)
    run = Experiment(ws, "hd-args").submit(hd)
    run.wait_for_completion(timeout_seconds=180)
    (child,) = list(run.get_children())
    assert child.get_status() == "Completed"
    assert _argv(child) == "--data iris --kernel poly --penalty 0.5"
    assert json.loads(child.get_properties()["hyperparameters"]) == {"--kernel": "poly", "--penalty": 0.5}


def test_without_sampled_drops_pairs_equals_forms_and_keeps_negative_values() -> None:
    args = ["--kernel", "linear", "--lr=0.1", "--shift", "-0.5", "--flag", "--penalty", 1.0, "--keep", "x"]
    assert without_sampled(args, {"--kernel", "--lr", "--penalty", "--flag"}) == ["--shift", "-0.5", "--keep", "x"]


def test_hyperdrive_run_config_names_what_is_missing(project: Callable[..., Path]) -> None:
    from nbml.errors import UserErrorException

    folder = project(**{"train.py": TRAIN})
    est = Estimator(source_directory=str(folder), entry_script="train.py")
    with pytest.raises(UserErrorException, match="primary_metric_name, primary_metric_goal"):
        HyperDriveRunConfig(estimator=est, hyperparameter_sampling=GridParameterSampling({"--a": choice(1)}),
                            max_total_runs=1)
