"""SDK gaps the acceptance run over the sample notebooks found after issue 11."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbml import Workspace
from nbml.core import Experiment, Model
from nbml.core.compute import AmlCompute
from nbml.core.environment import Environment

ROOT = Path(__file__).resolve().parents[2]


def test_experiment_list_returns_the_workspace_experiments(ws: Workspace) -> None:
    for name in ("exp-a", "exp-b"):
        run = Experiment(ws, name).start_logging(outputs=None)
        run.complete()
    names = sorted(e.name for e in Experiment.list(ws))
    assert names == ["exp-a", "exp-b"]
    assert [e.name for e in Experiment.list(ws, experiment_name="exp-b")] == ["exp-b"]
    assert all(isinstance(e, Experiment) for e in Experiment.list(ws))


def test_amlcompute_supported_vmsizes_is_this_machine_in_the_sdk_shape(ws: Workspace) -> None:
    import psutil

    sizes = AmlCompute.supported_vmsizes(ws)
    assert len(sizes) == 1
    size = sizes[0]
    assert set(size) == {"name", "vCPUs", "gpus", "memoryGB", "maxResourceVolumeMB"}
    assert 1 <= size["vCPUs"] <= (os.cpu_count() or 1)
    assert size["memoryGB"] == pytest.approx(psutil.virtual_memory().total / 2**30, abs=0.1)
    assert size["gpus"] >= 0 and size["maxResourceVolumeMB"] > 0


def test_model_url_points_at_the_stored_files(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"weights")
    model = Model.register(ws, model_path=str(tmp_path / "model.pkl"), model_name="m")
    assert model.url.startswith("file://")
    from urllib.parse import unquote, urlparse

    assert Path(unquote(urlparse(model.url).path)).read_bytes() == b"weights"


def test_docker_gpu_support_is_accepted_and_warns_it_is_ignored() -> None:
    env = Environment("gpu")
    assert env.docker.gpu_support is False
    with pytest.warns(UserWarning, match="gpu_support is ignored"):
        env.docker.gpu_support = True
    assert env.docker.gpu_support is True
    assert env.docker.shared_volumes is True and env.docker.shm_size == "2g"  # the using-environments print cell


def test_import_nbml_core_reaches_nbml_data_like_azureml() -> None:
    # A fresh interpreter: `import azureml.core` then `azureml.data.__version__` (a notebook's first cell).
    code = "import nbml.core\nprint(nbml.data.__version__, nbml.core.Dataset.__name__)"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.split() == ["0.1.0", "Dataset"]


def test_unknown_nbml_attribute_still_raises() -> None:
    import nbml

    with pytest.raises(AttributeError):
        nbml.not_a_module  # noqa: B018


CHILDREN = """
from nbml.core import Run
run = Run.get_context()
for c, child in enumerate(run.create_children(count=3)):
    child.log(name="Hello from child run ", value=c)
    child.complete()
for child in run.create_children(tag_key="color", tag_values=["red", "blue"]):
    child.log("seen", 1)
    child.complete()
"""


def test_create_children_inside_a_script_makes_real_child_runs(ws: Workspace, project) -> None:  # type: ignore[no-untyped-def]
    from nbml.core import ScriptRunConfig

    project(**{"hello_with_children.py": CHILDREN})
    run = Experiment(ws, "kids").submit(ScriptRunConfig(".", "hello_with_children.py"))
    run.wait_for_completion(timeout_seconds=120, show_output=False)
    assert run.get_status() == "Completed"
    children = sorted(run.get_children(), key=lambda c: c._rec["created_at"])
    assert len(children) == 5
    assert {c.get_status() for c in children} == {"Completed"}
    counted = [c.get_metrics().get("Hello from child run ") for c in children[:3]]
    assert sorted(counted) == [0, 1, 2]
    assert sorted(c.get_tags().get("color") for c in children[3:]) == ["blue", "red"]


def test_create_children_from_the_notebook_and_its_errors(ws: Workspace) -> None:
    from nbml.errors import UserErrorException

    parent = Experiment(ws, "kids-nb").start_logging(outputs=None)
    kids = parent.create_children(tag_key="k", tag_values=[1, 2])
    for kid in kids:
        kid.complete()
    assert sorted(c.get_tags()["k"] for c in parent.get_children()) == ["1", "2"]
    with pytest.raises(UserErrorException, match="count=N"):
        parent.create_children()
    with pytest.raises(UserErrorException, match="disagrees"):
        parent.create_children(count=3, tag_key="k", tag_values=[1])
    with pytest.raises(UserErrorException, match="needs tag_key"):
        parent.create_children(tag_values=[1])
    parent.complete()


def test_automl_fitted_model_offers_named_steps_get_params_and_the_featurization_summary() -> None:
    import pandas as pd
    from sklearn.datasets import load_iris

    from nbml.automl.model import AutoMLModel, EnsembleModel, make_pipeline

    iris = load_iris(as_frame=True)
    X = iris.data.copy()
    X["kind"] = ["a" if i % 2 else "b" for i in range(len(X))]
    X.iloc[3, 0] = None
    pipe = make_pipeline("classification", "LogisticRegression", "StandardScalerWrapper", {}, featurize=True)
    model = AutoMLModel("classification", pipe).fit(X, iris.target)
    assert set(model.named_steps) == {"datatransformer", "scaler", "estimator"}
    params = model.get_params()
    assert "estimator" in params and any(k.startswith("estimator__") for k in params)
    for _, step in model.steps:  # the classification sample's print_model
        assert isinstance(step.get_params(), dict)
    names = model.named_steps["datatransformer"].get_engineered_feature_names()
    assert "kind_a" in names and f"{X.columns[0]}_missing" in names
    summary = pd.DataFrame.from_records(model.named_steps["datatransformer"].get_featurization_summary())
    assert list(summary["RawFeatureName"]) == [str(c) for c in X.columns]
    assert summary.set_index("RawFeatureName").loc["kind", "EngineeredFeatureCount"] == 2
    ensemble = EnsembleModel("classification", [model, model], [0.5, 0.5], model.classes_)
    ensemble.member_iterations = [3, 7]
    assert [n for n, _ in ensemble.estimators] == ["3", "7"] and ensemble.weights == [0.5, 0.5]
    assert ensemble.get_params()["estimators"] == ["3", "7"]
    assert list(ensemble.named_steps) == ["prefittedsoftvotingensemble"]


def test_automl_continue_experiment_runs_more_iterations_numbered_on(ws: Workspace, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    from nbml.core import Experiment as Exp
    from nbml.train.automl import AutoMLConfig

    X, y = load_iris(return_X_y=True)
    cfg = AutoMLConfig(task="classification", X=X, y=y, iterations=2, n_cross_validations=2,
                       allowed_models=["LogisticRegression"], enable_voting_ensemble=False,
                       enable_stack_ensemble=False, path=str(tmp_path / "automl"))
    first = Exp(ws, "continue").submit(cfg)
    first.wait_for_completion(timeout_seconds=240)
    first.clean_preprocessor_cache()  # accepted, nothing to clean
    # the properties exploring-previous-runs reads, by the SDK's names
    props = first.get_properties()
    settings = json.loads(props["AMLSettingsJsonString"])
    assert (settings["task_type"], settings["name"], settings["iterations"]) == ("classification", "continue", 2)
    assert (props["num_iterations"], props["target"], props["primary_metric"]) == ("2", "local", cfg.primary_metric)
    # recursive metrics are the iterations', by run id (the notebook reads the iteration after the last "_")
    assert sorted(int(k.rsplit("_", 1)[-1]) for k in first.get_metrics(recursive=True)) == [0, 1]
    assert cfg.primary_metric in first.get_metrics()  # the parent's own: the best score so far
    more = first.continue_experiment(iterations=2)
    more.wait_for_completion(timeout_seconds=240)
    assert more.get_status() == "Completed"
    assert sorted(int(c["iteration"]) for c in more._iterations(own_only=True)) == [2, 3]
    # like the SDK's one continued run, the continuation answers for the earlier iterations too
    assert sorted(int(c["iteration"]) for c in more._iterations()) == [0, 1, 2, 3]
    earlier, _ = more.get_output(iteration=1)
    assert earlier.id == f"{first.id}_1"
    assert list(more.get_children_metrics().index) == [0, 1, 2, 3]
    assert more.get_properties()["continued_from"] == first.id
    _, model = more.get_output()
    assert (model.predict(X[:5]) == y[:5]).mean() >= 0.6
