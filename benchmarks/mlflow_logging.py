"""MLflow logging into nbml against MLflow's own file store, in the same run: CPU per call.

For each store: one run, N ``mlflow.log_metric`` calls with steps, one ``log_batch`` of N metrics, then
``MlflowClient.get_metric_history`` and ``search_runs`` over 20 runs. The baseline is MLflow's local
``file://`` store on the same disk; the figures are process CPU seconds (the machine may be shared).

Run: ``python benchmarks/mlflow_logging.py [N]`` (default 500; about a minute).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def measure(uri: str, n: int) -> dict[str, float]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench")
    client = MlflowClient(uri)
    out: dict[str, float] = {}
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        out["log_metric"] = _cpu(lambda: [mlflow.log_metric("loss", 1.0 / (i + 1), step=i) for i in range(n)]) / n
        now = int(time.time() * 1000)
        batch = [Metric("acc", i / n, now, i) for i in range(n)]
        out["log_batch"] = _cpu(lambda: client.log_batch(run_id, metrics=batch)) / n
    out["history"] = _cpu(lambda: client.get_metric_history(run_id, "loss"))
    for i in range(19):
        with mlflow.start_run():
            mlflow.log_metric("loss", i)
    exp = client.get_experiment_by_name("bench")
    assert exp is not None
    out["search_runs"] = _cpu(lambda: client.search_runs([exp.experiment_id], "metrics.loss < 5"))
    mlflow.set_tracking_uri(None)
    return out


def main() -> None:
    import os

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NBML_HOME"] = str(Path(tmp) / "home")
        from nbml import Workspace

        ws = Workspace.create("bench", path=Path(tmp) / "ws")
        nbml_fig = measure(ws.get_mlflow_tracking_uri(), n)
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        import mlflow.tracking.fluent as fluent

        fluent._active_experiment_id = None
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps it only on request
        file_fig = measure((Path(tmp) / "mlruns").as_uri(), n)
    print(f"{'operation':<14}{'nbml://':>14}{'file:// (MLflow)':>20}{'ratio':>8}")
    for key, unit in (("log_metric", "ms/call"), ("log_batch", "ms/metric"), ("history", "ms"), ("search_runs", "ms")):
        a, b = nbml_fig[key] * 1000, file_fig[key] * 1000
        print(f"{key:<14}{a:>10.3f} {unit:<9}{b:>10.3f} {unit:<9}{a / b if b else float('nan'):>6.2f}")


if __name__ == "__main__":
    main()
