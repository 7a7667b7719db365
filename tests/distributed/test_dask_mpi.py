"""Open MPI across the workers of a 2-worker Dask cluster: real mpirun, orted and mpi4py, no SSH between nodes."""

from __future__ import annotations

import json
import os
import time

import psutil
import pytest
from rankwait import kill_node_and_check_failure, wait_ranks

from nbml import Experiment, ScriptRunConfig
from nbml.core.runconfig import MpiConfiguration

pytestmark = [pytest.mark.slow, pytest.mark.dask]

# Each rank records its allreduce and the chain of processes above it (pid and name), to prove where it ran.
ALLREDUCE = """
import os, sys, time
import psutil
from mpi4py import MPI
from nbml import Run

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
total = comm.allreduce(rank + 1)
run = Run.get_context()
run.log("allreduce", total)
chain = [(p.pid, p.name()) for p in psutil.Process().parents()]
run.log("tree", f"{rank}|" + ";".join(f"{pid}:{name}" for pid, name in chain))
print("rank", rank, "of", comm.Get_size(), "sum", total, flush=True)
mode = sys.argv[1] if len(sys.argv) > 1 else ""
if mode == "fail" and rank == 3:
    time.sleep(1)
    raise RuntimeError("rank 3 diverged")
if mode in ("hang", "fail"):
    time.sleep(600)
"""


@pytest.fixture
def cluster(ws):  # type: ignore[no-untyped-def]
    import shutil

    if shutil.which("mpirun") is None:
        pytest.skip("Open MPI is not installed (.ci/steps/45-distributed.sh installs it)")
    pytest.importorskip("mpi4py")
    from cluster_factories import dask_target, stop_dask_targets

    target = dask_target(ws)
    yield target
    stop_dask_targets(ws)


def _submit(ws, target: str, *args: str):  # type: ignore[no-untyped-def]
    return Experiment(ws, "mpi").submit(ScriptRunConfig(
        ".", "allreduce.py", arguments=list(args), compute_target=target,
        distributed_job_config=MpiConfiguration(process_count_per_node=2, node_count=2)))


def _worker_pids(target) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from distributed import Client

    with Client(target.config["scheduler_address"], timeout="20s") as client:
        return dict(client.run(os.getpid))


def _job_processes(run_id: str) -> list[psutil.Process]:
    """Every live process of this run, on every node: launcher, mpirun, daemons, agents, node tasks, ranks."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("NBML_RUN_ID") == run_id:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _all_gone(run_id: str, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = _job_processes(run_id)
        if not left:
            return []
        time.sleep(0.2)
    return [f"{p.pid} {p.name()}" for p in _job_processes(run_id)]


def test_mpi_allreduce_over_two_dask_workers_by_two_processes(ws, project, cluster) -> None:  # type: ignore[no-untyped-def]
    project(**{"allreduce.py": ALLREDUCE})
    workers = _worker_pids(cluster)
    run = _submit(ws, cluster.name)
    run.wait_for_completion(timeout_seconds=300)
    metrics = run.get_metrics()
    assert metrics["allreduce"] == [10] * 4  # 1 + 2 + 3 + 4 on every rank
    nodes = json.loads(ws.store.get_run(run.id)["handle_json"])["data"]["nodes"]
    node_worker = [workers[n["worker"]] for n in nodes]
    assert len(set(node_worker)) == 2
    trees = {int(t.split("|")[0]): t.split("|")[1] for t in metrics["tree"]}
    assert sorted(trees) == [0, 1, 2, 3]
    for rank, chain in trees.items():
        pids = {int(item.split(":")[0]) for item in chain.split(";")}
        names = [item.split(":", 1)[1] for item in chain.split(";")]
        node = rank // 2
        # Each rank runs below its own node's Dask worker process, and not below the other's.
        assert node_worker[node] in pids and node_worker[1 - node] not in pids, (rank, chain, node_worker)
        # Node 0's ranks are mpirun's; node 1's were started by Open MPI's daemon, run by node 1's task.
        assert ("mpirun" if node == 0 else "orted") in names, (rank, names)
    ranks = run.get_details()["distributed"]["ranks"]
    assert {r["state"] for r in ranks.values()} == {"completed"} and {r["node"] for r in ranks.values()} == {0, 1}
    assert "rank 3 of 4 sum 10" in run.get_rank_log(3)
    assert run.get_properties()["nbml.node_count"] == "2"
    assert _all_gone(run.id) == []


def test_mpi_rank_failure_cancel_and_lost_node_stop_every_process_on_every_node(ws, project, cluster) -> None:  # type: ignore[no-untyped-def]
    project(**{"allreduce.py": ALLREDUCE})
    # Rank 3 (node 1) fails: the run fails naming it, and every rank, daemon and node task ends.
    run = _submit(ws, cluster.name, "fail")
    run.wait_for_completion(timeout_seconds=180, raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert error.startswith("rank 3 of 4 (node 1") and "RuntimeError: rank 3 diverged" in error, error
    assert _all_gone(run.id) == []
    # Cancel: nothing of the run is left on either node (no orted, no rank, no node task).
    run = _submit(ws, cluster.name, "hang")
    wait_ranks(run, 4, timeout=120)
    assert any(p.name() == "orted" for p in _job_processes(run.id))
    run.cancel()
    run.wait_for_completion(timeout_seconds=60, raise_on_error=False)
    assert run.get_status() == "Canceled"
    assert _all_gone(run.id) == []
    # Node 1's worker is killed mid-run: the run fails naming that node, and the ranks of both nodes stop.
    run = _submit(ws, cluster.name, "hang")
    wait_ranks(run, 4, timeout=120)
    kill_node_and_check_failure(run, 1)
    assert _all_gone(run.id) == []
