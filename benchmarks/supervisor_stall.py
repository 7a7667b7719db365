"""The supervisor's worst event-loop stall while it ingests a busy run and 8 other processes write the store.

One event loop runs what a supervisor runs: `executor.execute()` for a real local job that logs metrics as
fast as it can, plus a ticker task that wakes every 10 ms and records how late it woke. Meanwhile 8 writer
processes hammer the same nbml.db with ingest transactions (as 8 other supervisors would). The worst
lateness is how long one AutoML child's supervision (or a cancel) can be held up by the store.

Two modes, measured in the same run:

- ``offload`` (today): store calls go through ``ctx.db`` (the context's writer thread) and file appends
  through ``ctx.io``, so the loop never waits on SQLite locks or the disk;
- ``sync`` (the old path): the same calls made directly on the loop (``ctx.offload = False``).

Run: ``python benchmarks/supervisor_stall.py [--writers 8] [--metrics 20000] [--mode both|offload|sync]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

JOB = """
import sys
from nbml import Run
run = Run.get_context()
for i in range(int(sys.argv[1])):
    run.log("loss", 1.0 / (i + 1), step=i)
    if i % 100 == 0:
        print("step", i, flush=True)
"""


def _hammer(root: str, run_id: str, stop: mp.synchronize.Event, batch: int,  # type: ignore[name-defined]
            nice: int) -> None:
    """A writer process: ingest batches of metrics for its own run until told to stop."""
    import os

    from nbml.store import Store

    os.nice(nice)

    store = Store(Path(root))
    offset = 0
    while not stop.is_set():
        events = [(offset + i, {"type": "metric", "name": "x", "kind": "scalar", "value": i}) for i in range(batch)]
        store.ingest(run_id, events, offset + batch)
        offset += batch


async def _ticker(stop: asyncio.Event, lateness: list[float], period: float = 0.01) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(period)
        lateness.append(time.perf_counter() - t0 - period)


async def _supervise(ws_root: Path, run_id: str, offload: bool) -> tuple[str, list[float]]:
    import psutil  # noqa: F401 - a supervisor imports it before its loop starts (its claim); so does this one

    from nbml.compute.local import LocalBackend
    from nbml.runs.context import SupervisorContext
    from nbml.runs.executor import execute
    from nbml.runs.script_driver import build_job
    from nbml.store import Store

    store = Store(ws_root)
    ctx = SupervisorContext(store, ws_root, run_id)
    ctx.offload = offload
    rec = store.get_run(run_id)
    assert rec is not None
    job = build_job(ctx, run_id, ctx.config, rec["experiment"])
    backend = LocalBackend("local", {}, ws_root)
    stop, lateness = asyncio.Event(), []  # type: ignore[var-annotated]
    ticker = asyncio.create_task(_ticker(stop, lateness))
    try:
        status = await execute(ctx, run_id, job, backend)
    finally:
        stop.set()
        await ticker
        ctx.close()
    return status, lateness


def measure(mode: str, writers: int, metrics: int, batch: int, nice: int) -> dict[str, float]:
    from nbml import Workspace
    from nbml.environment import Environment
    from nbml.snapshot import take_snapshot

    ws = Workspace(path=tempfile.mkdtemp(prefix="nbml-stall-"))
    src = Path(tempfile.mkdtemp(prefix="nbml-stall-src-"))
    (src / "job.py").write_text(textwrap.dedent(JOB))
    snap = take_snapshot(ws, src)
    env = Environment("stall")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable
    config = {"driver": "nbml.runs.script_driver", "script": "job.py", "arguments": [str(metrics)],
              "snapshot_id": snap.id, "env": env.spec().to_dict()}
    run_id = f"stall_{mode}"
    ws.store.insert_run(run_id, "stall", "script", "local", config, snapshot_id=snap.id)
    for i in range(writers):
        ws.store.insert_run(f"writer_{i}", "stall", "script", "local", {})
    stop = mp.Event()
    procs = [mp.Process(target=_hammer, args=(str(ws.path), f"writer_{i}", stop, batch, nice),
                        daemon=True)
             for i in range(writers)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let the writers get going
    try:
        t0 = time.perf_counter()
        status, lateness = asyncio.run(_supervise(ws.path, run_id, offload=(mode == "offload")))
        wall = time.perf_counter() - t0
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    ingested = len(ws.store.get_metrics(run_id).get("loss") or [])
    lateness.sort()
    return {"status_ok": float(status == "Completed" and ingested == metrics), "ingested": ingested,
            "worst_ms": lateness[-1] * 1000, "p99_ms": lateness[int(len(lateness) * 0.99)] * 1000,
            "ticks": len(lateness), "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--metrics", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500, help="events per writer transaction")
    ap.add_argument("--mode", choices=["both", "offload", "sync"], default="both")
    ap.add_argument("--nice", type=int, default=0,
                    help="niceness of the writers: on a machine with fewer cores than writers, a positive value "
                         "keeps CPU starvation out of the figure, leaving the store's lock waits")
    args = ap.parse_args()
    modes = ["offload", "sync"] if args.mode == "both" else [args.mode]
    results = {m: measure(m, args.writers, args.metrics, args.batch, args.nice) for m in modes}
    print(f"supervisor loop stall: {args.metrics} metrics ingested from a local job, {args.writers} writer "
          f"processes ({args.batch} events per transaction, nice {args.nice}), {os.cpu_count()} CPUs")
    print(f"{'mode':<10}{'worst stall':>14}{'p99':>10}{'ticks':>8}{'wall':>9}  complete")
    for m, r in results.items():
        print(f"{m:<10}{r['worst_ms']:>11.1f} ms{r['p99_ms']:>7.1f} ms{r['ticks']:>8.0f}{r['wall_s']:>7.1f} s  "
              f"{'yes' if r['status_ok'] else 'NO'} ({r['ingested']:.0f})")
    if len(results) == 2:
        ratio = results["sync"]["worst_ms"] / max(results["offload"]["worst_ms"], 1e-6)
        print(f"worst stall, old synchronous path / offloaded: {ratio:.1f}x "
              f"(goal: offloaded under 100 ms: {'met' if results['offload']['worst_ms'] < 100 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
