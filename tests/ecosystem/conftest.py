"""MLflow and TensorBoard with nbml runs: the real `mlflow` and `tensorboard` packages, the real loopback sshd."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "targets"))
from sshd import sshd_fixture  # noqa: F401 (the `sshd` fixture)


@pytest.fixture
def mlflow_ws(ws, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The test's workspace as MLflow's tracking URI, reset afterwards (MLflow keeps it per process and in
    the environment variables it sets)."""
    import mlflow

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    yield ws
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.sklearn.autolog(disable=True)
    mlflow.set_tracking_uri(None)
    import mlflow.tracking.fluent as fluent

    fluent._active_experiment_id = None
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def no_tensorboards() -> Iterator[None]:
    """Fails the test if a TensorBoard it started is still running at its end."""
    import psutil

    before = {p.pid for p in psutil.process_iter()}
    yield
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.info["pid"] not in before and "tensorboard.main" in " ".join(p.info["cmdline"] or []):
            left.append(p)
    for p in left:
        p.kill()
    assert not left, f"TensorBoard processes left running: {[p.pid for p in left]}"
