"""Multi-node jobs on a 2-worker Dask cluster with real torch.distributed: gang start, failure, lost node."""

from __future__ import annotations

import time

import pytest
from rankwait import alive, kill_node_and_check_failure, wait_ranks

from nbml import Experiment, ScriptRunConfig
from nbml.core.runconfig import PyTorchConfiguration

pytestmark = [pytest.mark.slow, pytest.mark.dask]

DDP = """
import os, sys, time
import torch
import torch.distributed as dist
from nbml import Run

dist.init_process_group("gloo", init_method="env://")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
run = Run.get_context()
run.log("allreduce", float(t.item()))
run.log("where", f"{rank}/{world} node {os.environ['NODE_RANK']} local {os.environ['LOCAL_RANK']}")
print("rank", rank, "sum", t.item(), flush=True)
if len(sys.argv) > 1 and sys.argv[1] == "hang":
    time.sleep(600)
if len(sys.argv) > 1 and sys.argv[1] == "fail" and rank == 3:
    raise RuntimeError("rank 3 diverged")
if len(sys.argv) > 1 and sys.argv[1] == "fail":
    time.sleep(600)
dist.destroy_process_group()
"""


@pytest.fixture
def cluster(ws):  # type: ignore[no-untyped-def]
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (.ci/steps/45-distributed.sh installs it)")
    from cluster_factories import dask_target, stop_dask_targets

    target = dask_target(ws)
    yield target.name
    stop_dask_targets(ws)


def _submit(ws, target: str, *args: str):  # type: ignore[no-untyped-def]
    return Experiment(ws, "ddp").submit(ScriptRunConfig(
        ".", "ddp.py", arguments=list(args), compute_target=target,
        distributed_job_config=PyTorchConfiguration("Gloo", process_count=4, node_count=2)))


def test_two_nodes_by_two_processes_allreduce_with_torch_distributed(ws, project, cluster) -> None:  # type: ignore[no-untyped-def]
    project(**{"ddp.py": DDP})
    run = _submit(ws, cluster)
    run.wait_for_completion(timeout_seconds=300)
    metrics = run.get_metrics()
    assert metrics["allreduce"] == [10.0] * 4  # 1 + 2 + 3 + 4 on every rank
    assert sorted(metrics["where"]) == ["0/4 node 0 local 0", "1/4 node 0 local 1", "2/4 node 1 local 0",
                                        "3/4 node 1 local 1"]
    ranks = run.get_details()["distributed"]["ranks"]
    assert {r["node"] for r in ranks.values()} == {0, 1} and {r["state"] for r in ranks.values()} == {"completed"}
    assert "rank 3 sum 10.0" in run.get_rank_log(3)
    assert run.get_properties()["nbml.node_count"] == "2"


FAULTY = """
import os, sys, time
from nbml import Run
Run.get_context().log("up", int(os.environ["RANK"]))
if sys.argv[1] == "fail" and os.environ["RANK"] == "3":
    time.sleep(1)
    raise RuntimeError("rank 3 diverged")
time.sleep(600)
"""


def _submit_faulty(ws, target: str, mode: str):  # type: ignore[no-untyped-def]
    return Experiment(ws, "faults").submit(ScriptRunConfig(
        ".", "faulty.py", arguments=[mode], compute_target=target,
        distributed_job_config=PyTorchConfiguration("Gloo", process_count=4, node_count=2)))


def _gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive(pids)


def test_rank_failure_lost_node_and_cancel_stop_every_rank_on_every_node(ws, project, cluster) -> None:  # type: ignore[no-untyped-def]
    project(**{"faulty.py": FAULTY})
    # One rank fails on node 1: the run fails naming it, and node 0's ranks are stopped too.
    run = _submit_faulty(ws, cluster, "fail")
    # All four ranks, in any state: rank 3 may already have failed (and stopped the rest) when the states are
    # first seen, since they reach the run folder every 2 s.
    pids = [int(r["pid"]) for r in wait_ranks(run, 4, state=None, timeout=120).values()]
    run.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert error.startswith("rank 3 of 4 (node 1") and "RuntimeError: rank 3 diverged" in error, error
    assert _gone(pids) == []
    # Node 1's worker dies mid-run: the run fails naming the node, and nothing of it keeps running.
    run = _submit_faulty(ws, cluster, "hang")
    pids = [int(r["pid"]) for r in wait_ranks(run, 4, timeout=120).values()]
    kill_node_and_check_failure(run, 1)
    assert _gone(pids) == []
    # The nanny restarts the worker: a new 2-node job gets both nodes, and cancel stops all of it.
    run = _submit_faulty(ws, cluster, "hang")
    pids = [int(r["pid"]) for r in wait_ranks(run, 4, timeout=120).values()]
    run.cancel()
    run.wait_for_completion(timeout_seconds=60, raise_on_error=False)
    assert run.get_status() == "Canceled"
    assert _gone(pids) == []
