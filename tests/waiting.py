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


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    """Poll `predicate()` until it returns something truthy; return that, or fail naming `what` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
