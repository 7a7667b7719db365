"""Waiting for a distributed run's ranks, and checking their processes are gone (tests/distributed)."""

from __future__ import annotations

import time
from typing import Any

import psutil


def wait_ranks(run: Any, count: int, state: str | None = "running", timeout: float = 90) -> dict[int, dict[str, Any]]:
    """Poll the run's details until `count` ranks are in `state` (None: in any state, i.e. started); return the
    ranks' records."""
    deadline = time.monotonic() + timeout
    ranks: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        ranks = run.get_details()["distributed"]["ranks"]
        if sum(1 for r in ranks.values() if state is None or r.get("state") == state) >= count:
            return ranks
        time.sleep(0.1)
    raise AssertionError(f"{run.id}: wanted {count} ranks {state}, have {ranks} (status {run.get_status()})")


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` that are still processes (not zombies)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            continue
    return out


def kill_node_and_check_failure(run: Any, node: int = 1) -> None:
    """Kill (SIGKILL) the Dask worker that holds `node` of the running gang job, wait for the run to end, and
    check it failed naming that node."""
    import json
    import os
    import signal
    from pathlib import Path

    info = json.loads(run.workspace.store.get_run(run.id)["handle_json"])["data"]["nodes"][node]
    os.kill(json.loads((Path(info["dir"]) / ".nbml/started").read_text())["pid"], signal.SIGKILL)
    run.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert f"node {node} (Dask worker {info['worker']}) was lost mid-run" in error, error
