"""The Dask task that runs one nbml job in a worker (imported by the workers; standard library + distributed).

The job folder lives on a filesystem the worker and the supervisor share, so the job's events, logs and
outputs reach the supervisor as on the local target. The task marks the folder when it starts and keeps a
heartbeat there. If its worker dies mid-run, the scheduler hands the task to another worker; that second
attempt finds the start mark and, instead of running the job again (which would log twice), records that
the run failed because its worker was lost. A retry that finds the folder gone (its supervisor already
gave the job up as lost and released the folder) does nothing at all: it must not recreate the folder.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nbml.compute._jobwrap import CANCEL_FILE, STARTED_FILE, read_exit, run_job, write_exit

HEARTBEAT_FILE = ".nbml/heartbeat"
HEARTBEAT_S = 2.0
#: Marks an exit code written by the task, not by the job: the job was lost, not failed by itself.
LOST_FILE = ".nbml/lost"


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # not in a worker (called directly in tests)
        return f"{socket.gethostname()}:{os.getpid()}"


def _die_with_worker() -> None:
    # Linux: the job gets SIGKILL when the worker thread that started it dies (a worker killed or lost).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - not Linux
        pass


def run_dask_job(job_dir: str, python: str, argv: list[str], environ: dict[str, Any]) -> int:
    """Run the job in `job_dir` on this worker and return its exit code."""
    folder = Path(job_dir)
    if not folder.is_dir():  # a retry after the supervisor released the job's folder: nothing left to run
        return 1
    ended = read_exit(folder)
    if ended is not None:  # a retry after the job already finished (result lost with its worker)
        return ended[0]
    started = folder / STARTED_FILE
    if started.exists():
        try:
            first = json.loads(started.read_text()).get("worker", "?")
        except ValueError:
            first = "?"
        (folder / LOST_FILE).touch()
        write_exit(folder, 1, f"The Dask worker {first} running this job was lost mid-run (killed, out of "
                              "memory or disconnected); nbml does not rerun a job that already started. "
                              "Submit the run again.")
        return 1
    if (folder / CANCEL_FILE).exists():
        write_exit(folder, -int(signal.SIGTERM), "canceled before it started")
        return -int(signal.SIGTERM)
    started.parent.mkdir(parents=True, exist_ok=True)
    started.write_text(json.dumps({"worker": _worker_address(), "pid": os.getpid(), "t": time.time()}))
    done = threading.Event()

    def _beat() -> None:
        while not done.wait(HEARTBEAT_S):
            try:
                (folder / HEARTBEAT_FILE).write_text(str(time.time()))
            except OSError:
                pass

    (folder / HEARTBEAT_FILE).write_text(str(time.time()))
    beat = threading.Thread(target=_beat, name="nbml-heartbeat", daemon=True)
    beat.start()
    try:
        return run_job(folder, python or sys.executable, argv, environ, preexec=_die_with_worker)
    except Exception as exc:
        (folder / LOST_FILE).touch()
        write_exit(folder, 1, f"The job could not start on Dask worker {_worker_address()}: {exc}")
        return 1
    finally:
        done.set()
