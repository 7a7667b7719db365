"""The one retry policy for calls to a compute target.

Only faults of the link to the target are retried (the list is nbml.compute.transient: refused, reset or
aborted connections, timeouts, an SSH link lost, a Docker engine or Dask scheduler that doesn't answer),
with backoff, until one total deadline counted from the first fault of the call. Any other error fails
the run at once with its real cause and the step it happened in: a permission error or a missing file on
the target is not an unreachable host, and retrying it for minutes would only hide it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nbml.compute.transient import describe, is_transient
from nbml.errors import ComputeTargetException, EnvironmentBuildError
from nbml.runs.context import SupervisorContext

T = TypeVar("T")
DEFAULT_UNREACHABLE_TIMEOUT = 600.0
MAX_BACKOFF_S = 15.0


class JobFailed(Exception):
    """The job can't go on; the message is the run's error."""


async def retrying(ctx: SupervisorContext, run_id: str, what: str, fn: Callable[[], Awaitable[T]],
                   timeout: float) -> T:
    """Call `fn`; retry transient target faults with backoff until `timeout` seconds after the first one.

    A non-transient error raises `JobFailed` naming `what` and the error at once (errors that already say
    what to do, `ComputeTargetException` and `EnvironmentBuildError`, pass through unchanged).
    """
    deadline: float | None = None
    attempt = 0
    while True:
        try:
            result = await fn()
            if attempt:
                await ctx.db(ctx.store.add_properties, run_id, {"nbml.target_reachable": "true"})
            return result
        except (JobFailed, ComputeTargetException, EnvironmentBuildError):
            raise
        except Exception as exc:
            if not is_transient(exc):
                ctx.log_exception(f"{what} failed (not a connection fault: not retried)")
                raise JobFailed(f"{what[:1].upper()}{what[1:]} failed: {describe(exc)}") from exc
            attempt += 1
            now = time.monotonic()
            deadline = deadline or now + timeout
            await ctx.db(ctx.store.add_properties, run_id, {
                "nbml.target_retries": str(attempt), "nbml.target_reachable": "false",
                "nbml.target_error": describe(exc)[:500]})
            ctx.log(f"{what}: target unreachable ({describe(exc)}); retry {attempt}")
            if now >= deadline:
                raise JobFailed(f"The compute target was unreachable for {timeout:.0f} s while {what} "
                                f"({attempt} attempts; last error: {describe(exc)}). Check the target "
                                "and submit again.") from exc
            if await ctx.cancelled(run_id):
                raise JobFailed("canceled while the target was unreachable") from exc
            await asyncio.sleep(min(2.0 ** min(attempt, 4), MAX_BACKOFF_S, max(deadline - now, 0.05)))
