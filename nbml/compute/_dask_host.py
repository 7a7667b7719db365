"""The long-lived process that owns a Dask LocalCluster for an nbml cluster target.

nbml starts it detached (its own session, ``python -m nbml.compute._dask_host STATE_DIR``) so the cluster
is shared by every process of the workspace and outlives the kernel that created it. It reads
``spec.json`` (min/max nodes, idle seconds, threads and memory per node), keeps ``state.json`` up to date
(pid, scheduler address, requested node count) and re-reads the spec when it changes (``update()``).
It stops on SIGTERM or when ``stop`` appears in the folder.

Adaptive scaling maps the SDK's settings: at least ``min_nodes`` and at most ``max_nodes`` workers, and a
worker is retired after ``idle_seconds_before_scaledown`` consecutive seconds of being idle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

SPEC = "spec.json"
STATE = "state.json"
STOP = "stop"
LOG = "host.log"
ADAPT_INTERVAL_S = 1.0
#: Folder of gang demands: a multi-node job waiting for N idle workers writes N in a file of its own here and
#: rewrites it while it waits; the host keeps at least that many workers (adaptive scaling alone never starts
#: one: the gang submits nothing until every node is idle). A demand not rewritten for DEMAND_TTL_S (its
#: supervisor died) no longer counts.
DEMAND = "demand"
DEMAND_TTL_S = 15.0
#: Dask settings of nbml's own clusters (passed on to their workers) that cut what an idle cluster spends: the
#: defaults took ~22 % of a core with two workers each running a job, on a machine whose cores the jobs (and
#: warm workers' child runs) need; these take ~4 %. An nbml task only waits on its job process, so the workers'
#: statistical profiler (a stack sample every 10 ms) shows nothing; work stealing has nothing to move (a job is
#: submitted only when a slot is free, gang tasks are pinned); the event-loop watchdog, the memory monitor and
#: the dashboard's system monitor tick less often.
QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.scheduler.work-stealing": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.admin.system-monitor.interval": "1s",
    "distributed.admin.system-monitor.gil.enabled": False,  # (a 1 ms poll, where gilknocker is installed)
}


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError):
        return None


def _adapt(cluster: Any, spec: dict[str, Any]) -> Any:
    idle = float(spec.get("idle_seconds_before_scaledown", 120))
    return cluster.adapt(minimum=int(spec["min_nodes"]), maximum=int(spec["max_nodes"]),
                         interval=f"{ADAPT_INTERVAL_S}s", wait_count=max(1, math.ceil(idle / ADAPT_INTERVAL_S)),
                         target_duration="5s")


def gang_demand(state_dir: Path) -> int:
    """The most nodes any live gang demand asks for (0 when none)."""
    most, now = 0, time.time()
    try:
        entries = list((state_dir / DEMAND).iterdir())
    except FileNotFoundError:
        return 0
    for path in entries:
        try:
            if now - path.stat().st_mtime <= DEMAND_TTL_S:
                most = max(most, int(path.read_text() or 0))
        except (OSError, ValueError):
            continue
    return most


async def serve(state_dir: Path) -> None:
    import dask

    # Jobs are long: a task of unknown duration asks for a worker of its own (bounded by max_nodes).
    dask.config.set({"distributed.scheduler.unknown-task-duration": "1h",
                     "distributed.scheduler.worker-saturation": 1.0, **QUIET})
    spec = read_json(state_dir / SPEC) or {}
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        import bokeh  # noqa: F401

        dashboard = True
    except ImportError:
        dashboard = False
    if spec.get("ssh"):  # the user's SSH hosts, one worker each: a fixed size, no adaptive scaling
        from nbml.compute._dask_ssh import start_cluster

        cluster = await start_cluster(spec)
    else:
        cluster = await _local_cluster(spec, state_dir)
        _adapt(cluster, spec)
    demand = 0
    spec_mtime = (state_dir / SPEC).stat().st_mtime if (state_dir / SPEC).exists() else 0.0
    started = time.time()
    try:
        while not stopping.is_set() and not (state_dir / STOP).exists():
            try:
                mtime = (state_dir / SPEC).stat().st_mtime
            except FileNotFoundError:
                mtime = spec_mtime
            wanted = min(gang_demand(state_dir), int(spec.get("max_nodes", 0)))
            if mtime != spec_mtime or wanted != demand:
                spec_mtime, demand = mtime, wanted
                spec = read_json(state_dir / SPEC) or spec
                if not spec.get("ssh"):
                    _adapt(cluster, {**spec, "min_nodes": max(int(spec.get("min_nodes", 0)), demand)})
            write_json(state_dir / STATE, {
                "pid": os.getpid(), "address": cluster.scheduler_address, "dashboard": cluster.dashboard_link
                if dashboard else None, "started": started, "heartbeat": time.time(),
                "requested": len(cluster.worker_spec), "spec": spec,
            })
            try:
                await asyncio.wait_for(stopping.wait(), ADAPT_INTERVAL_S)
            except TimeoutError:
                pass
    finally:
        await cluster.close()  # type: ignore[misc]
        (state_dir / STATE).unlink(missing_ok=True)
        (state_dir / STOP).unlink(missing_ok=True)


async def _local_cluster(spec: dict[str, Any], state_dir: Path) -> Any:
    from distributed import LocalCluster

    # Always an address: with None, distributed still serves its HTTP routes on the fixed port 8787 (on every
    # interface), so a second cluster, or anything else wanting that port, would collide with this one.
    return await LocalCluster(
        n_workers=int(spec.get("min_nodes", 0)), threads_per_worker=int(spec.get("threads_per_node", 1)),
        processes=True, host="127.0.0.1", scheduler_port=0, dashboard_address="127.0.0.1:0",
        memory_limit=spec.get("memory_limit") or "auto", asynchronous=True, silence_logs=logging.WARNING,
        local_directory=str(state_dir / "dask-worker-space"),
    )


def main(args: list[str]) -> int:
    state_dir = Path(args[0]).resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(state_dir))
    return 0


if __name__ == "__main__":  # pragma: no cover - started as a detached process
    sys.exit(main(sys.argv[1:]))
