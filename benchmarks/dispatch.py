"""Child-run dispatch: trivial child runs, 2 at a time, on the local and Dask targets, cold vs warm workers.

Every run goes through the code path a coordinator (AutoML, HyperDrive) uses for its children: the shared
child loop hands each child to the executor, which stages its job, starts it, ingests its events and logs,
copies its outputs back and records its status in the store. *Cold*: each child is a new process (today's
path). *Warm*: each child is a task for one of 2 warm workers (`nbml.runs.warm`), forked from a process that
has already imported nbml. Each child logs one metric and writes one output file; every run is checked to
have ended Completed with its metric and its output.

Printed per target and mode: wall time, runs per second, mean per-run latency; then warm/cold ratios.
``--profile`` also profiles the supervisor side of the warm local run (cProfile, top 25 by cumulative time).

Run: ``python benchmarks/dispatch.py [N] [--targets local,dask] [--profile]`` (default N=500).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = """
from nbml import Run
run = Run.get_context()
run.log("x", 1)
open("outputs/o.txt", "w").write("o")
"""
CONCURRENCY = 2


async def dispatch(ws: Any, target_name: str, n: int, parent_id: str, warm: bool) -> tuple[float, list[float]]:
    from nbml.compute.base import EnvSpec, JobSpec
    from nbml.runs.children import ChildLoop
    from nbml.runs.context import SupervisorContext
    from nbml.runs.warm import WarmBackend
    from nbml.snapshot import load_manifest, take_snapshot

    src = Path(tempfile.mkdtemp())
    (src / "job.py").write_text(SCRIPT)
    snap = take_snapshot(ws, src)
    files = load_manifest(ws.path, snap.id)
    env = EnvSpec(name="bench", hash="bench-user-managed", user_managed=True)
    ws.store.insert_run(parent_id, "bench", "hyperdrive", target_name, {}, status="Running")
    ctx = SupervisorContext(ws.store, ws.path, parent_id)
    backend = ctx.backend_for(target_name)
    if warm:
        backend = WarmBackend(ctx, backend, CONCURRENCY, preload=["nbml.runs.script_run"])
    loop: ChildLoop[float] = ChildLoop(ctx, backend, CONCURRENCY)
    latencies: list[float] = []
    ids = []
    t0 = time.perf_counter()
    launched = 0
    while launched < n or len(loop):
        while launched < n and loop.free:
            run_id = f"{parent_id}_{launched}"
            ids.append(run_id)
            await ctx.db(ws.store.insert_run, run_id, "bench", "script", target_name, {}, parent_id=parent_id,
                         iteration=launched)
            loop.launch(run_id, JobSpec(run_id=run_id, argv=["job.py"], env=env, files=files,
                                        blob_dir=ws.path / "snapshots" / "blobs"), time.perf_counter())
            launched += 1
        for done in await loop.wait(0.5):
            latencies.append(time.perf_counter() - done.payload)
            assert done.status == "Completed", f"{done.run_id} ended {done.status}: " \
                                               f"{ws.store.get_run(done.run_id)['error']}"
    wall = time.perf_counter() - t0
    await loop.close()
    await backend.close()
    ctx.close()
    for run_id in ids:  # every run really ran: its metric and its output came back
        assert ws.store.get_metrics(run_id).get("x") == 1 or ws.store.get_metrics(run_id).get("x") == [1], run_id
        assert (ctx.run_dir(run_id) / "outputs" / "o.txt").read_text() == "o"
    return wall, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=500)
    parser.add_argument("--targets", default="local,dask")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    from nbml import ComputeTarget, Workspace
    from nbml.compute.dask_target import AmlCompute

    targets = args.targets.split(",")
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(path=Path(d) / "ws")
        names = {"local": "local"}
        cluster = None
        if "dask" in targets:
            cluster = ComputeTarget.create(ws, "bench-cluster", AmlCompute.provisioning_configuration(
                min_nodes=CONCURRENCY, max_nodes=CONCURRENCY, idle_seconds_before_scaledown=600))
            names["dask"] = "bench-cluster"
        try:
            if cluster is not None:
                cluster.wait_for_completion(min_node_count=CONCURRENCY)
            results: dict[tuple[str, bool], float] = {}
            for target in targets:
                name = names[target]
                asyncio.run(dispatch(ws, name, 4, f"prime-{target}", False))  # caches, imports, cluster
                for warm in (False, True):
                    mode = "warm" if warm else "cold"
                    prof = cProfile.Profile() if args.profile and warm and target == "local" else None
                    if prof:
                        prof.enable()
                    wall, lat = asyncio.run(dispatch(ws, name, args.n, f"bench-{target}-{mode}", warm))
                    if prof:
                        prof.disable()
                    results[(target, warm)] = args.n / wall
                    print(f"== {target}, {mode}: {args.n} trivial child runs, {CONCURRENCY} at a time")
                    print(f"  wall time       : {wall:8.2f} s")
                    print(f"  throughput      : {args.n / wall:8.2f} runs/s")
                    print(f"  per-run latency : {statistics.mean(lat) * 1000:8.0f} ms mean, "
                          f"{statistics.median(lat) * 1000:.0f} ms median")
                    if prof:
                        print("  supervisor profile (cumulative, top 25):")
                        pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
            print("== warm relative to cold (same run, same machine load)")
            for target in targets:
                cold, warm_rate = results[(target, False)], results[(target, True)]
                print(f"  {target:6s}: {warm_rate:6.1f} runs/s warm vs {cold:6.1f} cold = {warm_rate / cold:5.2f}x")
            print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        finally:
            if cluster is not None:
                cluster.delete()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("NBML_HEARTBEAT_SECONDS", "5")
    main()
