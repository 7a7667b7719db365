"""Process liveness on this machine, shared by the targets, run recovery and local services.

A pid alone doesn't name a process: after the process ends its number is handed out again. Where it
matters (a supervisor, an interactive run's holder, a local job) the pid is stored with the process's
start time, and a process counts as the same one only if both match.
"""

from __future__ import annotations

import os

#: psutil derives start times from boot time and clock ticks; two reads of one process agree far closer.
START_TIME_TOLERANCE = 0.05


def pid_alive(pid: int | None) -> bool:
    """Whether `pid` runs: absent or a zombie (ended, not yet reaped) counts as not running."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        import psutil  # here, not at the top: jobs import nbml on hosts and in images that have no psutil
    except ImportError:
        return True
    try:
        return bool(psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD))
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def start_time(pid: int | None = None) -> float | None:
    """The start time (epoch seconds) of process `pid` (default: this one), or None if it doesn't run."""
    try:
        import psutil  # here, not at the top: jobs import nbml on hosts and in images that have no psutil
    except ImportError:
        return None
    try:
        return float(psutil.Process(os.getpid() if pid is None else pid).create_time())
    except (psutil.Error, OSError):
        return None


def can_tell() -> bool:
    """Whether this interpreter can check processes by start time (psutil installed)."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


def process_alive(pid: int | None, started: float | None) -> bool:
    """Whether the process that had `pid` and started at `started` still runs (a zombie doesn't)."""
    if not pid or started is None:
        return False
    import psutil

    try:
        proc = psutil.Process(int(pid))
        if abs(proc.create_time() - float(started)) > START_TIME_TOLERANCE:
            return False  # the pid was reused by another process
        return bool(proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD))
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists (owned by someone else) and its start time matched
