"""Script runs that opt in to warm workers on the other targets: Dask reuses one, SSH starts cold and says so."""

from __future__ import annotations

import pytest

from nbml import Experiment, Run, ScriptRunConfig, Workspace
from nbml.runs.warm_shared import WORKER_PROPERTY, stop_workers

SCRIPT = """
import os, sys
preloaded = "numpy" in sys.modules
import numpy
from nbml import Run
Run.get_context().log("preloaded", int(preloaded))
os.makedirs("outputs", exist_ok=True)
open("outputs/worker.txt", "w").write(str(os.getppid()))
print("ran in", os.getppid(), flush=True)
"""


def _warm_run(ws: Workspace, target: str) -> Run:
    cfg = ScriptRunConfig(".", "train.py", compute_target=target)
    cfg.run_config.warm_worker = True
    run = Experiment(ws, "warm-targets").submit(cfg)
    run.wait_for_completion(timeout_seconds=180, raise_on_error=False)
    assert run.get_status() == "Completed", run.get_details().get("error")
    return run


@pytest.mark.slow
def test_consecutive_runs_on_dask_share_one_warm_worker(ws, project, target_dask):  # type: ignore[no-untyped-def]
    project(**{"train.py": SCRIPT})
    try:
        first, second = _warm_run(ws, target_dask), _warm_run(ws, target_dask)
    finally:
        stop_workers(ws)
    assert first.get_properties()[WORKER_PROPERTY] == second.get_properties()[WORKER_PROPERTY]
    assert (first.run_dir / "outputs" / "worker.txt").read_text() == \
        (second.run_dir / "outputs" / "worker.txt").read_text()
    assert second.get_metrics()["preloaded"] in (1, [1])
    assert "claimed the shared warm worker" in (second.run_dir / "nbml-logs" / "supervisor_log.txt").read_text()


@pytest.mark.slow
def test_an_opted_in_run_on_ssh_starts_cold_and_the_log_says_so(ws, project, target_ssh):  # type: ignore[no-untyped-def]
    project(**{"train.py": SCRIPT.replace("numpy", "decimal")})  # the host's Python has only the standard library
    run = _warm_run(ws, target_ssh)
    assert WORKER_PROPERTY not in run.get_properties()
    log = (run.run_dir / "nbml-logs" / "supervisor_log.txt").read_text()
    assert "has no warm workers yet; the run starts a new process (cold)" in log
