"""Run inside a venv that has only nbml's core dependencies: what works, and what each missing extra says.

Prints one JSON object (the test reads it); every step catches its own error so one failure doesn't hide others.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import traceback
from pathlib import Path
from typing import Any

results: dict[str, Any] = {}


def step(name: str):  # type: ignore[no-untyped-def]
    def wrap(fn):  # type: ignore[no-untyped-def]
        try:
            results[name] = {"ok": True, "value": fn()}
        except BaseException as exc:
            results[name] = {"ok": False, "type": type(exc).__name__, "error": str(exc),
                             "trace": traceback.format_exc()[-2000:]}
        return fn
    return wrap


work = Path(sys.argv[1])


@step("installed")
def _installed() -> dict[str, bool]:
    names = ["asyncssh", "docker", "distributed", "optuna", "lightgbm", "xgboost", "shap", "sklearn", "pandas",
             "scipy", "jupyterlab", "numpy", "psutil", "ipywidgets"]
    return {n: importlib.util.find_spec(n) is not None for n in names}


@step("import")
def _import() -> str:
    import nbml

    return str(nbml.__file__)


@step("local_run")
def _local_run() -> dict[str, Any]:
    from nbml import Experiment, ScriptRunConfig, Workspace

    src = work / "project"
    src.mkdir()
    (src / "train.py").write_text(
        "from nbml import Run\nrun = Run.get_context()\nrun.log('accuracy', 0.9)\nprint('trained on core')\n")
    ws = Workspace.from_config(str(src))
    run = Experiment(ws, "core-only").submit(ScriptRunConfig(source_directory=str(src), script="train.py"))
    run.wait_for_completion(show_output=False)
    return {"status": run.get_status(), "metrics": run.get_metrics(), "files": run.get_file_names()}


@step("widget_and_magics")
def _widget() -> list[str]:
    from nbml.magics import load_ipython_extension
    from nbml.widgets import RunDetails

    return [RunDetails.__name__, load_ipython_extension.__name__]


@step("automl_submit")
def _automl() -> None:
    from nbml import AutoMLConfig, Experiment, Workspace

    ws = Workspace.from_config(str(work / "project"))
    exp = Experiment(ws, "automl-core")
    config = AutoMLConfig(task="classification", data_script=str(work / "project" / "get_data.py"),
                          primary_metric="accuracy", iterations=2)
    try:
        exp.submit(config)
    finally:
        results["automl_runs_created"] = len(list(exp.get_runs()))


@step("remote_compute")
def _ssh() -> None:
    from nbml import RemoteCompute

    RemoteCompute.attach_configuration(address="127.0.0.1", username="me")


@step("docker_attach")
def _docker() -> None:
    from nbml import DockerCompute, Workspace

    ws = Workspace.from_config(str(work / "project"))
    try:
        DockerCompute.attach(ws, "docker")
    finally:
        results["docker_targets"] = [c["name"] for c in ws.store.list_compute()]


@step("dask_create")
def _dask() -> None:
    from nbml import AmlCompute

    AmlCompute.provisioning_configuration(max_nodes=2)


@step("bayesian")
def _bayes() -> None:
    from nbml.hyperdrive import BayesianParameterSampling, uniform

    BayesianParameterSampling({"lr": uniform(0.1, 1.0)})


@step("tabular")
def _tabular() -> None:
    from nbml import Dataset, Workspace

    ws = Workspace.from_config(str(work / "project"))
    (work / "data.csv").write_text("a,b\n1,2\n")
    ws.get_default_datastore().upload_files([str(work / "data.csv")], target_path="t", overwrite=True)
    Dataset.Tabular.from_delimited_files(path=[(ws.get_default_datastore(), "t/data.csv")]).to_pandas_dataframe()


print(json.dumps(results))
