"""Dispatching many trivial runs on the Dask cluster target (2 workers) versus the local target, in one run.

Both targets go through the same code path a coordinator (AutoML, HyperDrive) uses for child runs: the
executor stages each job, starts it, ingests its events and logs, copies its outputs back and records its
status in the store, at most 2 jobs at a time (the cluster's size). Each job is a script that logs one metric
and writes one output file. The local target's two processes at a time are the baseline.

Printed per target: wall time for all runs, throughput (runs/s), and per-run overhead (mean time from
"start dispatching" to "Completed" for one run, minus the script's own run time measured inside it).

Run: ``python benchmarks/dask_vs_local.py [N]`` (default N=200).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """
import time
t = time.perf_counter()
from nbml import Run
run = Run.get_context()
run.log("x", 1)
open("outputs/o.txt", "w").write("o")
print("SELF", time.perf_counter() - t, flush=True)
"""
CONCURRENCY = 2


async def dispatch(ws, target_name: str, n: int, parent_id: str) -> tuple[float, list[float], list[float]]:  # type: ignore[no-untyped-def]
    from nbml.compute.base import EnvSpec, JobSpec
    from nbml.runs.context import SupervisorContext
    from nbml.runs.executor import execute
    from nbml.runs.ids import new_child_id
    from nbml.snapshot import load_manifest, take_snapshot

    src = Path(tempfile.mkdtemp())
    (src / "job.py").write_text(SCRIPT)
    snap = take_snapshot(ws, src)
    files = load_manifest(ws.path, snap.id)
    env = EnvSpec(name="bench", hash="bench-user-managed", user_managed=True)
    ws.store.insert_run(parent_id, "bench", "automl", target_name, {}, status="Running")
    ctx = SupervisorContext(ws.store, ws.path, parent_id)
    backend = ctx.backend_for(target_name)
    gate = asyncio.Semaphore(CONCURRENCY)
    latencies: list[float] = []
    ids = []

    async def one(i: int) -> None:
        run_id = new_child_id(parent_id, i)
        ids.append(run_id)
        ws.store.insert_run(run_id, "bench", "script", target_name, {}, parent_id=parent_id, iteration=i)
        job = JobSpec(run_id=run_id, argv=["job.py"], env=env, files=files, blob_dir=ws.path / "snapshots" / "blobs")
        async with gate:
            t = time.perf_counter()
            final = await execute(ctx, run_id, job, backend)
            latencies.append(time.perf_counter() - t)
        assert final == "Completed", f"{run_id} ended {final}: {ws.store.get_run(run_id)['error']}"

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    await backend.close()
    selfs = []
    for run_id in ids:
        assert ws.store.get_run(run_id)["status"] == "Completed"
        log = (ctx.run_dir(run_id) / "nbml-logs" / "driver_log.txt").read_text()
        selfs.append(float(next(ln for ln in log.splitlines() if ln.startswith("SELF")).split()[1]))
    return wall, latencies, selfs


def main(n: int) -> None:
    from nbml import ComputeTarget, Workspace
    from nbml.compute.dask_target import AmlCompute

    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(path=Path(d) / "ws")
        cluster = ComputeTarget.create(ws, "bench-cluster", AmlCompute.provisioning_configuration(
            min_nodes=CONCURRENCY, max_nodes=CONCURRENCY, idle_seconds_before_scaledown=600))
        try:
            cluster.wait_for_completion(min_node_count=CONCURRENCY)
            asyncio.run(dispatch(ws, "bench-cluster", 4, "warm-dask"))  # warm both: imports, caches
            asyncio.run(dispatch(ws, "local", 4, "warm-local"))
            results = {}
            for name, label in (("local", "local target (2 processes)"), ("bench-cluster", "dask, 2 workers")):
                wall, lat, selfs = asyncio.run(dispatch(ws, name, n, f"bench-{name}"))
                results[name] = (wall, lat, selfs)
                print(f"== {label}: {n} trivial runs, {CONCURRENCY} at a time")
                print(f"  wall time           : {wall:8.2f} s")
                print(f"  throughput          : {n / wall:8.2f} runs/s")
                print(f"  per-run latency     : {statistics.mean(lat) * 1000:8.0f} ms mean, "
                      f"{statistics.median(lat) * 1000:.0f} ms median")
                print(f"  per-run overhead    : {(statistics.mean(lat) - statistics.mean(selfs)) * 1000:8.0f} ms "
                      f"(latency minus the script's own {statistics.mean(selfs) * 1000:.0f} ms)")
            lw, dw = results["local"][0], results["bench-cluster"][0]
            lo = statistics.mean(results["local"][1]) - statistics.mean(results["local"][2])
            do = statistics.mean(results["bench-cluster"][1]) - statistics.mean(results["bench-cluster"][2])
            print("== dask relative to local")
            print(f"  throughput ratio    : {lw / dw:8.2f}x  (dask runs/s / local runs/s)")
            print(f"  overhead difference : {(do - lo) * 1000:+8.0f} ms per run (dask minus local)")
        finally:
            cluster.delete()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("NBML_HEARTBEAT_SECONDS", "5")
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
