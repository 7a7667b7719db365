"""The one loop a parent run (AutoML, HyperDrive) drives its child runs with.

It launches children through the job executor, at most `limit` running on the target at once (a child
whose job has exited frees its slot while the supervisor copies its outputs back and records its end, so
the next child starts meanwhile); stops a child that outruns its
time limit (a Failed child whose error names the limit the user set, not one they never heard of);
cancels one child or all; and hands back children as they finish. A parent driven by a new supervisor
(the old one died) starts from `existing_children`: the children that finished are results, the ones
still running are adopted (`execute` reattaches to a job whose handle is stored), and the ones that
never started are launched again under the same run id, so no iteration is lost or run twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

from nbml.compute.base import ComputeBackend, JobSpec
from nbml.runs.context import SupervisorContext
from nbml.runs.executor import execute
from nbml.runs.status import FAILED, TERMINAL

P = TypeVar("P")


@dataclasses.dataclass
class Finished(Generic[P]):
    """A child that reached a terminal state; `status` is what the parent should count it as."""

    run_id: str
    status: str
    payload: P


@dataclasses.dataclass
class Existing:
    """A parent's children found in the store when its driver starts (each list in iteration order)."""

    finished: list[dict[str, Any]]
    running: list[dict[str, Any]]  # a job was started (a handle is stored): adopt it
    unstarted: list[dict[str, Any]]  # recorded but never started: launch it again

    @property
    def all(self) -> list[dict[str, Any]]:
        return sorted([*self.finished, *self.running, *self.unstarted], key=_order)

    @property
    def next_iteration(self) -> int:
        """The first iteration number no child has, so numbering goes on where it stopped."""
        numbers = [int(r["iteration"]) for r in self.all if r.get("iteration") is not None]
        return max(numbers) + 1 if numbers else 0


def _order(rec: dict[str, Any]) -> tuple[float, float]:
    it = rec.get("iteration")
    return (float(it) if it is not None else float("inf"), float(rec["created_at"]))


def existing_children(ctx: SupervisorContext, parent_id: str) -> Existing:
    found = Existing([], [], [])
    for rec in sorted(ctx.store.children(parent_id), key=_order):
        if rec["status"] in TERMINAL:
            found.finished.append(rec)
        elif rec.get("handle_json") and json.loads(rec["handle_json"]):
            found.running.append(rec)
        else:
            found.unstarted.append(rec)
    if found.running or found.unstarted:
        ctx.log(f"resuming {parent_id}: {len(found.finished)} children finished, {len(found.running)} to adopt, "
                f"{len(found.unstarted)} to start again")
    return found


def child_config(rec: dict[str, Any]) -> dict[str, Any]:
    return json.loads(rec["config_json"])  # type: ignore[no-any-return]


class ChildLoop(Generic[P]):
    """Runs a parent's children: launch (or adopt), time limits, cancel, and results as they come.

    Parameters
    ----------
    ctx : SupervisorContext
        The parent's supervisor.
    backend : ComputeBackend
        The backend every child runs on (shared: one connection to a remote target).
    limit : int
        Children running at once.
    """

    def __init__(self, ctx: SupervisorContext, backend: ComputeBackend, limit: int) -> None:
        self.ctx = ctx
        self.backend = backend
        self.limit = max(1, int(limit))
        self._tasks: dict[asyncio.Task[str], tuple[str, P]] = {}
        self._deadlines: dict[str, tuple[float, str]] = {}
        self._timed_out: set[str] = set()
        self._cancelled: set[str] = set()
        self._exited: set[str] = set()  # children whose job has ended (finalizing): they hold no slot
        self._freed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def free(self) -> int:
        """How many more children may start now (those finalizing don't count: their job has ended)."""
        return max(0, self.limit - len(self._tasks) + len(self._exited))

    @property
    def running(self) -> list[tuple[str, P]]:
        """The children whose job still runs (not those finalizing: a cancel or a policy can't stop them)."""
        return [(run_id, payload) for run_id, payload in self._tasks.values() if run_id not in self._exited]

    @property
    def finalizing(self) -> list[tuple[str, P]]:
        """The children whose job has ended, while the supervisor copies their outputs back."""
        return [(run_id, payload) for run_id, payload in self._tasks.values() if run_id in self._exited]

    def launch(self, run_id: str, job: JobSpec, payload: P, *, timeout: float | None = None,
               timeout_reason: str = "", started_at: float | None = None) -> None:
        """Run `job` as child `run_id` (or adopt it: `execute` reattaches when its handle is stored).

        With `timeout` (seconds from `started_at`, default now) the child is stopped when it runs longer and
        ends Failed with the error ``timeout_reason``.
        """
        task = asyncio.create_task(execute(self.ctx, run_id, job, self.backend,
                                           on_exit=lambda: self._job_exited(run_id)))
        self._tasks[task] = (run_id, payload)
        if timeout is not None:
            self._deadlines[run_id] = ((started_at or time.time()) + timeout, timeout_reason)

    def _job_exited(self, run_id: str) -> None:
        """The child's job ended on the target: its slot is free, its time limit no longer applies."""
        self._exited.add(run_id)
        self._deadlines.pop(run_id, None)
        self._freed.set()

    def cancel(self, run_id: str) -> None:
        """Stop one child (through the store, which its executor polls); it ends Canceled."""
        if run_id not in self._cancelled:
            self._cancelled.add(run_id)
            self.ctx.store.request_cancel(run_id)

    def cancel_all(self, *, expire_before: float | None = None, spare: Callable[[P], bool] | None = None) -> None:
        """Stop every running child but those `spare` keeps (by payload). Those whose time limit falls before
        `expire_before` (the parent ran out of time) end Failed with their limit's error, as if it had come,
        not Canceled."""
        kept = {run_id for run_id, payload in self._tasks.values() if spare is not None and spare(payload)}
        if expire_before is not None:
            self._enforce_limits(expire_before, keep=kept)
        for run_id, _ in self.running:
            if run_id not in kept:
                self.cancel(run_id)

    def _enforce_limits(self, now: float | None = None, keep: Collection[str] = ()) -> None:
        now = time.time() if now is None else now
        for run_id, (deadline, reason) in list(self._deadlines.items()):
            if now >= deadline and run_id not in self._timed_out and run_id not in keep:
                self._timed_out.add(run_id)
                self.ctx.log(f"{run_id}: {reason}")
                # both before the loop runs again, so the executor can't end the child Canceled in between
                self.cancel(run_id)  # the executor stops the job and copies back what it made
                self.ctx.store.set_status(run_id, FAILED, error=reason)

    async def wait(self, timeout: float = 0.5) -> list[Finished[P]]:
        """The children that finished within `timeout` seconds (none when nothing runs). It also returns,
        maybe with none, as soon as a child's job ends and frees a slot (`free`), so the caller can start the
        next child while that one is finalized."""
        self._enforce_limits()
        if not self._tasks:
            return []
        freed: asyncio.Future[Any] = asyncio.ensure_future(self._freed.wait())  # done at once if already set
        waiting: list[asyncio.Future[Any]] = [*self._tasks, freed]
        try:
            finished, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            freed.cancel()
        self._freed.clear()
        done = {task for task in self._tasks if task in finished}
        out = []
        for task in done:
            run_id, payload = self._tasks.pop(task)
            self._deadlines.pop(run_id, None)
            self._exited.discard(run_id)
            try:
                status = task.result()
            except Exception as exc:  # execute never raises for a job's failure: this is a bug, logged
                self.ctx.log(f"{run_id}: the executor raised {type(exc).__name__}: {exc}")
                status = FAILED
            if run_id in self._timed_out:
                status = FAILED  # stopped by its limit: the executor saw a cancel, the run is Failed
            out.append(Finished(run_id, status, payload))
        return out

    async def drain(self) -> list[Finished[P]]:
        """Wait for every running child."""
        out: list[Finished[P]] = []
        while self._tasks:
            out += await self.wait(0.5)
        return out

    async def close(self) -> None:
        """Stop whatever still runs and wait until each child has ended (statuses set, jobs cleaned up)."""
        self.cancel_all()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._exited.clear()
