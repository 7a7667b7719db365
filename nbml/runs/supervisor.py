"""The per-run supervisor process: ``python -m nbml.supervisor WORKSPACE RUN_ID``.

It owns the run's lifecycle, independent of the kernel that submitted it. It first claims the run in the
store (its pid and start time, see nbml.runs.recovery); a supervisor that finds the run already held exits
quietly, so several readers noticing a dead supervisor at once start exactly one replacement. A
supervisor that takes over a run whose job already started adopts that job (nbml.runs.executor.execute).
A heartbeat thread keeps the claim fresh for readers on other hosts.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from nbml.runs import recovery
from nbml.runs.context import SupervisorContext
from nbml.runs.status import FAILED, NOT_STARTED, QUEUED
from nbml.store import Store

HEARTBEAT_SECONDS = recovery.HEARTBEAT_SECONDS
DEFAULT_DRIVER = "nbml.runs.script_driver"


def _heartbeat(store_root: Path, ctx: SupervisorContext, stop: threading.Event) -> None:
    store = Store(store_root)  # its own connection: never blocked behind the driver's writes
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            held = recovery.beat(store, ctx.run_id, set(ctx.active))
        except Exception:  # a locked database must not kill the heartbeat thread
            ctx.log_exception("heartbeat failed")
            continue
        if not held:  # only possible across hosts: a reader found our heartbeat stale and a new supervisor won
            ctx.log(f"supervisor {os.getpid()}: another supervisor took {ctx.run_id} over; exiting")
            os._exit(0)


def _leave(ctx: SupervisorContext, signum: int) -> None:
    """A signal (shutdown, logout, kill): exit and leave the job running; the next nbml process adopts it."""
    ctx.log(f"supervisor {os.getpid()} stopped by {signal.Signals(signum).name}; the job is left to be adopted")
    os._exit(0)


async def _main(ctx: SupervisorContext, driver: str) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, _leave, ctx, sig)
    try:
        module = importlib.import_module(driver)
        await module.drive(ctx)
    finally:
        ctx.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m nbml.supervisor WORKSPACE RUN_ID", file=sys.stderr)
        return 2
    ws_root, run_id = Path(args[0]), args[1]
    from nbml.compute import _ssh_secrets

    _ssh_secrets.adopt_environ()  # before any job starts, so jobs don't inherit the parent's SSH secrets
    store = Store(ws_root)
    rec = store.get_run(run_id)
    if rec is None:
        print(f"no run {run_id} in {ws_root}", file=sys.stderr)
        return 2
    run_dir = ws_root / "runs" / run_id / "nbml-logs"
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = SupervisorContext(store, ws_root, run_id, run_dir / "supervisor_log.txt")
    if not recovery.claim_as_supervisor(store, run_id):
        ctx.log(f"supervisor {os.getpid()}: {run_id} is already held by another supervisor (or ended); exiting")
        return 0
    rec = store.get_run(run_id) or rec
    adopting = bool(rec.get("handle_json")) or rec["status"] != NOT_STARTED
    ctx.log(f"supervisor {os.getpid()} for {run_id}" + (f" (takes over a {rec['status']} run)" if adopting else ""))
    if rec["status"] == NOT_STARTED:
        store.set_status(run_id, QUEUED)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(ws_root, ctx, stop), daemon=True, name="nbml-heartbeat")
    beat.start()
    driver = json.loads(rec["config_json"]).get("driver", DEFAULT_DRIVER)
    try:
        asyncio.run(_main(ctx, driver))
    except BaseException as exc:
        ctx.log_exception("supervisor crashed")
        store.set_status(run_id, FAILED, error=f"The run's supervisor crashed: {type(exc).__name__}: {exc}\n"
                                               + traceback.format_exc()[-4000:])
    finally:
        stop.set()
        try:
            recovery.beat(store, None, set(ctx.active))
        except Exception:  # the last beat is a courtesy to readers of the children
            ctx.log_exception("last heartbeat failed")
        err = run_dir / "supervisor_stderr.txt"
        if err.exists() and err.stat().st_size == 0:
            err.unlink()  # keep the run's file list to what matters
    return 0


def start_supervisor(ws_root: Path, run_id: str) -> int:
    """Start a detached supervisor for `run_id` (its own session: a kernel restart doesn't touch it)."""
    log_dir = ws_root / "runs" / run_id / "nbml-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # SSH passwords/passphrases given in this process (e.g. RemoteCompute.attach(password=...)) reach the
    # supervisor through its environment only; it moves them into memory at once (never to disk).
    from nbml.compute import _ssh_secrets

    env.update(_ssh_secrets.child_environ())
    env["NBML_PROGRESS"] = "0"  # progress bars are for a person watching; the supervisor's output is a log
    # Make sure the child imports this very nbml, even from a checkout that isn't installed.
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        env["PYTHONPATH"] = str(checkout) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_dir / "supervisor_stderr.txt", "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbml.supervisor", str(ws_root), run_id],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True, close_fds=True, env=env,
        )
    threading.Thread(target=proc.wait, daemon=True, name=f"nbml-reap-{proc.pid}").start()
    return proc.pid


if __name__ == "__main__":
    sys.exit(main())
