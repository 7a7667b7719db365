"""Process liveness on this machine, shared by the targets, the reaper and local services."""

from __future__ import annotations

import os


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
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True
