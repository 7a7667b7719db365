"""Child-run dispatch: trivial child runs, 2 at a time, on the local and Dask targets, cold vs warm workers.

Every run goes through the code path a coordinator (AutoML, HyperDrive) uses for its children: the shared
child loop hands each child to the executor, which stages its job, starts it, ingests its events and logs,
copies its outputs back and records its status in the store. *Cold*: each child is a new process (today's
path). *Warm*: each child is a task for one of 2 warm workers (`nbml.runs.warm`), forked from a process that
has already imported nbml. Each child logs one metric and writes one output file; every run is checked to
have ended Completed with its metric and its output.

Printed per target and mode: wall time, runs per second, mean per-run latency; then warm/cold ratios.
``--profile`` also profiles the supervisor side of each warm run: with yappi installed, CPU time in all of the
supervisor's threads (the event loop, the store's writer, the file threads), top 30 functions by own time and
top 30 of nbml's by total time; without it, cProfile of the event loop's thread.

``--automl`` also runs a 30-second AutoML experiment (breast cancer data, 2 iterations at a time, local target)
cold and warm and prints how many pipelines each tried.

Run: ``python benchmarks/dispatch.py [N] [--targets local,dask] [--profile] [--automl]`` (default N=500).
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
import time
print("T0", time.time())
from nbml import Run
run = Run.get_context()
run.log("x", 1)
open("outputs/o.txt", "w").write("o")
print("T1", time.time(), flush=True)
"""
CONCURRENCY = 2


def _is_warm_worker(proc: Any) -> bool:
    try:
        return "nbml.runs.warm_worker" in proc.cmdline()
    except Exception:  # gone, or not ours to read
        return False


def _cpu(proc: Any, children: bool = False) -> float:
    try:
        t = proc.cpu_times()
    except Exception:  # it ended: its time is in its parent's children_* once reaped
        return 0.0
    return t.user + t.system + ((t.children_user + t.children_system) if children else 0.0)


def cluster_cpu(ws: Any, target_name: str) -> dict[int, tuple[float, float]]:
    """(own, reaped children's) CPU seconds so far of each process of the target's Dask cluster (host,
    scheduler, nannies, workers), by pid. Warm workers and the runs they fork are left out (counted as the
    workers'); the cold jobs a worker ran are its reaped children."""
    import psutil

    from nbml.compute import _dask_cluster

    state = _dask_cluster.live_state(ws.path, target_name)
    if state is None:
        return {}
    out: dict[int, tuple[float, float]] = {}
    todo = [psutil.Process(int(state["pid"]))]
    while todo:
        proc = todo.pop()
        if _is_warm_worker(proc):
            continue
        own = _cpu(proc)
        out[proc.pid] = (own, _cpu(proc, children=True) - own)
        try:
            todo += proc.children()
        except Exception:
            pass
    return out


def workers_cpu(ws_root: Path) -> dict[int, float]:
    """CPU seconds so far of each warm worker of this workspace running now, with its children (the child runs
    it forked); other sessions' warm workers on the machine are left out."""
    import psutil

    def ours(proc: Any) -> bool:
        try:
            return Path(proc.cwd()).is_relative_to(ws_root)
        except Exception:
            return False

    return {p.pid: _cpu(p, children=True) for p in psutil.process_iter() if _is_warm_worker(p) and ours(p)}


async def dispatch(ws: Any, target_name: str, n: int, parent_id: str, warm: bool
                   ) -> tuple[float, list[float], list[tuple[float, float, float]], float, dict[str, float]]:
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
    ends: dict[str, float] = {}
    launches: dict[str, float] = {}
    ids = []
    t0 = time.perf_counter()
    cpu0 = time.process_time()  # this process's CPU, all threads: the supervisor's share, whatever the load
    # and the other sides' shares: the cluster's own processes (Dask), the warm workers and the runs they forked
    cluster0 = await asyncio.to_thread(cluster_cpu, ws, target_name)
    other0 = os.times()
    launched = 0
    while launched < n or len(loop):
        while launched < n and loop.free:
            run_id = f"{parent_id}_{launched}"
            ids.append(run_id)
            await ctx.db(ws.store.insert_run, run_id, "bench", "script", target_name, {}, parent_id=parent_id,
                         iteration=launched)
            loop.launch(run_id, JobSpec(run_id=run_id, argv=["job.py"], env=env, files=files,
                                        blob_dir=ws.path / "snapshots" / "blobs"), time.time())
            launched += 1
        for done in await loop.wait(0.5):
            ends[done.run_id] = time.time()
            launches[done.run_id] = done.payload
            latencies.append(time.time() - done.payload)
            assert done.status == "Completed", f"{done.run_id} ended {done.status}: " \
                                               f"{ws.store.get_run(done.run_id)['error']}"
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    cluster1 = await asyncio.to_thread(cluster_cpu, ws, target_name)
    shares = {k: sum(cluster1.get(pid, (0.0, 0.0))[i] - c[i] for pid, c in cluster0.items())
              + sum(c[i] for pid, c in cluster1.items() if pid not in cluster0)
              for i, k in enumerate(("cluster", "jobs"))}
    if warm:
        shares["workers"] = sum((await asyncio.to_thread(workers_cpu, Path(ws.path).resolve())).values())
    else:  # cold jobs are this process's children (local) or the cluster workers' (Dask)
        other1 = os.times()
        shares["jobs"] += other1.children_user + other1.children_system - other0.children_user \
            - other0.children_system
    await loop.close()
    await backend.close()
    ctx.close()
    phases = []
    for run_id in ids:  # every run really ran: its metric and its output came back
        assert ws.store.get_metrics(run_id).get("x") == 1 or ws.store.get_metrics(run_id).get("x") == [1], run_id
        assert (ctx.run_dir(run_id) / "outputs" / "o.txt").read_text() == "o"
        marks = dict(ln.split()[:2] for ln in (ctx.run_dir(run_id) / "nbml-logs" / "driver_log.txt").read_text()
                     .splitlines() if ln.startswith(("T0", "T1")))
        t0, t1 = float(marks["T0"]), float(marks["T1"])
        phases.append((t0 - launches[run_id], t1 - t0, ends[run_id] - t1))
    return wall, latencies, phases, cpu, shares


class _Profile:
    """CPU profile of the supervisor side: yappi over every thread when installed, else cProfile."""

    def __init__(self) -> None:
        try:
            import yappi
        except ImportError:
            self.yappi: Any = None
            self.prof: cProfile.Profile | None = cProfile.Profile(time.thread_time)
        else:
            self.yappi, self.prof = yappi, None
            yappi.clear_stats()
            yappi.set_clock_type("cpu")

    def start(self) -> None:
        if self.yappi is not None:
            self.yappi.start(builtins=True)
        elif self.prof is not None:
            self.prof.enable()

    def stop(self) -> None:
        if self.yappi is not None:
            self.yappi.stop()
        elif self.prof is not None:
            self.prof.disable()

    def report(self, n: int) -> None:
        if self.prof is not None:
            print("  supervisor profile, event loop thread, CPU (cumulative, top 25):")
            pstats.Stats(self.prof, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
            return
        stats = self.yappi.get_func_stats()
        threads = self.yappi.get_thread_stats()
        print("  supervisor CPU by thread (ms per run): " + ", ".join(
            f"{t.name}#{t.id} {t.ttot / n * 1000:.2f}" for t in sorted(threads, key=lambda t: -t.ttot)[:8]))
        rows = sorted(stats, key=lambda f: -f.tsub)[:30]
        print("  top 30 by own CPU (ms per run, calls per run, function):")
        for f in rows:
            print(f"    {f.tsub / n * 1000:7.3f} {f.ncall / n:7.1f}  {f.name}  {_short(f.module)}:{f.lineno}")
        ours = sorted((f for f in stats if "/nbml/" in f.module), key=lambda f: -f.ttot)[:30]
        print("  nbml's top 30 by total CPU (ms per run, calls per run, function):")
        for f in ours:
            print(f"    {f.ttot / n * 1000:7.3f} {f.ncall / n:7.1f}  {f.name}  {_short(f.module)}:{f.lineno}")
        self.yappi.clear_stats()


def _short(module: str) -> str:
    parts = Path(module).parts
    return "/".join(parts[-3:])


def automl_30s(ws: Any, warm: bool, seconds: float = 30.0) -> tuple[int, int, float]:
    """(iterations run, completed, best AUC) of a 30-second AutoML experiment, cold or warm."""
    from sklearn.datasets import load_breast_cancer

    from nbml import Experiment
    from nbml.automl import AutoMLConfig

    X, y = load_breast_cancer(return_X_y=True)
    os.environ["NBML_WARM_WORKERS"] = "1" if warm else "0"  # the supervisor inherits it
    try:
        cfg = AutoMLConfig(task="classification", X=X, y=y, experiment_timeout_minutes=seconds / 60,
                           max_concurrent_iterations=2, n_cross_validations=3, primary_metric="AUC_weighted",
                           enable_voting_ensemble=False, enable_stack_ensemble=False)
        run = Experiment(ws, f"automl30-{'warm' if warm else 'cold'}").submit(cfg)
    finally:
        os.environ.pop("NBML_WARM_WORKERS", None)
    run.wait_for_completion(raise_on_error=False, timeout_seconds=300)
    kids = [c for c in ws.store.children(run.id) if c["kind"] == "automl_iteration"]
    done = [c for c in kids if c["status"] == "Completed"]
    props = run.get_properties()
    return len(kids), len(done), float(props.get("best_score") or "nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=500)
    parser.add_argument("--targets", default="local,dask")
    parser.add_argument("--modes", default="cold,warm", help="cold, warm or both (the ratio needs both)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--automl", action="store_true")
    parser.add_argument("--automl-seconds", type=float, default=30.0)
    args = parser.parse_args()
    from nbml import ComputeTarget, Workspace
    from nbml.compute.dask_target import AmlCompute

    targets = [t for t in args.targets.split(",") if t and t != "none"]
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
                for warm in [m == "warm" for m in args.modes.split(",") if m in ("cold", "warm")]:
                    mode = "warm" if warm else "cold"
                    prof = _Profile() if args.profile and warm else None
                    if prof:
                        prof.start()
                    wall, lat, phases, cpu, shares = asyncio.run(dispatch(ws, name, args.n, f"bench-{target}-{mode}",
                                                                          warm))
                    if prof:
                        prof.stop()
                    results[(target, warm)] = args.n / wall
                    print(f"== {target}, {mode}: {args.n} trivial child runs, {CONCURRENCY} at a time")
                    print(f"  wall time       : {wall:8.2f} s")
                    print(f"  throughput      : {args.n / wall:8.2f} runs/s")
                    print(f"  supervisor CPU  : {cpu / args.n * 1000:8.1f} ms per run (all its threads; the "
                          f"most it allows on one core: {args.n / cpu:.0f} runs/s)")
                    print("  other CPU       : " + ", ".join(
                        f"{k} {v / args.n * 1000:.1f} ms" for k, v in shares.items() if v or k != "cluster")
                        + " per run (cluster: the Dask processes themselves; jobs: cold job processes; "
                        "workers: warm workers with the runs they forked)")
                    print(f"  per-run latency : {statistics.mean(lat) * 1000:8.0f} ms mean, "
                          f"{statistics.median(lat) * 1000:.0f} ms median")
                    print("  where the time goes (means): launch to script start "
                          f"{statistics.mean(p[0] for p in phases) * 1000:.0f} ms, the script "
                          f"{statistics.mean(p[1] for p in phases) * 1000:.0f} ms, script end to Completed "
                          f"{statistics.mean(p[2] for p in phases) * 1000:.0f} ms")
                    if prof:
                        prof.report(args.n)
            if targets:
                print("== warm relative to cold (same run, same machine load)")
            for target in [t for t in targets if (t, False) in results and (t, True) in results]:
                cold, warm_rate = results[(target, False)], results[(target, True)]
                print(f"  {target:6s}: {warm_rate:6.1f} runs/s warm vs {cold:6.1f} cold = {warm_rate / cold:5.2f}x")
            if args.automl:
                print(f"== AutoML, {args.automl_seconds:g} s, breast cancer (569 x 30), 2 iterations at a time, local target")
                tried = {}
                for warm in (False, True):
                    n_run, n_done, best = automl_30s(ws, warm, args.automl_seconds)
                    tried[warm] = n_run
                    print(f"  {'warm' if warm else 'cold'}: {n_run:4d} pipelines tried, {n_done:4d} completed, "
                          f"best AUC_weighted {best:.4f}")
                print(f"  pipelines tried, warm / cold: {tried[True] / max(1, tried[False]):.2f}x")
            print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        finally:
            if cluster is not None:
                cluster.delete()


if __name__ == "__main__":
    # benchmarks/ holds a distributed.py: off the path, or the Dask cluster's processes import it for dask's own
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))
    os.environ.setdefault("NBML_HEARTBEAT_SECONDS", "5")
    main()
