"""Data references in a HyperDrive search: each child gets real paths, as a script run does; and HyperDrive
and AutoML on the ``containerinstance`` target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import SCRIPT
from waiting import wait_status

from nbml import Estimator, Experiment, ScriptRunConfig
from nbml.data import DataReferenceConfiguration, DatastoreError
from nbml.train.hyperdrive import GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice


def _search(run_config, values=(0.1, 0.2)) -> HyperDriveConfig:  # type: ignore[no-untyped-def]
    return HyperDriveConfig(run_config=run_config, hyperparameter_sampling=GridParameterSampling({"--lr": choice(*values)}),
                            primary_metric_name="acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                            max_total_runs=len(values), max_concurrent_runs=2)


def _children_seen(ws, run) -> list[dict]:  # type: ignore[no-untyped-def]
    assert wait_status(run, {"Completed", "Failed"}, 120) == "Completed", run.get_details().get("error")
    children = sorted(run.get_children(), key=lambda c: c.id)
    for child in children:
        assert child.get_status() == "Completed", child.get_details().get("error")
    return [json.loads((ws.run_dir(c.id) / "outputs" / "seen.json").read_text()) for c in children]


def test_hyperdrive_children_get_their_data_references_as_real_paths(ws, project, data_folder: Path):
    src = project(**{"train.py": SCRIPT})
    ds = ws.get_default_datastore()
    ds.upload(str(data_folder), target_path="hd", show_progress=False)
    est = Estimator(source_directory=str(src), entry_script="train.py", user_managed=True,
                    script_params={"--data-folder": ds.path("hd/raw").as_mount(),
                                   "--table": ds.path("hd/tabular/iris.csv").as_download(), "--lr": 1.0})
    est.run_config.data_references = {"whole": DataReferenceConfiguration(ds.name, path_on_datastore="hd/tabular")}
    seen = _children_seen(ws, Experiment(ws, "hd-data").submit(_search(est)))
    raw = str(ws.path / "datastores" / ds.name / "hd" / "raw")
    assert sorted(s["args"][-1] for s in seen) == ["0.1", "0.2"]
    for s in seen:
        args = s["args"]
        assert args[:2] == ["--data-folder", raw] and args.count("--lr") == 1  # the sampled value replaces 1.0
        assert s["contents"][raw] == ["x.bin"]
        table = args[args.index("--table") + 1]
        assert table.startswith(s["cwd"]) and s["contents"][table].startswith("a,b,label\n0,0.0,0\n")
        assert s["env"]["AZUREML_DATAREFERENCE_whole"] == str(ws.path / "datastores" / ds.name / "hd" / "tabular")


def test_a_search_naming_a_missing_datastore_fails_at_submit_and_records_nothing(ws, project):
    src = project(**{"train.py": SCRIPT})
    config = ScriptRunConfig(source_directory=str(src), script="train.py")
    config.run_config.data_references = {"gone": DataReferenceConfiguration("nosuchstore")}
    with pytest.raises(DatastoreError, match="No datastore 'nosuchstore'"):
        Experiment(ws, "hd-bad").submit(_search(config))
    assert ws.store.list_runs(limit=10) == []


def test_upload_of_a_folder_that_does_not_exist_says_so(ws, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatastoreError, match=r"there is no folder 'data' \(from '.*'\); create it"):
        ws.get_default_datastore().upload("data", "weather")


# -- the containerinstance target ------------------------------------------------------------------------------
PROBE = """
import os, sys
from nbml import Run

run = Run.get_context()
limits = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
run.tag("memory", next((open(p).read().strip() for p in limits if os.path.exists(p)), "unknown"))
data = sys.argv[sys.argv.index("--data") + 1]
run.tag("data", ",".join(sorted(os.listdir(data))))
run.tag("cwd", os.getcwd())
run.log("acc", float(sys.argv[sys.argv.index("--lr") + 1]))
"""


def _aci_run_config(monkeypatch, memory_gb: float):  # type: ignore[no-untyped-def]
    from cluster_factories import BASE_IMAGE, require_docker

    from nbml.environment import DEFAULT_CPU_IMAGE
    from nbml.runs.config import RunConfiguration

    require_docker()
    monkeypatch.setenv("NBML_DOCKER_BASE_IMAGE", BASE_IMAGE)  # what DEFAULT_CPU_IMAGE is made from offline
    rc = RunConfiguration()
    rc.target = "containerinstance"
    rc.container_instance.cpu_cores = 1
    rc.container_instance.memory_gb = memory_gb
    rc.environment.docker.enabled = True
    rc.environment.docker.base_image = DEFAULT_CPU_IMAGE
    return rc


@pytest.mark.docker
def test_hyperdrive_on_containerinstance_runs_each_child_in_a_limited_container_with_its_data(
        ws, project, data_folder: Path, monkeypatch):
    src = project(**{"probe.py": PROBE})
    ds = ws.get_default_datastore()
    ds.upload(str(data_folder), target_path="aci", show_progress=False)
    config = ScriptRunConfig(str(src), "probe.py", arguments=["--data", ds.path("aci/raw").as_mount()],
                             run_config=_aci_run_config(monkeypatch, 0.5))
    run = Experiment(ws, "hd-aci").submit(_search(config))
    assert wait_status(run, {"Completed", "Failed"}, 300) == "Completed", run.get_details().get("error")
    children = list(run.get_children())
    assert len(children) == 2
    for child in children:
        assert child.get_status() == "Completed", child.get_details().get("error")
        tags = child.get_tags()
        assert child.get_details()["target"] == "containerinstance"
        assert tags["cwd"] == f"/tmp/nbml_run/{child.id}" and tags["data"] == "x.bin"  # in the container
        assert tags["memory"] == str(512 << 20)  # the engine enforces memory_gb
    assert run.get_best_run_by_primary_metric().get_metrics()["acc"] == 0.2


def test_automl_on_a_container_target_gets_the_packages_its_iterations_import():
    from importlib.metadata import version

    from nbml.automl.submit import _container_environment
    from nbml.environment import Environment

    env = _container_environment(Environment("automl"), ["LogisticRegression", "LightGBM"])
    pins = env.spec().pip
    for name in ("numpy", "pandas", "scipy", "scikit-learn", "joblib", "lightgbm"):
        assert f"{name}=={version(name)}" in pins  # this machine's versions: the fitted models load back here
    assert not any(p.startswith("xgboost") for p in pins)  # only the algorithms the search may pick
    own = Environment("mine")
    own.pip_requirements = ["scikit-learn"]
    assert _container_environment(own, ["LightGBM"]).spec().pip == ["scikit-learn"]  # the user's choice stays
    managed = Environment("managed")
    managed.python.user_managed_dependencies = True
    assert _container_environment(managed, []).spec().pip == []


@pytest.mark.docker
@pytest.mark.slow
def test_automl_on_containerinstance_runs_its_iterations_in_limited_containers(ws, tmp_path: Path, monkeypatch):
    from sklearn.datasets import load_iris

    from nbml.train.automl import AutoMLConfig

    rc = _aci_run_config(monkeypatch, 1)
    X, y = load_iris(return_X_y=True)
    config = AutoMLConfig(task="classification", X=X, y=y, iterations=2, primary_metric="accuracy",
                          n_cross_validations=2, allowed_models=["LogisticRegression"], run_configuration=rc)
    run = Experiment(ws, "automl-aci").submit(config)
    run.wait_for_completion(raise_on_error=False)  # the first time, the image gets numpy/pandas/scikit-learn
    assert run.get_status() == "Completed", run.get_details().get("error")
    iterations = [c for c in run.get_children() if c.get_details()["target"] == "containerinstance"]
    assert len(iterations) >= 2
    for child in iterations:
        assert child.get_status() == "Completed", child.get_details().get("error")
    assert ws.store.get_run(run.id)["config"]["resources"] == {"cpu_cores": 1.0, "memory_gb": 1.0}
    _best, model = run.get_output()
    assert list(model.predict(X[:3])) == list(y[:3])


@pytest.mark.docker
def test_a_container_created_late_by_a_busy_engine_does_not_block_the_retry():
    """The fault is made for real: a container of the run's name that the engine created after the client
    stopped waiting (here created just before), so the next create meets "409 Conflict"."""
    import docker
    from cluster_factories import BASE_IMAGE, require_docker

    from nbml.compute.docker import _create

    require_docker()
    client = docker.from_env()
    name = f"nbml-late-create-{id(client)}"
    late = client.containers.create(BASE_IMAGE, ["true"], name=name)
    try:
        made = _create(client, {"image": BASE_IMAGE, "command": ["true"], "name": name}, wait=30)
        assert made.id != late.id and client.containers.get(name).id == made.id
    finally:
        for c in client.containers.list(all=True, filters={"name": name}):
            c.remove(force=True)
        client.close()
