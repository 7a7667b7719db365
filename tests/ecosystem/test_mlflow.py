"""MLflow's own API (fluent, autolog, MlflowClient) against nbml runs, through the nbml:// plugin."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from nbml import Environment, Experiment, RemoteCompute, Run, ScriptRunConfig, Workspace  # noqa: E402


def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return X, y


def test_the_plugin_is_declared_by_entry_points() -> None:
    # What MLflow reads to find the scheme, in a plain `pip install nbml[mlflow]` (no register() call).
    stores = {e.name: e.value for e in importlib.metadata.entry_points(group="mlflow.tracking_store")}
    repos = {e.name: e.value for e in importlib.metadata.entry_points(group="mlflow.artifact_repository")}
    assert stores.get("nbml") == "nbml.mlflow_plugin:tracking_store", "reinstall nbml: pip install -e '.[test]'"
    assert repos.get("nbml") == "nbml.mlflow_plugin:artifact_repository"


def test_fluent_api_writes_an_nbml_run_that_mlflow_reads_back(mlflow_ws: Workspace, tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    ws = mlflow_ws
    assert ws.get_mlflow_tracking_uri() == "nbml://" + str(ws.path)
    mlflow.set_experiment("experiment-with-mlflow")
    X, y = _diabetes()
    (tmp_path / "plot.txt").write_text("actuals vs predictions")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "a.csv").write_text("x\n1\n")
    with mlflow.start_run(run_name="ridge") as active:
        mlflow.log_param("alpha", 0.03)
        mlflow.log_params({"solver": "auto", "fit_intercept": True})
        for step, loss in enumerate([0.9, 0.5, 0.2]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_metrics({"mse": 3100.5, "r2": 0.41})
        mlflow.set_tag("team", "vision")
        model = Ridge(alpha=0.03).fit(X, y)
        mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"],
                                 serialization_format="cloudpickle")  # skops (the default) imports every estimator
        mlflow.log_artifact(str(tmp_path / "plot.txt"))
        mlflow.log_artifacts(str(tmp_path / "extra"), artifact_path="extra")
    run_id = active.info.run_id

    # nbml sees an ordinary run of the experiment of the same name.
    run = Run.get(ws, run_id)
    assert run.experiment.name == "experiment-with-mlflow" and run.get_status() == "Completed"
    assert run.display_name == "ridge"
    assert run.get_metrics()["loss"] == [0.9, 0.5, 0.2] and run.get_metrics()["mse"] == 3100.5
    assert [r["step"] for r in ws.store.metric_rows(run_id, "loss")] == [0, 1, 2]
    assert run.get_tags()["team"] == "vision"
    assert run.get_properties()["mlflow.param.alpha"] == "0.03"
    files = run.get_file_names()
    assert {"plot.txt", "extra/a.csv", "model/MLmodel"} <= set(files)
    assert [r.id for r in Experiment(ws, "experiment-with-mlflow").get_runs()] == [run_id]

    # MLflow's own client reads it back from the same URI.
    client = MlflowClient(ws.get_mlflow_tracking_uri())
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "ridge"
    assert got.data.params == {"alpha": "0.03", "solver": "auto", "fit_intercept": "True"}
    assert got.data.metrics == {"loss": 0.2, "mse": 3100.5, "r2": 0.41}
    assert got.data.tags["team"] == "vision"
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.2)]
    assert {f.path for f in client.list_artifacts(run_id)} >= {"plot.txt", "extra", "model"}
    loaded = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    assert np.allclose(loaded.predict(X[:5]), model.predict(X[:5]))

    # A second run, then search with a filter and an order.
    with mlflow.start_run():
        mlflow.log_metric("loss", 0.05)
    exp = client.get_experiment_by_name("experiment-with-mlflow")
    assert exp is not None and exp.name == "experiment-with-mlflow"
    found = client.search_runs([exp.experiment_id], "metrics.loss < 0.1")
    assert [r.data.metrics["loss"] for r in found] == [0.05]
    ordered = client.search_runs([exp.experiment_id], order_by=["metrics.loss DESC"])
    assert [r.data.metrics["loss"] for r in ordered] == [0.2, 0.05]
    assert [r.info.run_id for r in client.search_runs([exp.experiment_id], "params.alpha = '0.03'")] == [run_id]


def test_sklearn_autolog_records_the_fit_as_an_nbml_run(mlflow_ws: Workspace) -> None:
    from sklearn.linear_model import Ridge

    mlflow.set_experiment("autolog")
    mlflow.sklearn.autolog(log_models=False, log_datasets=False, silent=True)
    X, y = _diabetes()
    Ridge(alpha=0.5).fit(X, y)
    run_id = mlflow.last_active_run().info.run_id
    run = Run.get(mlflow_ws, run_id)
    assert run.experiment.name == "autolog" and run.get_status() == "Completed"
    props = run.get_properties()
    assert props["mlflow.param.alpha"] == "0.5" and props["mlflow.param.solver"] == "auto"
    metrics = run.get_metrics()
    assert 0 < metrics["training_r2_score"] < 1 and metrics["training_mean_squared_error"] > 0
    assert run.get_tags()["estimator_name"] == "Ridge"


def test_an_nbml_run_is_read_through_mlflow_client(ws: Workspace) -> None:
    exp = Experiment(ws, "plain-nbml")
    run = exp.start_logging(outputs=None, display_name="by-hand")
    for step, acc in enumerate([0.5, 0.7, 0.9]):
        run.log("accuracy", acc, step=step)
    run.log("notes", "not a number")  # no MLflow form: left out of MLflow's view, kept in nbml's
    run.tag("stage", "dev")
    run.complete()

    client = MlflowClient(ws.get_mlflow_tracking_uri())
    found = client.search_runs([client.get_experiment_by_name("plain-nbml").experiment_id])
    assert [r.info.run_id for r in found] == [run.id]
    got = found[0]
    assert got.info.status == "FINISHED" and got.info.run_name == "by-hand"
    assert got.data.metrics == {"accuracy": 0.9} and got.data.tags["stage"] == "dev"
    assert [(m.step, m.value) for m in client.get_metric_history(run.id, "accuracy")] == [(0, 0.5), (1, 0.7), (2, 0.9)]
    assert {e.name for e in client.search_experiments()} >= {"plain-nbml"}


@pytest.mark.slow  # a job that imports MLflow: ~15 s on an idle machine, more on a busy one
@pytest.mark.parametrize("where", ["local", pytest.param("ssh", marks=pytest.mark.ssh)])
def test_mlflow_in_a_submitted_script_lands_in_its_run_with_no_setup(ws: Workspace, project, where: str,  # type: ignore[no-untyped-def]
                                                                     request: pytest.FixtureRequest,
                                                                     tmp_path: Path) -> None:
    folder = project(**{"train.py": """
        import mlflow

        mlflow.log_param("lr", 0.1)
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.set_tag("phase", "train")
        with open("report.txt", "w") as fh:
            fh.write("done")
        mlflow.log_artifact("report.txt", artifact_path="reports")
        with mlflow.start_run(run_name="fold-1", nested=True):
            mlflow.log_metric("fold_score", 0.8)
        mlflow.end_run()
        mlflow.log_metric("after_end", 1.0)  # a new top-level run inside a job is still the job's run
        print("logged")
    """})
    config = ScriptRunConfig(str(folder), "train.py")
    if where == "ssh":
        from sshd import ssh_attach_args

        RemoteCompute.attach(ws, "ssh-box", **ssh_attach_args(request.getfixturevalue("sshd"), tmp_path))
        env = Environment("mlflow-env")
        env.python.user_managed_dependencies = True
        env.python.interpreter_path = sys.executable  # the "remote" host is this machine: its Python has mlflow
        config = ScriptRunConfig(str(folder), "train.py", compute_target="ssh-box", environment=env)
    run = Experiment(ws, "in-job").submit(config)
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Completed", run.get_details_with_logs()["logFiles"]
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, 1.0 / 3] and metrics["after_end"] == 1.0
    assert [r["step"] for r in ws.store.metric_rows(run.id, "loss")] == [0, 1, 2]
    assert run.get_properties()["mlflow.param.lr"] == "0.1" and run.get_tags()["phase"] == "train"
    assert "reports/report.txt" in run.get_file_names()
    children = list(run.get_children())
    assert [c.display_name for c in children] == ["fold-1"] and children[0].get_metrics() == {"fold_score": 0.8}
    assert children[0].get_status() == "Completed"

    client = MlflowClient(ws.get_mlflow_tracking_uri())
    got = client.get_run(run.id)
    assert got.data.params == {"lr": "0.1"} and got.info.status == "FINISHED"
    assert [f.path for f in client.list_artifacts(run.id, "reports")] == ["reports/report.txt"]


def test_bad_uri_and_changed_param_are_clear_errors(mlflow_ws: Workspace, tmp_path: Path) -> None:
    missing = tmp_path / "no-workspace-here"
    with pytest.raises(MlflowException, match="No nbml workspace"):
        MlflowClient("nbml://" + str(missing)).search_experiments()
    assert not missing.exists()
    with mlflow.start_run() as active:
        mlflow.log_param("alpha", 1)
        with pytest.raises(MlflowException, match="can't change"):
            mlflow.log_param("alpha", 2)
    assert MlflowClient().get_run(active.info.run_id).data.params == {"alpha": "1"}
    with pytest.raises(MlflowException, match="not valid"):
        mlflow.set_experiment("has spaces in it")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
