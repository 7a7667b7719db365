"""Kernel CPU per RunDetails update, for an AutoML parent with 10 and with 1,000 iterations.

Each update is one store event (a new iteration finishes, with its metrics) followed by one widget poll.
The poll runs inside a real IPython kernel (widgets have live comms, so every patch is serialized and
sent). Baseline, measured in the same run: a naive update that re-reads every child and its metrics and
rebuilds the whole table, as a widget without incremental reads would; the ratio naive/incremental is printed.

What an update sends at 1,000 iterations: the status bar as three packed arrays (int32 iterations, uint8 status
indexes, float64 scores: about 13 KB of binary buffers, no JSON), one page of the table (10 rows) when it
changed, and the metric chart's two series as float64 buffers through ``plotly_restyle``.

Run: ``python benchmarks/widget_update.py`` (about a minute).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
UPDATES = 30
GOAL_MS = 20.0


def measure(iterations: int) -> dict[str, float]:
    """CPU seconds per update (incremental vs naive) at `iterations` finished children; call in a kernel."""
    sys.path.insert(0, str(REPO / "tests" / "widgets"))
    import simulate

    from nbml import Run, Workspace
    from nbml.widgets import RunDetails
    from nbml.widgets._iterations import ChildrenState
    from nbml.widgets._table import IterationTable

    ws = Workspace(path=tempfile.mkdtemp(prefix="nbml-bench-"))
    store = ws.store
    simulate.start_parent(store, "P")
    for i in range(iterations):
        simulate.add_iteration(store, "P", i, log_lines=0)
    details = RunDetails(Run.get(ws, "P"))
    details.poll_once()  # first full read, not counted
    store.heartbeat(["P"])

    inc = 0.0
    for k in range(UPDATES):
        simulate.add_iteration(store, "P", iterations + k, log_lines=0)
        t0 = time.process_time()
        details.poll_once()
        inc += time.process_time() - t0
    assert details.view.table.total == iterations + UPDATES

    table_state = ChildrenState("AUC_weighted")
    naive_table = IterationTable(table_state)
    naive = 0.0
    for k in range(UPDATES):
        simulate.add_iteration(store, "P", iterations + UPDATES + k, log_lines=0)
        t0 = time.process_time()
        children = store.children("P")
        ids = [c["run_id"] for c in children]
        props = {rid: store.get_properties(rid) for rid in ids}
        state = ChildrenState("AUC_weighted")
        state.apply(children, props, store.metrics_for_runs(ids))
        naive_table._state = state
        naive_table.rows = []  # a full redraw resends everything
        naive_table.bar_iterations = naive_table.bar_status = naive_table.bar_scores = b""
        naive_table.refresh()
        naive += time.process_time() - t0
    details.stop()
    return {"incremental_ms": 1000 * inc / UPDATES, "naive_ms": 1000 * naive / UPDATES}


def _in_kernel(code: str) -> str:
    from jupyter_client.manager import start_new_kernel

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    out: list[str] = []
    try:
        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = kc.execute_interactive(code, output_hook=hook, timeout=900)
        if reply["content"]["status"] != "ok":
            raise RuntimeError("".join(out))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return "".join(out)


def main() -> None:
    code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import widget_update as w\n"
            "print(json.dumps({n: w.measure(n) for n in (10, 1000)}))")
    results = json.loads(_in_kernel(code).strip().splitlines()[-1])
    print(f"RunDetails update cost in a kernel ({UPDATES} updates each; one new iteration per update)")
    print(f"{'iterations':>10}  {'incremental ms':>14}  {'naive ms':>9}  {'naive/incremental':>17}")
    for n, r in results.items():
        print(f"{n:>10}  {r['incremental_ms']:>14.2f}  {r['naive_ms']:>9.2f}  {r['naive_ms'] / r['incremental_ms']:>17.1f}x")
    small, big = results["10"], results["1000"]
    print(f"incremental cost at 1,000 vs 10 iterations: {big['incremental_ms'] / small['incremental_ms']:.1f}x")
    print(f"goal at 1,000 iterations: under {GOAL_MS:.0f} ms per update: "
          f"{'met' if big['incremental_ms'] < GOAL_MS else 'NOT met'} ({big['incremental_ms']:.1f} ms)")


if __name__ == "__main__":
    main()
