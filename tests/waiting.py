"""Polling helpers shared by the test folders (tests/ is on sys.path through its conftest)."""

from __future__ import annotations

import time
from typing import Any


def wait_status(run: Any, wanted: set[str], timeout: float) -> str:
    """Poll `run.get_status()` until it is one of `wanted`; return it, or fail naming the status it stayed in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run.get_status()
        if status in wanted:
            return str(status)
        time.sleep(0.05)
    raise AssertionError(f"{run.id} stayed {run.get_status()}, wanted {wanted}")
