"""Runs that cannot be lost: a run whose supervisor died is taken over by a new one, not marked Failed.

Every active run has a holder recorded in the store: for submitted runs its supervisor process, for
interactive runs (``Experiment.start_logging``) the process that started them. A holder is its pid *and*
its start time (psutil) on a host, so a reused pid never passes for it. Readers call
:func:`ensure_supervised` at defined points (``Run.get``, ``get_status``, ``wait_for_completion``,
``cancel``, opening a workspace, the CLI, the server's listings, the widget's watcher); it is the only
state change a read may cause:

* a live holder: nothing happens;
* a submitted run whose supervisor is gone: one atomic claim in the store (compare-and-set on the old
  holder) lets exactly one reader start a new supervisor, which claims the run for itself and adopts the
  job from its stored handle and event offset (see :func:`nbml.runs.executor.execute`);
* an interactive run whose process is gone: Failed, saying so (nothing else could finish it).

Liveness: on this host, psutil decides; on another host (a workspace on a shared folder), a heartbeat
older than ``HEARTBEAT_TIMEOUT`` does.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from nbml._proc import can_tell, pid_alive, process_alive, start_time
from nbml.runs.status import ACTIVE, FAILED, TERMINAL
from nbml.store import Store

HEARTBEAT_SECONDS = float(os.environ.get("NBML_HEARTBEAT_SECONDS", "2"))
HEARTBEAT_TIMEOUT = float(os.environ.get("NBML_HEARTBEAT_TIMEOUT", "30"))
#: How long a claimed-but-not-yet-started supervisor may take to claim the run for itself.
STARTUP_GRACE = float(os.environ.get("NBML_SUPERVISOR_STARTUP_GRACE", "30"))
#: Supervisors started to take one run over before it is given up as Failed.
MAX_ADOPTIONS = 5
INTERACTIVE = "interactive"

_NOT_TERMINAL = f"status NOT IN ({','.join(repr(s) for s in sorted(TERMINAL))})"


def _host() -> str:
    return socket.gethostname()


def holder_alive(rec: dict[str, Any], now: float | None = None) -> tuple[bool, str]:
    """Whether the run's holder (supervisor or interactive process) lives, and what was found if not."""
    now = time.time() if now is None else now
    pid, started, host = rec.get("supervisor_pid"), rec.get("supervisor_started"), rec.get("supervisor_host")
    beat = rec.get("heartbeat_at") or rec.get("created_at") or now
    age = now - beat
    if not pid:
        if age < STARTUP_GRACE:
            return True, "its supervisor is starting"
        return False, f"no supervisor claimed the run within {age:.0f} s"
    if host not in (None, _host()):
        if age < HEARTBEAT_TIMEOUT:
            return True, "heartbeat is recent"
        return False, f"no heartbeat from pid {pid} on host {host} for {age:.0f} s"
    if started is None:  # written by a process that recorded no start time: its pid and heartbeat decide
        if pid_alive(pid) and age < HEARTBEAT_TIMEOUT:
            return True, "heartbeat is recent"
        return False, f"process {pid} stopped beating {age:.0f} s ago"
    if process_alive(pid, started):
        return True, "process runs"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    return False, f"process {pid} (started {when}) on this host is gone"


# -- claims --------------------------------------------------------------------------------------
def claim_for_restart(store: Store, rec: dict[str, Any]) -> bool:
    """Atomically take the run from its dead holder for a new supervisor; True for the one caller that won.

    Compare-and-set on the holder and heartbeat the caller saw: if another reader claimed first, or the
    holder beat in between, nothing changes. The claim leaves no pid and a fresh heartbeat, which gives the
    new supervisor STARTUP_GRACE to claim the run for itself.
    """
    with store.db.tx() as c:
        cur = c.execute(
            f"""UPDATE runs SET supervisor_pid = NULL, supervisor_started = NULL, supervisor_host = NULL,
                heartbeat_at = ?, adoptions = adoptions + 1
                WHERE run_id = ? AND {_NOT_TERMINAL} AND supervisor_pid IS ? AND supervisor_started IS ?
                AND heartbeat_at IS ?""",
            (time.time(), rec["run_id"], rec.get("supervisor_pid"), rec.get("supervisor_started"),
             rec.get("heartbeat_at")),
        )
        return cur.rowcount == 1


def claim_as_supervisor(store: Store, run_id: str) -> bool:
    """The starting supervisor's claim: the run becomes this process's if no one holds it."""
    with store.db.tx() as c:
        cur = c.execute(
            f"""UPDATE runs SET supervisor_pid = ?, supervisor_started = ?, supervisor_host = ?, heartbeat_at = ?
                WHERE run_id = ? AND {_NOT_TERMINAL} AND supervisor_pid IS NULL""",
            (os.getpid(), start_time(), _host(), time.time(), run_id),
        )
        return cur.rowcount == 1


def hold(store: Store, run_id: str) -> None:
    """Record this process as the holder of an interactive run (it was just created by this process)."""
    with store.db.tx() as c:
        c.execute("""UPDATE runs SET supervisor_pid = ?, supervisor_started = ?, supervisor_host = ?,
                     heartbeat_at = ? WHERE run_id = ?""", (os.getpid(), start_time(), _host(), time.time(), run_id))


def beat(store: Store, own_run: str | None, others: set[str]) -> bool:
    """One heartbeat of this process: its own run only while it still holds it; runs it drives for a parent
    (AutoML/HyperDrive children) always. Returns False when another process took `own_run` over."""
    now, me, started = time.time(), os.getpid(), start_time()
    with store.db.tx() as c:
        held = True
        if own_run is not None:
            cur = c.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND supervisor_pid = ? "
                            "AND supervisor_host = ?", (now, own_run, me, _host()))
            held = cur.rowcount == 1 or _is_terminal(c, own_run)
        c.executemany(
            "UPDATE runs SET heartbeat_at = ?, supervisor_pid = ?, supervisor_started = ?, supervisor_host = ? "
            "WHERE run_id = ?", [(now, me, started, _host(), r) for r in others - {own_run}])
    return held


def _is_terminal(c: Any, run_id: str) -> bool:
    row = c.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row is None or row["status"] in TERMINAL


# -- the one recovery path -----------------------------------------------------------------------
def ensure_supervised(store: Store, rec: dict[str, Any] | None) -> str | None:
    """Make sure an active run has a live holder; returns what was done ("adopted", "failed") or None.

    Safe to call from any reader, any number of times, concurrently: a live holder means no change.
    """
    if rec is None or rec["status"] in TERMINAL or not can_tell():
        return None  # (an interpreter without psutil, e.g. a job's, can't judge liveness and leaves runs alone)
    if rec["kind"] == INTERACTIVE:
        alive, found = holder_alive(rec)
        if alive:
            return None
        moved = store.set_status(rec["run_id"], FAILED, error=(
            f"The process that started this interactive run is gone ({found}); the run was never completed. "
            "Call run.complete() before the notebook or script ends."))
        return "failed" if moved else None
    if rec.get("parent_id"):
        return _ensure_child(store, rec)
    alive, found = holder_alive(rec)
    if alive:
        return None
    if int(rec.get("adoptions") or 0) >= MAX_ADOPTIONS:
        moved = store.set_status(rec["run_id"], FAILED, error=(
            f"The run's supervisor stopped ({found}) and {MAX_ADOPTIONS} supervisors started to take it over "
            "never did; see nbml-logs/supervisor_stderr.txt of the run."))
        return "failed" if moved else None
    if not claim_for_restart(store, rec):
        return None  # another reader won the claim (or the holder beat in time)
    from nbml.runs.supervisor import start_supervisor

    with open(_log_path(store.root, rec["run_id"]), "a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor gone ({found}); pid {os.getpid()} starts a new "
                 "one to adopt the run\n")
    start_supervisor(store.root, rec["run_id"])
    return "adopted"


def _ensure_child(store: Store, rec: dict[str, Any]) -> str | None:
    """A child run is driven by its parent's supervisor (or its parent's job): recovering the parent
    recovers it. A child left active long after its parent ended can't end any other way: Failed."""
    parent = store.get_run(rec["parent_id"])
    if parent is None or parent["status"] not in TERMINAL:
        return ensure_supervised(store, parent)
    if time.time() - (parent.get("ended_at") or 0) < HEARTBEAT_TIMEOUT:
        return None  # the parent's supervisor may still be closing its children
    moved = store.set_status(rec["run_id"], FAILED, error=(
        f"Its parent run {parent['run_id']} ended ({parent['status']}) while this run was still active."))
    return "failed" if moved else None


def recover_all(store: Store) -> list[tuple[str, str]]:
    """ensure_supervised for every active top-level run; returns (run id, what was done) for each change."""
    done = []
    for rec in store.list_runs(status=list(ACTIVE), top_level=True, limit=100_000):
        action = ensure_supervised(store, rec)
        if action:
            done.append((rec["run_id"], action))
    return done


def _log_path(ws_root: Path, run_id: str) -> Path:
    folder = ws_root / "runs" / run_id / "nbml-logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "supervisor_log.txt"


# -- interactive runs: held by this process ------------------------------------------------------
class _Holder:
    """One daemon thread per process beating for every interactive run this process holds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[Path, set[str]] = {}
        self.thread: threading.Thread | None = None
        self.pid = os.getpid()

    def add(self, root: Path, run_id: str) -> None:
        with self.lock:
            if self.pid != os.getpid():  # a forked child doesn't hold its parent's runs
                self.runs, self.thread, self.pid = {}, None, os.getpid()
            self.runs.setdefault(root, set()).add(run_id)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, daemon=True, name="nbml-interactive-heartbeat")
                self.thread.start()

    def discard(self, root: Path, run_id: str) -> None:
        with self.lock:
            self.runs.get(root, set()).discard(run_id)

    def _loop(self) -> None:
        stores: dict[Path, Store] = {}  # its own connections: never queued behind the notebook's writes
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self.lock:
                held = {root: set(ids) for root, ids in self.runs.items() if ids}
            for root, ids in held.items():
                try:
                    store = stores.get(root) or stores.setdefault(root, Store(root))
                    beat(store, None, ids)
                except Exception:  # a locked or removed workspace must not end the thread
                    continue


_holder = _Holder()


def hold_interactive(store: Store, run_id: str) -> None:
    """Hold an interactive run from this process: record it as the holder and keep its heartbeat."""
    hold(store, run_id)
    _holder.add(store.root, run_id)


def release_interactive(store: Store, run_id: str) -> None:
    _holder.discard(store.root, run_id)
