"""The experiment page's API (``GET /nbml/api/experiments/<name>/runs``) on 1,000 runs x 20 metrics.

Goal (issue 14): the answer in under 300 ms. Measured in process, the manager's call (in its worker thread, as
the handler awaits it) to the JSON text the handler sends, beside baselines measured in the same run:

- ``listing``: the sidebar's plain listing of the same 1,000 runs (``GET /nbml/api/runs?experiment=&limit=500``,
  two pages), which reads each run's latest numbers from ``metric_latest`` (before: it folded every metric row);
- ``per-run``: the same table built with one query per run for its tags, properties and latest metrics (what
  the page would cost without the two-statement read);
- ``unchanged``: the poll that finds nothing new (``?since=<version>``).

Each run logs 20 metrics 5 times (100,000 metric rows), has two tags and HyperDrive-style hyperparameters.
Run: ``python benchmarks/experiment_page.py [--runs 1000 --metrics 20 --repeat 7]`` (about a minute to seed;
prints a table with ratios; no assertion).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nbml.server.manager import NbmlManager  # noqa: E402
from nbml.store import Store  # noqa: E402
from nbml.workspace import Workspace  # noqa: E402

EXPERIMENT = "bench"


def seed(folder: Path, n_runs: int, n_metrics: int, values: int = 5) -> None:
    store = Store(folder)
    names = [f"metric_{m:02d}" for m in range(n_metrics)]
    for r in range(n_runs):
        run_id = f"bench_{r:05d}"
        store.insert_run(run_id, EXPERIMENT, "script", "local",
                         {"script": "train.py", "arguments": ["--lr", str(0.001 * (r + 1)), "--depth", str(r % 7)]},
                         display_name=f"trial {r}")
        store.set_status(run_id, "Running")
        events = [(i, {"type": "metric", "name": names[i % n_metrics], "kind": "scalar", "value": (r + i) * 1e-3,
                       "t": 1.0 + i}) for i in range(n_metrics * values)]
        store.ingest(run_id, events, len(events))
        store.set_tags(run_id, {"team": "a" if r % 2 else "b", "seed": str(r)})
        store.add_properties(run_id, {"hyperparameters": json.dumps({"--lr": 0.001 * (r + 1), "--depth": r % 7})})
        store.set_status(run_id, "Completed")
    store.db.close()


def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float, Any]:
    """Median wall and CPU seconds (this process, all threads) of `repeat` calls after a warm-up; last answer.

    CPU time is what the call costs on an idle machine; wall time also holds waiting for a busy machine's cores."""
    loop = asyncio.new_event_loop()
    try:
        answer = loop.run_until_complete(fn())
        wall, cpu = [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            answer = loop.run_until_complete(fn())
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    finally:
        loop.close()
    return statistics.median(wall), statistics.median(cpu), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ws"
        folder.mkdir()
        started = time.perf_counter()
        seed(folder, args.runs, args.metrics)
        print(f"seeded {args.runs} runs x {args.metrics} metrics x 5 values in {time.perf_counter() - started:.1f} s")
        manager = NbmlManager(Workspace(path=folder))

        async def table() -> str:
            model = await manager.experiment_runs(EXPERIMENT, parent_id=None, children=False, since=None)
            return json.dumps(model, allow_nan=False)

        page_s, page_cpu, text = timed(table, args.repeat)
        version = json.loads(text)["version"]

        async def unchanged() -> str:
            model = await manager.experiment_runs(EXPERIMENT, parent_id=None, children=False, since=version)
            return json.dumps(model)

        async def listing() -> str:
            first = await manager.runs(experiment=EXPERIMENT, status=None, parent_id=None, top_level=True,
                                       limit=500, offset=0)
            second = await manager.runs(experiment=EXPERIMENT, status=None, parent_id=None, top_level=True,
                                        limit=500, offset=500)
            return json.dumps(first) + json.dumps(second)

        async def per_run() -> str:
            def build() -> list[dict[str, Any]]:
                store = manager.store
                out = []
                for row in store.list_runs(experiment=EXPERIMENT, top_level=True, limit=args.runs):
                    rid = row["run_id"]
                    latest = store.latest_metrics([rid])[rid]
                    out.append({"run_id": rid, "tags": store.get_tags(rid), "properties": store.get_properties(rid),
                                "metrics": {k: v["value"] for k, v in latest.items()}})
                return out

            return json.dumps(await asyncio.to_thread(build))

        unchanged = timed(unchanged, args.repeat)
        listing = timed(listing, args.repeat)
        per_run = timed(per_run, args.repeat)
        model = json.loads(text)
        assert len(model["runs"]) == args.runs and len(model["metric_names"]) == args.metrics
        print(f"answer: {len(text) / 1e6:.2f} MB for {len(model['runs'])} runs, {len(model['metric_names'])} metric "
              f"columns, {len(model['param_names'])} parameter columns")
        print(f"{'request (median of ' + str(args.repeat) + ')':<44}{'wall ms':>9}{'CPU ms':>9}{'x page':>9}")
        rows = [("experiment page table (goal < 300 ms)", page_s, page_cpu),
                ("  ... poll with since=<version>, unchanged", *unchanged[:2]),
                ("baseline: plain listing, 2 x 500 runs", *listing[:2]),
                ("baseline: one query per run", *per_run[:2])]
        for label, secs, cpu in rows:
            print(f"{label:<44}{secs * 1000:>9.1f}{cpu * 1000:>9.1f}{cpu / page_cpu:>9.2f}")


if __name__ == "__main__":
    main()
