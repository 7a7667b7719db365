"""A parent run with a warm pool, driving children through the child loop as a coordinator does: shared by the
warm-worker tests of the local target (tests/automl) and of Dask (tests/targets)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from nbml import Workspace
from nbml.compute.base import EnvSpec, JobSpec
from nbml.runs.children import ChildLoop, Finished
from nbml.runs.context import SupervisorContext
from nbml.runs.warm import WarmBackend
from nbml.snapshot import load_manifest


class WarmParent:
    """Parent run `parent` on `target` with a warm pool of 2; children run `child.py MODE N` of `snapshot`.

    Every finished child the loop reports is kept in `ended`, so a child that ends while the test waits for
    another is not missed when the test waits for it next.
    """

    def __init__(self, ws: Workspace, target: str, parent: str, snapshot: str, go: Path, *, new: bool = True) -> None:
        self.ws, self.target, self.parent, self.go = ws, target, parent, go
        self.files = load_manifest(ws.path, snapshot)
        if new:
            ws.store.insert_run(parent, "warm", "hyperdrive", target, {}, status="Running")
        self.ctx = SupervisorContext(ws.store, ws.path, parent)
        self.backend = WarmBackend(self.ctx, self.ctx.backend_for(target), 2)
        self.loop: ChildLoop[int] = ChildLoop(self.ctx, self.backend, 2)
        self.ended: dict[str, Finished[int]] = {}

    def job(self, n: int, mode: str) -> JobSpec:
        return JobSpec(run_id=f"{self.parent}_{n}", argv=["child.py", mode, str(n)], env=EnvSpec("t", "t-user", True),
                       files=self.files, blob_dir=self.ws.path / "snapshots" / "blobs",
                       environ={"GO_FILE": str(self.go)})

    def launch(self, n: int, mode: str = "ok", *, timeout: float | None = None, record: bool = True) -> str:
        run_id = f"{self.parent}_{n}"
        if record:
            self.ws.store.insert_run(run_id, "warm", "script", self.target, {}, parent_id=self.parent, iteration=n)
        self.loop.launch(run_id, self.job(n, mode), n, timeout=timeout, timeout_reason=f"child {n} ran out of time")
        return run_id

    def job_dir(self, run_id: str) -> Path:
        jobs = self.ws.path / "jobs"
        return jobs / run_id if self.target == "local" else jobs / self.target / run_id

    async def until_running(self, run_id: str, timeout: float = 90) -> int:
        """The pid of the warm worker that runs `run_id`, once its child process has started."""
        path = self.job_dir(run_id) / "outputs" / "worker.txt"
        deadline = time.monotonic() + timeout
        while not (path.exists() and path.read_text()):
            assert time.monotonic() < deadline, f"{run_id} did not start"
            await asyncio.sleep(0.05)
        return int(path.read_text())

    async def until_ended(self, run_id: str, timeout: float = 120) -> dict[str, Finished[int]]:
        """Drive the child loop (limits are enforced on each turn) until `run_id` has ended; every end so far."""
        deadline = time.monotonic() + timeout
        while run_id not in self.ended:
            assert time.monotonic() < deadline, f"{run_id} did not end (it is {self.rec(run_id)['status']})"
            self.ended.update({f.run_id: f for f in await self.loop.wait(0.5)})
        return self.ended

    async def finish(self) -> dict[str, Finished[int]]:
        """Drive the loop until every launched child has ended; every end so far."""
        self.ended.update({f.run_id: f for f in await self.loop.drain()})
        return self.ended

    async def close(self) -> None:
        await self.loop.close()
        await self.backend.close()
        self.ctx.close()

    def worker_pid(self, run_id: str) -> int:
        return int((self.ws.path / "runs" / run_id / "outputs" / "worker.txt").read_text())

    def log(self, run_id: str) -> str:
        return (self.ws.path / "runs" / run_id / "nbml-logs" / "driver_log.txt").read_text()

    def rec(self, run_id: str) -> dict[str, Any]:
        rec = self.ws.store.get_run(run_id)
        assert rec is not None
        return rec
