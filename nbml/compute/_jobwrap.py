"""The wrapper that runs one job process where the job executes (a container, a Dask worker).

It starts the job's interpreter in the job folder with stdout and stderr in ``nbml-logs/driver_log.txt``,
forwards TERM/INT to it, stops it when a ``.nbml/cancel`` file appears, and writes ``.nbml/exit_code``
(and ``.nbml/reason`` when it wasn't the job's own exit) once it ended. Standard library only: it runs
inside containers that have nothing but a Python interpreter and the bind-mounted nbml package.

Run as ``python -m nbml.compute._jobwrap JOB_DIR`` with ``JOB_DIR/.nbml/job.json`` holding
``{"python": ..., "argv": [...], "environ": {...}}``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DRIVER_LOG = "nbml-logs/driver_log.txt"
EXIT_CODE_FILE = ".nbml/exit_code"
REASON_FILE = ".nbml/reason"
CANCEL_FILE = ".nbml/cancel"
STARTED_FILE = ".nbml/started"
JOB_FILE = ".nbml/job.json"


def write_exit(job_dir: Path, code: int, reason: str | None = None) -> None:
    """Record how the job ended; the exit code last, since its presence means "ended"."""
    (job_dir / ".nbml").mkdir(parents=True, exist_ok=True)
    if reason:
        (job_dir / REASON_FILE).write_text(reason)
    tmp = job_dir / (EXIT_CODE_FILE + ".tmp")
    tmp.write_text(str(code))
    os.replace(tmp, job_dir / EXIT_CODE_FILE)


def read_exit(job_dir: Path) -> tuple[int, str | None] | None:
    """(exit code, reason) once the job ended, else None."""
    try:
        code = int((job_dir / EXIT_CODE_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        reason: str | None = (job_dir / REASON_FILE).read_text().strip() or None
    except FileNotFoundError:
        reason = None
    return code, reason


def run_job(job_dir: Path, python: str, argv: list[str], environ: dict[str, str] | None = None,
            grace_seconds: float = 3.0, preexec: Callable[[], None] | None = None) -> int:
    """Run the job to its end and return its exit code (negative for a signal, as subprocess does)."""
    job_dir = Path(job_dir)
    for sub in ("nbml-logs", "logs", "outputs", ".nbml"):
        (job_dir / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(environ or {})
    with open(job_dir / DRIVER_LOG, "ab", buffering=0) as log:
        proc = subprocess.Popen([python, *argv], cwd=job_dir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                preexec_fn=preexec)
    (job_dir / ".nbml" / "pid").write_text(str(proc.pid))
    stop_reason: list[str] = []

    def _stop(reason: str) -> None:
        if stop_reason:
            return
        stop_reason.append(reason)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _on_signal(signum: int, _frame: Any) -> None:
        _stop(f"stopped by signal {signal.Signals(signum).name}")

    if _is_main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    while True:
        try:
            code = proc.wait(0.2)
            break
        except subprocess.TimeoutExpired:
            if (job_dir / CANCEL_FILE).exists():
                _stop("canceled")
    write_exit(job_dir, code, stop_reason[0] if stop_reason else None)
    return code


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(args: list[str]) -> int:
    job_dir = Path(args[0] if args else ".").resolve()
    spec = json.loads((job_dir / JOB_FILE).read_text())
    code = run_job(job_dir, spec["python"], spec["argv"], spec.get("environ") or {})
    return code if 0 <= code < 256 else 128 + abs(code)


if __name__ == "__main__":  # pragma: no cover - the container entry point
    sys.exit(main(sys.argv[1:]))
