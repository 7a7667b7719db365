"""The cluster target (AmlCompute on Dask) with real Dask clusters: scaling, sharing, worker loss, cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cluster_factories import dask_target, stop_dask_targets

from nbml import ComputeTarget, ComputeTargetException, Experiment, Run, ScriptRunConfig
from nbml.compute import _dask_cluster
from nbml.compute.dask_target import AmlCompute

pytestmark = pytest.mark.dask

TRAIN = """
import os, sys, time
from nbml import Run
run = Run.get_context()
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
run.log("pid", os.getpid())
os.makedirs("outputs", exist_ok=True)
open("outputs/done.txt", "w").write("ok")
"""

SLEEPER = """
import time
from nbml import Run
run = Run.get_context()
for i in range(600):
    run.log("tick", i)
    time.sleep(0.2)
"""


@pytest.fixture
def cluster_ws(ws):  # type: ignore[no-untyped-def]
    yield ws
    stop_dask_targets(ws)


def _wait(what: str, pred, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _submit(ws, folder: Path, script: str, target, *args: str) -> Run:  # type: ignore[no-untyped-def]
    return Experiment(ws, "cluster").submit(
        ScriptRunConfig(str(folder), script, arguments=list(args), compute_target=target))


def test_cluster_scales_up_to_max_nodes_runs_every_job_and_scales_down_when_idle(cluster_ws, project):
    folder = project(**{"train.py": TRAIN})
    target = dask_target(cluster_ws, min_nodes=0, max_nodes=2, idle_seconds_before_scaledown=2)
    status = target.get_status()
    assert status.current_node_count == 0 and status.serialize()["scaleSettings"]["maxNodeCount"] == 2
    runs = [_submit(cluster_ws, folder, "train.py", target, "3") for _ in range(3)]
    seen = []

    def busy() -> bool:
        seen.append(target.get_status().current_node_count)
        return max(seen) == 2

    _wait("two nodes", busy, 60)
    for run in runs:
        run.wait_for_completion(raise_on_error=True)
        assert (run.run_dir / "outputs" / "done.txt").read_text() == "ok"
    assert max(seen) == 2  # never more than max_nodes
    assert len({r.get_metrics()["pid"] for r in runs}) == 3
    _wait("scale down to min_nodes", lambda: target.get_status().current_node_count == 0, 30)


def test_cluster_outlives_the_process_that_created_it_and_is_shared(cluster_ws, project):
    folder = project(**{"train.py": TRAIN})
    code = textwrap.dedent(f"""
        from nbml import Workspace, ComputeTarget
        from nbml.compute.dask_target import AmlCompute
        ws = Workspace(path={str(cluster_ws.path)!r})
        cfg = AmlCompute.provisioning_configuration(min_nodes=1, max_nodes=2)
        ct = ComputeTarget.create(ws, "shared", cfg)
        ct.wait_for_completion(show_output=True)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Minimum number of nodes requested have been provisioned" in out.stdout
    target = ComputeTarget(cluster_ws, "shared")  # from another process, after the creator exited
    assert isinstance(target, AmlCompute)
    status = target.get_status()
    assert status.provisioning_state == "Succeeded" and status.current_node_count >= 1
    assert status.scheduler_address == target.config["scheduler_address"]
    assert [n["state"] for n in target.list_nodes()] == ["idle"] * status.current_node_count
    run = _submit(cluster_ws, folder, "train.py", target)
    run.wait_for_completion(raise_on_error=True)


def test_a_worker_lost_mid_run_fails_that_run_with_the_reason(cluster_ws, project):
    folder = project(**{"sleeper.py": SLEEPER})
    target = dask_target(cluster_ws, min_nodes=1, max_nodes=1)
    run = _submit(cluster_ws, folder, "sleeper.py", target)
    _wait("a metric", lambda: "tick" in run.get_metrics(), 60)
    started = json.loads((cluster_ws.path / "jobs" / target.name / run.id / ".nbml" / "started").read_text())
    os.kill(started["pid"], signal.SIGKILL)  # the worker process itself
    run.wait_for_completion(raise_on_error=False, timeout_seconds=90)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert "Dask worker" in error and "lost" in error
    assert "tick" in run.get_metrics()  # what it logged before is kept


def test_cancel_stops_a_running_job_and_a_queued_one(cluster_ws, project):
    folder = project(**{"sleeper.py": SLEEPER})
    target = dask_target(cluster_ws, min_nodes=1, max_nodes=1)
    running = _submit(cluster_ws, folder, "sleeper.py", target)
    _wait("a metric", lambda: "tick" in running.get_metrics(), 60)
    queued = _submit(cluster_ws, folder, "sleeper.py", target)  # the only node is busy
    _wait("queued run waits in Starting", lambda: queued.get_status() == "Starting", 30)
    time.sleep(2)
    assert queued.get_status() == "Starting"  # it waits for a free node instead of looking Running
    for run in (queued, running):
        run.cancel()
    for run in (queued, running):
        _wait(f"{run.id} canceled", lambda r=run: r.get_status() == "Canceled", 20)
    assert "tick" not in queued.get_metrics()  # it never started


def test_existing_scheduler_is_used_and_left_running(ws, project):
    from distributed import LocalCluster

    folder = project(**{"train.py": TRAIN})
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:  # None would take port 8787
        config = AmlCompute.provisioning_configuration(scheduler_address=cluster.scheduler_address, max_nodes=1)
        target = ComputeTarget.create(ws, "external", config)
        assert not target.owned
        run = _submit(ws, folder, "train.py", target)
        run.wait_for_completion(raise_on_error=True)
        assert target.get_status().current_node_count == 1
        target.delete()
        assert ws.store.get_compute("external") is None
        assert len(cluster.scheduler_info["workers"]) == 1  # nbml didn't stop what it doesn't own
    assert not _dask_cluster.state_dir(ws.path, "external").exists()


def test_update_changes_the_scale_settings_and_delete_stops_the_cluster(cluster_ws):
    target = dask_target(cluster_ws, min_nodes=1, max_nodes=2)
    pid = _dask_cluster.live_state(cluster_ws.path, target.name)["pid"]
    target.update(min_nodes=2)
    assert ComputeTarget(cluster_ws, target.name).config["min_nodes"] == 2
    _wait("a second node", lambda: target.get_status().current_node_count == 2, 60)
    target.delete()
    assert cluster_ws.store.get_compute(target.name) is None
    _wait("the cluster host to exit", lambda: not Path(f"/proc/{pid}").exists()
          or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 30)


def test_bad_settings_and_unreachable_schedulers_are_refused_before_anything_is_stored(ws):
    with pytest.raises(ComputeTargetException, match="min_nodes <= max_nodes"):
        ComputeTarget.create(ws, "bad", AmlCompute.provisioning_configuration(min_nodes=3, max_nodes=2))
    with pytest.raises(ComputeTargetException, match="Can't reach a Dask scheduler"):
        ComputeTarget.create(ws, "bad", AmlCompute.provisioning_configuration(scheduler_address="tcp://127.0.0.1:9"))
    assert ws.store.get_compute("bad") is None


def test_batchai_style_settings_are_accepted():
    cfg = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", cluster_min_nodes=1, cluster_max_nodes=4)
    assert (cfg.min_nodes, cfg.max_nodes, cfg.vm_size) == (1, 4, "STANDARD_D2_V2")


def test_system_managed_environment_is_built_once_and_used_by_the_workers(cluster_ws, project):
    from nbml import CondaDependencies, Environment

    folder = project(**{"which.py": "import sys, six\nprint('PY', sys.executable, six.__version__)\n"})
    target = dask_target(cluster_ws, min_nodes=1, max_nodes=1)
    env = Environment("with-six")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"])
    run = Experiment(cluster_ws, "cluster").submit(
        ScriptRunConfig(str(folder), "which.py", compute_target=target, environment=env))
    run.wait_for_completion(raise_on_error=True)
    line = next(ln for ln in (run.run_dir / "nbml-logs" / "driver_log.txt").read_text().splitlines()
                if ln.startswith("PY"))
    assert line.split()[1].startswith(str(cluster_ws.path / "envs"))  # the built venv, not the worker's python
