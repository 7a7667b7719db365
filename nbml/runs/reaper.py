"""Detect runs whose supervisor died, so that no run stays Running forever."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from typing import Any

from nbml._proc import pid_alive
from nbml.runs.status import ACTIVE, FAILED
from nbml.store import Store

HEARTBEAT_TIMEOUT = float(os.environ.get("NBML_HEARTBEAT_TIMEOUT", "30"))


def is_stale(rec: dict[str, Any], now: float | None = None, timeout: float | None = None) -> bool:
    """A non-terminal run whose supervisor stopped beating (and, on this host, whose process is gone)."""
    if rec["status"] not in ACTIVE:
        return False
    now = time.time() if now is None else now
    last = rec["heartbeat_at"] or rec["created_at"]
    if now - last < (HEARTBEAT_TIMEOUT if timeout is None else timeout):
        return False
    same_host = rec.get("supervisor_host") in (None, socket.gethostname())
    return not (same_host and pid_alive(rec.get("supervisor_pid")))


def reap(store: Store, rec: dict[str, Any], timeout: float | None = None) -> bool:
    """Mark a stale run Failed with the reason and stop its local job; returns whether it did."""
    if not is_stale(rec, timeout=timeout):
        return False
    age = time.time() - (rec["heartbeat_at"] or rec["created_at"])
    reason = (f"The run's supervisor (pid {rec.get('supervisor_pid') or 'never started'}) stopped: no heartbeat for "
              f"{age:.0f} s. Its job was stopped; submit the run again.")
    _kill_local_job(rec)
    moved = store.set_status(rec["run_id"], FAILED, error=reason)
    for child in store.children(rec["run_id"]):
        if child["status"] in ACTIVE:
            _kill_local_job(child)
            store.set_status(child["run_id"], FAILED, error="Its parent run's supervisor stopped.")
    return moved


def reap_all(store: Store, timeout: float | None = None) -> list[str]:
    reaped = []
    for rec in store.list_runs(status=list(ACTIVE), limit=10_000):
        if reap(store, rec, timeout):
            reaped.append(rec["run_id"])
    return reaped


def _kill_local_job(rec: dict[str, Any]) -> None:
    if not rec.get("handle_json"):
        return
    handle = json.loads(rec["handle_json"]) or {}
    pgid = (handle.get("data") or {}).get("pgid")
    if pgid and rec.get("supervisor_host") in (None, socket.gethostname()) and handle.get("target") == "local":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pgid), signal.SIGKILL)
