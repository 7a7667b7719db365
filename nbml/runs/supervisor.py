"""The per-run supervisor process: ``python -m nbml.supervisor WORKSPACE RUN_ID``.

It owns the run's lifecycle, independent of the kernel that submitted it, and keeps a heartbeat in the
store so that readers can tell a dead supervisor from a slow run.
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

from nbml.runs.context import SupervisorContext
from nbml.runs.status import FAILED, QUEUED
from nbml.store import Store

HEARTBEAT_SECONDS = float(os.environ.get("NBML_HEARTBEAT_SECONDS", "2"))
DEFAULT_DRIVER = "nbml.runs.script_driver"


def _heartbeat(store_root: Path, ctx: SupervisorContext, stop: threading.Event) -> None:
    store = Store(store_root)  # its own connection: never blocked behind the driver's writes
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            store.heartbeat(set(ctx.active))
        except Exception:  # a locked database must not kill the heartbeat thread
            ctx.log_exception("heartbeat failed")


async def _main(ctx: SupervisorContext, driver: str) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, ctx.cancel_all.set)
    module = importlib.import_module(driver)
    await module.drive(ctx)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m nbml.supervisor WORKSPACE RUN_ID", file=sys.stderr)
        return 2
    ws_root, run_id = Path(args[0]), args[1]
    store = Store(ws_root)
    rec = store.get_run(run_id)
    if rec is None:
        print(f"no run {run_id} in {ws_root}", file=sys.stderr)
        return 2
    run_dir = ws_root / "runs" / run_id / "nbml-logs"
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = SupervisorContext(store, ws_root, run_id, run_dir / "supervisor_log.txt")
    ctx.log(f"supervisor {os.getpid()} for {run_id}")
    store.heartbeat([run_id])
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
        store.heartbeat(set(ctx.active) | {run_id})
        err = run_dir / "supervisor_stderr.txt"
        if err.exists() and err.stat().st_size == 0:
            err.unlink()  # keep the run's file list to what matters
    return 0


def start_supervisor(ws_root: Path, run_id: str) -> int:
    """Start a detached supervisor for `run_id` (its own session: a kernel restart doesn't touch it)."""
    log_dir = ws_root / "runs" / run_id / "nbml-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
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
