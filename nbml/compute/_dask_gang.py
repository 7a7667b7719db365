"""Multi-node jobs on a Dask cluster: a node is a worker, and a job with ``node_count=N`` holds N at once.

Gang start, all or none: under a scheduler-side lock (one per target), the supervisor waits until N workers are
idle, then pins one task to each (``workers=[address]``, no other worker allowed) and releases the lock only
once every node's task has started. Gang jobs therefore take their nodes one job at a time and never hold
part of a cluster while waiting for the rest (no deadlock between two gang jobs); single-node jobs (an AutoML
search's iterations) take no lock and keep being scheduled meanwhile.

Every node's task runs the rank launcher (``nbml.compute._ranks``) in the one job folder the workers share,
with ``NBML_NODE_RANK``; node 0's worker host is the rendezvous (``MASTER_ADDR``, a port free there as
``MASTER_PORT``). Node 0's task keeps its wrapper state in the job folder as any job does; node i's in
``.nbml/nodes/<i>``. The job ends when every node's task has ended; the first node to fail, or a node whose
worker left the cluster, stops all the others (their cancel files) and names the node in the run's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from nbml.compute import _dask_mpi, _jobwrap
from nbml.compute._dask_mpi import node_dir
from nbml.compute._dask_task import LOST_FILE, run_dask_job
from nbml.compute.base import JobHandle, JobSpec, JobState, job_argv
from nbml.errors import ComputeTargetException

if TYPE_CHECKING:
    from nbml.compute.dask import DaskBackend

#: How long the gang waits for every pinned task to start before giving the nodes back and failing.
START_TIMEOUT_S = 120.0


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


#: A gang lock not released within this long (its supervisor died while starting a job) is taken over.
LOCK_LEASE_S = START_TIMEOUT_S + 60


def _take_gang_lock(dask_scheduler: Any, owner: str, name: str) -> bool:
    """Runs in the scheduler's event loop, so test-and-set is atomic: one gang start per target at a time."""
    locks = dask_scheduler.__dict__.setdefault("_nbml_gang_locks", {})
    now = time.time()
    holder = locks.get(name)
    if holder is not None and holder[0] != owner and now - holder[1] < LOCK_LEASE_S:
        return False
    locks[name] = (owner, now)
    return True


def _give_gang_lock(dask_scheduler: Any, owner: str, name: str) -> None:
    locks = dask_scheduler.__dict__.setdefault("_nbml_gang_locks", {})
    if locks.get(name, (None,))[0] == owner:
        del locks[name]


async def _idle_workers(client: Any) -> tuple[list[str], int]:
    """(addresses of workers running nothing, number of workers)."""
    def _idle(dask_scheduler: Any) -> tuple[list[str], int]:
        ws = dask_scheduler.workers
        return sorted(a for a, w in ws.items() if not w.processing and w.status.name == "running"), len(ws)

    result = await client.run_on_scheduler(_idle)
    return list(result[0]), int(result[1])


class _Demand:
    """While a gang waits, nbml's cluster host keeps at least `nodes` workers (see _dask_host.DEMAND): an
    adaptive cluster scaled to zero would otherwise never start the workers the gang waits for."""

    def __init__(self, backend: DaskBackend, owner: str, nodes: int) -> None:
        from nbml.compute import _dask_cluster
        from nbml.compute._dask_host import DEMAND

        self.path = (_dask_cluster.state_dir(backend.workspace_root, backend.name) / DEMAND / owner
                     if backend.owned else None)
        self.nodes, self.written = nodes, 0.0

    def refresh(self) -> None:
        if self.path is None or time.monotonic() - self.written < 2.0:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(str(self.nodes))
            self.written = time.monotonic()

    def drop(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


async def start(backend: DaskBackend, job: JobSpec, python: str, job_dir: str,
                environ: dict[str, str]) -> JobHandle:
    """Take `job.node_count` idle workers at once and start the launcher on each; see the module docstring."""
    from distributed import fire_and_forget

    client = await backend.client()
    nodes = job.node_count
    owner = f"{job.run_id}-{time.time()}"
    while not await client.run_on_scheduler(_take_gang_lock, owner=owner, name=backend.name):
        if backend._cancel_requested(job.run_id):
            break
        await asyncio.sleep(0.3)
    demand = _Demand(backend, owner, nodes)
    try:
        waited_since = time.monotonic()
        while True:
            idle, total = await _idle_workers(client)
            if len(idle) >= nodes:
                break
            demand.refresh()
            if backend._cancel_requested(job.run_id):
                _jobwrap.write_exit(Path(job_dir), -15, "canceled before it started")
                return JobHandle(target=backend.name, job_dir=job_dir, data={"key": "", "nodes": [],
                                                                             "submitted": time.time()})
            if total < nodes and time.monotonic() - waited_since > 5 and backend.capacity() < nodes:
                raise ComputeTargetException(
                    f"This job asks for node_count={nodes} but compute target {backend.name!r} has at most "
                    f"{backend.capacity()} nodes; lower node_count or raise the cluster's max_nodes.")
            await asyncio.sleep(0.3)
        workers = idle[:nodes]
        hosts = [urlparse(a).hostname or "127.0.0.1" for a in workers]
        ports = await client.run(_free_port, workers=[workers[0]])
        common = {"NBML_MASTER_ADDR": hosts[0], "NBML_MASTER_PORT": str(ports[workers[0]]),
                  "NBML_NODE_HOSTS": ",".join(hosts)}
        mpi = _mpi_settings(job)
        if mpi is not None:
            common.update(await _mpi_environ(client, workers, hosts, python, mpi))
        key = f"nbml-job-{Path(job_dir).name}-{int(time.time() * 1000) % 10**8}"
        placed = []
        for i, address in enumerate(workers):
            folder = node_dir(job_dir, i)
            Path(folder).mkdir(parents=True, exist_ok=True)
            if i == 0:
                argv = job_argv(job, job_dir)
            elif mpi is not None:  # mpirun on node 0 starts Open MPI's daemon here through this task
                argv = ["-m", "nbml.compute._dask_mpi", "serve", str(i)]
            else:
                argv = [*job_argv(job, job_dir), "--job-dir", job_dir]
            future = client.submit(run_dask_job, folder, python, argv,
                                   {**environ, **common, "NBML_NODE_RANK": str(i)}, key=f"{key}-n{i}",
                                   workers=[address], allow_other_workers=False, pure=False)
            fire_and_forget(future)
            placed.append({"key": f"{key}-n{i}", "dir": folder, "worker": address, "host": hosts[i]})
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all((Path(p["dir"]) / _jobwrap.STARTED_FILE).exists() for p in placed):
            if time.monotonic() > deadline:
                for p in placed:
                    (Path(p["dir"]) / _jobwrap.CANCEL_FILE).touch()
                raise ComputeTargetException(
                    f"The {nodes} nodes of this job did not all start within {START_TIMEOUT_S:.0f} s; the "
                    "cluster may be overloaded or a worker left it.")
            await asyncio.sleep(0.05)
    finally:
        demand.drop()
        with contextlib.suppress(Exception):
            await client.run_on_scheduler(_give_gang_lock, owner=owner, name=backend.name)
    return JobHandle(target=backend.name, job_dir=job_dir,
                     data={"key": placed[0]["key"], "nodes": placed, "submitted": time.time(),
                           **({"mpi": True} if mpi is not None else {})})


def _mpi_settings(job: JobSpec) -> dict[str, Any] | None:
    """The job's distributed settings when it is an MPI job (from the rank launcher's staged spec)."""
    import json

    from nbml.compute._ranks import SPEC_FILE

    raw = job.extra_files.get(SPEC_FILE)
    if raw is None:
        return None
    distributed = json.loads(raw)["distributed"]
    return distributed if distributed.get("backend") == "mpi" else None  # type: ignore[no-any-return]


async def _mpi_environ(client: Any, workers: list[str], hosts: list[str], python: str,
                       distributed: dict[str, Any]) -> dict[str, str]:
    """Check that every chosen worker has Open MPI, and return the nodes' MPI settings (see _dask_mpi)."""
    found = await client.run(_dask_mpi.probe, workers=workers)
    for i, address in enumerate(workers):
        info = found.get(address) or {}
        missing = [tool for tool in (("mpirun", "orted") if i == 0 else ("orted",)) if not info.get(tool)]
        if missing:
            raise ComputeTargetException(
                f"This MPI job needs Open MPI on every node, and node {i} (Dask worker {address}, host "
                f"{info.get('host', hosts[i])}) has no {' or '.join(f'`{t}`' for t in missing)} on its PATH. Install "
                "Open MPI on every worker (Debian: apt-get install openmpi-bin), or use PyTorchConfiguration, "
                "which needs no MPI.")
    loopback = all(h == "localhost" or h.startswith("127.") or h == "::1" for h in hosts)
    interpreter = python or str(found[workers[0]]["python"])
    return _dask_mpi.mpi_environ(len(workers), int(distributed["process_count_per_node"]), interpreter, loopback)


async def poll(backend: DaskBackend, handle: JobHandle) -> JobState:
    """Running until every node's task ended; a failed or lost node stops the others and names itself."""
    placed = handle.data["nodes"]
    if not placed:  # canceled before it started
        ended = _jobwrap.read_exit(Path(handle.job_dir))
        return JobState("exited", ended[0], ended[1]) if ended else JobState("running")
    client = await backend.client()

    def _workers(dask_scheduler: Any) -> list[str]:
        return list(dask_scheduler.workers)

    alive = set(await client.run_on_scheduler(_workers))
    trouble: list[tuple[int, str, bool]] = []  # (node, reason, lost)
    for i, p in enumerate(placed):
        folder = Path(p["dir"])
        ended = _jobwrap.read_exit(folder)
        if ended is None and p["worker"] not in alive:
            reason = (f"node {i} (Dask worker {p['worker']}) was lost mid-run: the worker left the cluster "
                      "(killed, out of memory or its machine went away); the other nodes were stopped.")
            (folder / LOST_FILE).touch()
            _jobwrap.write_exit(folder, 1, reason)
            ended = (1, reason)
        if ended is not None and ended[0] != 0 and ended[1] != "canceled":  # not one stopped by us
            lost = (folder / LOST_FILE).exists()
            trouble.append((i, ended[1] or f"node {i} ({p['host']}) failed with exit code {ended[0]}", lost))
    ends = [_jobwrap.read_exit(Path(p["dir"])) for p in placed]
    if trouble:
        for p, e in zip(placed, ends, strict=True):
            if e is None:
                (Path(p["dir"]) / _jobwrap.CANCEL_FILE).touch()
        if any(e is None for e in ends):
            return JobState("running")  # until every node has stopped: nothing may outlive the run
        node, reason, lost = next((t for t in trouble if t[2]), trouble[0])
        if lost:
            return JobState("lost", reason=reason)
        code = ends[node][0] if ends[node] else 1  # type: ignore[index]
        if handle.data.get("mpi") and node == 0:  # mpirun on node 0 reports every node's ranks: its error says
            return JobState("exited", exit_code=code)
        return JobState("exited", exit_code=code, reason=f"(node {node} of {len(placed)} failed first)")
    if all(e is not None for e in ends):
        return JobState("exited", exit_code=0)
    return JobState("running")


async def cancel(backend: DaskBackend, handle: JobHandle, grace_seconds: float) -> None:
    """Stop every node's launcher (each stops its ranks), then wait for them."""
    for p in handle.data["nodes"]:
        folder = Path(p["dir"])
        folder.joinpath(".nbml").mkdir(parents=True, exist_ok=True)
        (folder / _jobwrap.CANCEL_FILE).touch()
    deadline = time.monotonic() + grace_seconds + 5
    while time.monotonic() < deadline:
        if all(_jobwrap.read_exit(Path(p["dir"])) is not None for p in handle.data["nodes"]):
            break
        await asyncio.sleep(0.1)
    await forget(backend, handle)


async def forget(backend: DaskBackend, handle: JobHandle) -> None:
    """Drop tasks still pinned to workers that left (they would wait for them forever)."""
    from distributed import Future

    with contextlib.suppress(Exception):
        client = await backend.client()
        await client.cancel([Future(p["key"], client=client) for p in handle.data["nodes"]], force=True)
