"""A warm worker: ``python -m nbml.runs.warm_worker``, a long-lived job that runs child runs one after another.

It is started like any job (in its own job folder, by the target's backend) and reads ``.nbml/warm.json``:
``{"preload": [module, ...], "setup": "module:function" | null, "lease_seconds": 60}``. It imports the preload
modules and calls the setup hook once (an AutoML worker loads the training data there), then waits for task
files in its ``inbox/`` folder, one per child run, written by the supervisor (``nbml.runs.warm``)::

    {"run_id": ..., "job_dir": ..., "argv": [...], "environ": {...}}

Each task runs in a process forked from this one, so it starts with everything imported and loaded, yet a
crash, ``sys.exit``, a cancel or a time limit ends only that process: the fork becomes its own process group
in the child run's own job folder, with stdout and stderr in that folder's ``nbml-logs/driver_log.txt`` and
``Run.get_context()`` pointing at that folder's event log. The worker waits for it, stops it (TERM, then KILL)
when ``.nbml/cancel`` appears in the child's folder, and writes the child's ``.nbml/exit_code`` (and
``.nbml/reason``) exactly as the job wrapper of a cold job does, so the executor finalizes it the same way.

The worker ends when ``.nbml/stop`` appears in its folder, or when it is idle and its supervisor stopped
renewing ``.nbml/lease`` (the supervisor died; the adopting one starts its own workers).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import runpy
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from nbml.compute._jobwrap import CANCEL_FILE, DRIVER_LOG, write_exit

CONFIG_FILE = ".nbml/warm.json"
STOP_FILE = ".nbml/stop"
LEASE_FILE = ".nbml/lease"
PID_FILE = ".nbml/pid"
INBOX = "inbox"
#: The environment variable that names the worker's folder to the code it runs (data held by the worker).
WORKER_DIR_VAR = "NBML_WARM_WORKER_DIR"
GRACE_SECONDS = 3.0


def _die_with_parent() -> None:
    try:  # Linux: the task gets SIGKILL when the worker dies, so no task outlives its worker unseen
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - not Linux
        pass


def _run_argv(argv: list[str]) -> int:
    """Run `argv` (what follows the interpreter) in this process, as ``python ARGV`` would; the exit code."""
    if argv[:1] == ["-m"] and len(argv) >= 2:
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv and not argv[0].startswith("-"):
        script = os.path.abspath(argv[0])
        sys.argv = [argv[0], *argv[1:]]
        sys.path.insert(0, os.path.dirname(script))
        runpy.run_path(script, run_name="__main__")
    else:  # an interpreter option this worker doesn't emulate: run a fresh interpreter instead
        os.execv(sys.executable, [sys.executable, *argv])
    return 0


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF
        print(code, file=sys.stderr)
        return 1
    traceback.print_exc()
    return 1


def _child(task: dict[str, Any]) -> None:
    """In the forked process: become the child run, run it, never return."""
    code = 1
    try:
        os.setsid()
        _die_with_parent()
        job_dir = task["job_dir"]
        os.chdir(job_dir)
        for sub in ("nbml-logs", "logs", "outputs", ".nbml"):
            os.makedirs(sub, exist_ok=True)
        fd = os.open(DRIVER_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.environ.update(task.get("environ") or {})
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            code = _run_argv(list(task["argv"]))
        except BaseException as exc:  # the script's own exit or error is its exit code
            code = _exit_code(exc)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def run_task(task: dict[str, Any]) -> int:
    """Fork, run the task in the child, wait for it (honouring a cancel) and record how it ended."""
    job_dir = Path(task["job_dir"])
    (job_dir / ".nbml").mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns (its coverage is the task's)
        _child(task)
    (job_dir / PID_FILE).write_text(str(pid))
    reason: str | None = None
    cancel = job_dir / CANCEL_FILE
    pause, kill_at = 0.001, 0.0
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            break
        if reason is None and cancel.exists():
            reason = "canceled"
            _kill_group(pid, signal.SIGTERM)
            kill_at = time.monotonic() + GRACE_SECONDS
        elif reason is not None and time.monotonic() > kill_at:
            _kill_group(pid)
        time.sleep(pause)
        pause = min(pause * 1.5, 0.02)
    _kill_group(pid)  # anything the task left running in its group ends with it
    code = os.waitstatus_to_exitcode(status)
    write_exit(job_dir, code, reason)
    return code


def _claim(inbox: Path) -> tuple[Path, dict[str, Any]] | None:
    try:
        names = sorted(n for n in os.listdir(inbox) if n.endswith(".json"))
    except FileNotFoundError:
        return None
    for name in names:
        path = inbox / name
        try:
            task = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # not written completely yet (the supervisor renames it in place when it is)
        return path, task
    return None


def serve(folder: Path) -> int:
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    os.environ[WORKER_DIR_VAR] = str(folder)
    print(f"warm worker {os.getpid()} starting in {folder}", flush=True)
    for name in cfg.get("preload") or []:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a module the tasks may not need: they import it themselves if they do
            print(f"preloading {name} failed: {type(exc).__name__}: {exc}", flush=True)
    if cfg.get("setup"):
        module, _, func = str(cfg["setup"]).partition(":")
        try:
            getattr(importlib.import_module(module), func)(folder)
        except Exception:
            print(f"the worker's setup {cfg['setup']} failed (the tasks do it themselves):", flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    lease_s = float(cfg.get("lease_seconds") or 60)
    inbox = folder / INBOX
    inbox.mkdir(exist_ok=True)
    print(f"warm worker {os.getpid()} ready", flush=True)
    pause, done, idle_since = 0.001, 0, time.monotonic()
    while True:
        if (folder / STOP_FILE).exists():
            print(f"warm worker {os.getpid()} stopped after {done} tasks", flush=True)
            return 0
        claimed = _claim(inbox)
        if claimed is None:
            try:
                stale = time.time() - (folder / LEASE_FILE).stat().st_mtime > lease_s
            except FileNotFoundError:
                stale = True
            if stale:
                print(f"warm worker {os.getpid()}: its supervisor stopped renewing the lease; exiting after "
                      f"{done} tasks", flush=True)
                return 0
            time.sleep(pause)
            # ready within ~10 ms while children keep coming, then checking less often when idle
            pause = min(pause * 1.3, 0.01 if time.monotonic() - idle_since < 5 else 0.1)
            continue
        path, task = claimed
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # taken back by the supervisor (a cancel before it started)
        try:
            code = run_task(task)
        except OSError as exc:  # its folder is gone (canceled and cleaned up): nothing to run or record
            print(f"{task.get('run_id')}: not run: {exc}", flush=True)
            continue
        done += 1
        print(f"{task.get('run_id')}: exit code {code}", flush=True)
        pause, idle_since = 0.001, time.monotonic()


def main() -> int:
    return serve(Path(os.getcwd()))


if __name__ == "__main__":
    sys.exit(main())
