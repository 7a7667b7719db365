"""The retry policy for calls to a compute target: transient faults are retried with backoff until a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nbml.runs.context import SupervisorContext

T = TypeVar("T")
TRANSIENT = (ConnectionError, OSError, asyncio.TimeoutError)
DEFAULT_UNREACHABLE_TIMEOUT = 600.0


class JobFailed(Exception):
    """The job can't go on; the message is the run's error."""


async def retrying(ctx: SupervisorContext, run_id: str, what: str, fn: Callable[[], Awaitable[T]],
                    timeout: float) -> T:
    """Call `fn`, retrying transient target faults with backoff; fail after `timeout` seconds of them."""
    first_fault: float | None = None
    attempt = 0
    while True:
        try:
            result = await fn()
            if attempt:
                ctx.store.add_properties(run_id, {"nbml.target_reachable": "true"})
            return result
        except TRANSIENT as exc:
            if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
                raise
            attempt += 1
            now = time.monotonic()
            first_fault = first_fault or now
            ctx.store.add_properties(run_id, {"nbml.target_retries": str(attempt), "nbml.target_reachable": "false",
                                              "nbml.target_error": f"{type(exc).__name__}: {exc}"[:500]})
            ctx.log(f"{what}: target unreachable ({type(exc).__name__}: {exc}); retry {attempt}")
            if now - first_fault > timeout:
                raise JobFailed(f"The compute target was unreachable for {now - first_fault:.0f} s while {what} "
                                f"({attempt} retries; last error: {type(exc).__name__}: {exc}). Check the target "
                                "and submit again.") from exc
            if ctx.is_cancelled(run_id):
                raise JobFailed("canceled while the target was unreachable") from exc
            await asyncio.sleep(min(2.0 ** min(attempt, 4), 15.0))
