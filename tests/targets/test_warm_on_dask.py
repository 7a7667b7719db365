"""Warm workers on a real 2-worker Dask cluster: a lost Dask worker fails only the child it ran and a new warm
worker runs the next children; a cancel stops only its child; a new supervisor adopts a child that an earlier
(killed) supervisor started in a warm worker, and the child completes with what it logged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from cluster_factories import dask_target, stop_dask_targets
from warm_parent import WarmParent

from nbml import Workspace
from nbml.runs.warm import WORKERS_PROPERTY
from nbml.snapshot import take_snapshot

pytestmark = pytest.mark.dask

CHILD = """
import os, sys, time
from nbml import Run
mode, n = sys.argv[1], int(sys.argv[2])
run = Run.get_context()
run.log("n", n)
open("outputs/worker.txt", "w").write(str(os.getppid()))
print(f"hello from child {n}", flush=True)
if mode == "wait":  # until the test says so
    while not os.path.exists(os.environ["GO_FILE"]):
        time.sleep(0.05)
elif mode == "sleep":
    time.sleep(120)
"""


async def _cancel_one_then_run_the_next(p: WarmParent) -> tuple[str, str]:
    """Cancel child 3 while it runs: it ends Canceled, its warm worker lives on and child 4 completes."""
    d = p.launch(3, "sleep")
    stopped_in = await p.until_running(d)
    p.loop.cancel(d)
    assert (await p.until_ended(d))[d].status == "Canceled"
    assert _alive(stopped_in)  # the cancel ended the child, not its warm worker
    e = p.launch(4, "ok")
    assert (await p.until_ended(e))[e].status == "Completed"
    return d, e


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str, str, Path]]:
    """A workspace with a 2-worker nbml Dask cluster, the snapshot of the child script and its go file."""
    ws = Workspace(path=tmp_path_factory.mktemp("warm-dask") / "ws")
    target = dask_target(ws, name="warm-cluster", min_nodes=2, max_nodes=2, idle_seconds_before_scaledown=600)
    src = Path(tempfile.mkdtemp())
    (src / "child.py").write_text(CHILD)
    try:
        yield ws, target.name, take_snapshot(ws, src).id, src / "go"
    finally:
        stop_dask_targets(ws)


def test_a_cancel_stops_only_its_child_and_the_warm_worker_runs_the_next(cluster: Any) -> None:
    ws, target, snapshot, go = cluster

    async def main() -> None:
        p = WarmParent(ws, target, "warm_dask_cancel", snapshot, go)
        try:
            d, e = await _cancel_one_then_run_the_next(p)
        finally:
            await p.close()
        assert "hello from child 3" in (ws.path / "runs" / d / "nbml-logs" / "driver_log.txt").read_text()
        assert ws.store.get_metrics(e)["n"] in (4, [4])

    asyncio.run(main())


def test_a_lost_dask_worker_fails_only_its_child_and_a_cancel_stops_only_its_child(cluster: Any) -> None:
    ws, target, snapshot, go = cluster
    go.unlink(missing_ok=True)

    async def main() -> None:
        p = WarmParent(ws, target, "warm_dask_loss", snapshot, go)
        try:
            a, b = p.launch(0, "sleep"), p.launch(1, "wait")
            victim, other = await p.until_running(a), await p.until_running(b)
            assert victim != other
            dask_worker = psutil.Process(victim).parent()
            assert dask_worker is not None and dask_worker.pid != os.getpid()
            dask_worker.kill()  # the Dask worker that holds the warm worker: the machine's share of the cluster
            ended = await p.until_ended(a)
            assert ended[a].status == "Failed"
            assert p.rec(b)["status"] == "Running"  # the other Dask worker's child goes on
            c = p.launch(2, "ok")
            go.touch()
            ended.update(await p.until_ended(c))
            ended.update(await p.until_ended(b))
            assert ended[b].status == "Completed" and ended[c].status == "Completed", p.rec(c)["error"]
            assert p.worker_pid(c) != victim  # a new warm worker (or the surviving one) ran it
            d, e = await _cancel_one_then_run_the_next(p)
        finally:
            await p.close()
        error = p.rec(a)["error"]
        assert "warm worker" in error and "ended before it did" in error, error
        assert not _alive(victim)
        # Dask retries the lost worker's task; the retry finds the folder released and leaves nothing behind
        assert not [f.name for f in p.job_dir(a).parent.iterdir() if f.name.startswith("warm_dask_loss")]
        assert "hello from child 3" in (ws.path / "runs" / d / "nbml-logs" / "driver_log.txt").read_text()
        for run_id, n in ((b, 1), (c, 2), (e, 4)):
            assert ws.store.get_metrics(run_id)["n"] in (n, [n])

    asyncio.run(main())


FIRST_SUPERVISOR = """
import asyncio, sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from nbml import Workspace
from warm_parent import WarmParent

async def main():
    p = WarmParent(Workspace(path={ws!r}), {target!r}, "warm_dask_adopt", {snapshot!r}, Path({go!r}))
    run_id = p.launch(0, "wait")
    await p.until_running(run_id)
    while not p.rec(run_id).get("handle_json"):
        await asyncio.sleep(0.05)
    print("running", flush=True)
    await asyncio.sleep(600)  # killed here, as a supervisor can be

asyncio.run(main())
"""


def test_a_new_supervisor_adopts_a_child_running_in_a_warm_worker(cluster: Any) -> None:
    ws, target, snapshot, go = cluster
    go.unlink(missing_ok=True)
    script = FIRST_SUPERVISOR.format(tests=str(Path(__file__).parents[1]), ws=str(ws.path), target=target,
                                     snapshot=snapshot, go=str(go))
    first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "running"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    run_id = "warm_dask_adopt_0"
    assert json.loads(ws.store.get_properties("warm_dask_adopt")[WORKERS_PROPERTY])  # recorded for a successor
    assert ws.store.get_run(run_id)["status"] == "Running"

    async def main() -> None:
        p = WarmParent(ws, target, "warm_dask_adopt", snapshot, go, new=False)
        try:
            p.launch(0, "wait", record=False)  # its handle is stored: the executor adopts it
            await asyncio.sleep(1.0)
            assert p.rec(run_id)["status"] == "Running"
            go.touch()
            ended = await p.until_ended(run_id)
            assert ended[run_id].status == "Completed", p.rec(run_id)["error"]
        finally:
            await p.close()

    asyncio.run(main())
    assert ws.store.get_metrics(run_id)["n"] in (0, [0])  # what it logged under the first supervisor
    assert "hello from child 0" in (ws.path / "runs" / run_id / "nbml-logs" / "driver_log.txt").read_text()
    worker = int((ws.path / "runs" / run_id / "outputs" / "worker.txt").read_text())
    deadline = time.monotonic() + 20
    while _alive(worker):  # the adopting supervisor stopped the warm worker the first one left behind
        assert time.monotonic() < deadline, "the first supervisor's warm worker still runs"
        time.sleep(0.1)
