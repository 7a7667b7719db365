"""The dask backend: each job is a Dask task that runs the job process in a worker.

By default the cluster is a `distributed.LocalCluster` owned by a detached cluster-host process
(`nbml.compute._dask_host`) that nbml starts on first use; with ``scheduler_address`` it is any existing
Dask cluster (dask-jobqueue, dask-kubernetes, a `dask scheduler` you started), whose lifecycle nbml leaves
alone. Job folders live under ``shared_dir`` (default: the workspace's ``jobs/<target>``), which the
workers must see at the same path: events, logs and outputs are read from there as on the local target.

A task is fire-and-forget: it runs to its end even when the process that submitted it exits, and any
process can poll, read or cancel it from the job folder and the task key stored in the handle.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from nbml.compute import _dask_cluster, _jobwrap, _staging, base
from nbml.compute._dask_task import HEARTBEAT_FILE, LOST_FILE, run_dask_job
from nbml.compute.base import ComputeBackend, EnvSpec, JobHandle, JobSpec, JobState, LogFn, job_environ
from nbml.compute.local import runtime_dir
from nbml.errors import ComputeTargetException

#: A started job whose heartbeat is older than this has lost its worker (and wasn't retried).
STALE_HEARTBEAT_S = 30.0
CONNECT_TIMEOUT = "20s"
#: How long after submission a task the scheduler doesn't know yet still counts as on its way.
UNKNOWN_GRACE_S = 30.0


class DaskBackend(ComputeBackend):
    """Runs jobs as Dask tasks; see the module docstring."""

    kind = "dask"
    local_files = True

    def __init__(self, name: str, config: dict[str, Any], workspace_root: Path) -> None:
        super().__init__(name, config, workspace_root)
        self._client: Any = None
        self._connecting: asyncio.Lock | None = None
        self._slots: asyncio.Lock | None = None
        self._store: Any = None
        self.job_root = Path(config.get("shared_dir") or Path(workspace_root) / "jobs" / name)

    @property
    def owned(self) -> bool:
        return not self.config.get("external")

    # -- cluster -----------------------------------------------------------------------------------
    def address(self) -> str:
        """The scheduler's address, starting nbml's cluster host if it isn't running."""
        if not self.owned:
            return str(self.config["scheduler_address"])
        return str(_dask_cluster.ensure_running(self.workspace_root, self.name, self.config)["address"])

    async def client(self) -> Any:
        if self._client is None:
            if self._connecting is None:
                self._connecting = asyncio.Lock()
            async with self._connecting:  # concurrent jobs of one coordinator share one connection
                if self._client is None:
                    self._client = await self._connect()
        return self._client

    async def _connect(self) -> Any:
        from distributed import Client

        address = await asyncio.to_thread(self.address)
        try:
            return await Client(address, asynchronous=True, timeout=CONNECT_TIMEOUT, name=f"nbml-{self.name}")
        except Exception as exc:  # OSError, TimeoutError, CommClosedError...
            raise ComputeTargetException(
                f"Can't connect to the Dask scheduler of compute target {self.name!r} at {address}: {exc}. "
                + ("Check that the scheduler runs and that this machine can reach it."
                   if not self.owned else "Its cluster host may have died; look at "
                   f"{_dask_cluster.state_dir(self.workspace_root, self.name) / 'host.log'}.")
            ) from None

    # -- protocol ----------------------------------------------------------------------------------
    async def prepare(self, env: EnvSpec, log: LogFn) -> str:
        if env.user_managed or not env.pip:
            # "" means: the interpreter the worker itself runs on.
            return env.interpreter_path or ""
        # A system-managed environment is built like the local target's, in the workspace: on the shared
        # filesystem the workers see (for nbml's own LocalCluster, this very machine).
        from nbml.compute.local import LocalBackend

        local = LocalBackend(self.name, {}, self.workspace_root)
        try:
            return await local.prepare(env, log)
        finally:
            await local.close()

    async def stage(self, job: JobSpec, log: LogFn) -> str:
        job_dir = self.job_root / _safe(job.run_id)
        await asyncio.to_thread(_staging.stage_local, job, job_dir)
        log(f"Staged {len(job.files)} files in {job_dir}")
        return str(job_dir)

    async def start(self, job: JobSpec, python: str, job_dir: str) -> JobHandle:
        from distributed import fire_and_forget

        # As on the local target: the job imports the supervisor's nbml through a folder holding only it.
        environ = job_environ(job, job_dir, runtime_dir(Path(job_dir)))
        if job.node_count > 1:  # a multi-node job takes its workers all at once
            from nbml.compute import _dask_gang

            return await _dask_gang.start(self, job, python, job_dir, environ)
        client = await self.client()
        key = f"nbml-job-{_safe(job.run_id)}-{uuid.uuid4().hex[:8]}"
        if self._slots is None:
            self._slots = asyncio.Lock()
        async with self._slots:
            # Wait for a free slot (nodes x threads): a job queued inside Dask would look Running, and its
            # run-time limit would tick while it waits. The run stays Starting meanwhile.
            await self._wait_for_slot(client, job.run_id, Path(job_dir))
            future = client.submit(run_dask_job, job_dir, python, base.job_argv(job, job_dir), environ, key=key, pure=False)
            fire_and_forget(future)  # the task must not depend on this process staying alive
            deadline = time.monotonic() + 10
            while (await self._task_state(key))[0] is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # counted by the next _wait_for_slot
        return JobHandle(target=self.name, job_dir=job_dir, data={"key": key, "submitted": time.time()})

    def capacity(self) -> int:
        """How many jobs the cluster runs at once: max_nodes x threads_per_node."""
        return max(1, int(self.config.get("max_nodes", 1))) * max(1, int(self.config.get("threads_per_node", 1)))

    async def _wait_for_slot(self, client: Any, run_id: str, job_dir: Path) -> None:
        def _active(dask_scheduler: Any) -> int:
            return sum(1 for k, ts in dask_scheduler.tasks.items() if str(k).startswith("nbml-job-")
                       and ts.state in ("released", "waiting", "queued", "no-worker", "processing"))

        while await client.run_on_scheduler(_active) >= self.capacity():
            if self._cancel_requested(run_id):
                break
            await asyncio.sleep(0.5)
        if self._cancel_requested(run_id):
            # Let it through marked canceled: the task ends at once without running the job.
            (job_dir / _jobwrap.CANCEL_FILE).touch()

    def _cancel_requested(self, run_id: str) -> bool:
        try:
            from nbml.store import Store

            if self._store is None:
                self._store = Store(self.workspace_root)
            return bool(self._store.cancel_requested(run_id))
        except Exception:  # no store (backend used on its own): nothing to check
            return False

    async def read(self, handle: JobHandle, relpath: str, offset: int, limit: int = 1 << 20) -> bytes:
        job_dir = Path(handle.job_dir)  # links planted in the job folder are never followed
        return await asyncio.to_thread(_staging.read_bytes, job_dir / relpath, offset, limit, job_dir)

    async def list_files(self, handle: JobHandle, prefix: str) -> list[tuple[str, int]]:
        return await asyncio.to_thread(_staging.list_tree, Path(handle.job_dir), prefix)

    async def fetch(self, handle: JobHandle, relpath: str, dest: Path) -> None:
        await asyncio.to_thread(_staging.copy_out, Path(handle.job_dir), relpath, Path(dest))

    async def poll(self, handle: JobHandle) -> JobState:
        if "nodes" in handle.data:
            from nbml.compute import _dask_gang

            return await _dask_gang.poll(self, handle)
        folder = Path(handle.job_dir)
        ended = _jobwrap.read_exit(folder)
        if ended is not None:
            if (folder / LOST_FILE).exists():
                return JobState("lost", reason=ended[1])
            return JobState("exited", ended[0], ended[1])
        if (folder / _jobwrap.STARTED_FILE).exists():
            try:
                age = time.time() - (folder / HEARTBEAT_FILE).stat().st_mtime
            except FileNotFoundError:
                age = 0.0
            if age > STALE_HEARTBEAT_S and _jobwrap.read_exit(folder) is None:
                return JobState("lost", reason=f"The Dask worker running this job stopped reporting {age:.0f} s "
                                               "ago (worker or machine lost) and the task was not rerun.")
            return JobState("running")
        # Not started yet: queued on the scheduler, unless the scheduler has forgotten it.
        try:
            state, error = await self._task_state(handle.data["key"])
        except ComputeTargetException as exc:
            return JobState("lost", reason=str(exc))
        ended = _jobwrap.read_exit(folder)
        if ended is not None:
            return JobState("exited", ended[0], ended[1])
        if state is None and time.time() - float(handle.data.get("submitted", 0)) < UNKNOWN_GRACE_S:
            return JobState("running")  # the submission may still be on its way to the scheduler
        if state is None:
            return JobState("lost", reason="The Dask scheduler no longer knows this job's task (the cluster was "
                                           "restarted or deleted before the job started).")
        if state == "erred":
            return JobState("lost", reason=f"The Dask task of this job failed: {error}")
        return JobState("running")

    async def _task_state(self, key: str) -> tuple[str | None, str | None]:
        client = await self.client()

        # A closure, so cloudpickle ships it by value: the scheduler needn't import nbml.
        def _state(dask_scheduler: Any, key: str = key) -> tuple[str | None, str | None]:
            ts = dask_scheduler.tasks.get(key)
            if ts is None:
                return None, None
            return ts.state, getattr(ts, "exception_text", None)

        result = await client.run_on_scheduler(_state)
        return result[0], result[1]

    async def cancel(self, handle: JobHandle, grace_seconds: float = 3.0) -> None:
        if "nodes" in handle.data:
            from nbml.compute import _dask_gang

            return await _dask_gang.cancel(self, handle, grace_seconds)
        folder = Path(handle.job_dir)
        (folder / _jobwrap.CANCEL_FILE).parent.mkdir(parents=True, exist_ok=True)
        (folder / _jobwrap.CANCEL_FILE).touch()
        if not (folder / _jobwrap.STARTED_FILE).exists():
            try:
                from distributed import Future

                client = await self.client()
                await client.cancel([Future(handle.data["key"], client=client)], force=True)
            except Exception:  # the task will see the cancel file when it starts anyway
                pass
            if not (folder / _jobwrap.STARTED_FILE).exists():
                _jobwrap.write_exit(folder, -15, "canceled before it started")
                return
        # The task's wrapper checks the cancel file every 0.2 s: TERM, then KILL after its grace period.
        deadline = time.monotonic() + grace_seconds + 5
        while time.monotonic() < deadline and _jobwrap.read_exit(folder) is None:
            await asyncio.sleep(0.1)

    async def cleanup(self, handle: JobHandle) -> None:
        if "nodes" in handle.data:
            from nbml.compute import _dask_gang

            await _dask_gang.forget(self, handle)
        await asyncio.to_thread(shutil.rmtree, handle.job_dir, True)

    async def status(self) -> dict[str, Any]:
        if self.owned and _dask_cluster.live_state(self.workspace_root, self.name) is None:
            return {"state": "Stopped", "nodes": _counts(0, 0, 0), "scheduler_address": None,
                    "min_nodes": self.config.get("min_nodes"), "max_nodes": self.config.get("max_nodes")}
        try:
            client = await self.client()
            info = await client.scheduler.identity(n_workers=-1)
            processing = await client.scheduler.processing()
        except Exception as exc:
            return {"state": "Failed", "error": str(exc), "nodes": _counts(0, 0, 0)}
        nodes = node_list(info, processing)
        running = sum(1 for n in nodes if n["state"] == "running")
        idle = len(nodes) - running
        preparing = 0
        if self.owned:
            host = _dask_cluster.live_state(self.workspace_root, self.name) or {}
            preparing = max(0, int(host.get("requested", 0)) - len(nodes))
        return {"state": "Succeeded", "nodes": _counts(idle, running, preparing), "node_list": nodes,
                "current_node_count": len(nodes), "target_node_count": len(nodes) + preparing,
                "scheduler_address": info.get("address"), "min_nodes": self.config.get("min_nodes"),
                "max_nodes": self.config.get("max_nodes"), "owned": self.owned}

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def node_list(info: dict[str, Any], processing: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per worker of the scheduler's identity: id, address, state (idle/running), threads, memory."""
    out = []
    for address, w in sorted(info.get("workers", {}).items()):
        busy = len(processing.get(address) or ())
        out.append({"node_id": str(w.get("name", address)), "address": address,
                    "state": "running" if busy else "idle", "running_tasks": busy,
                    "nthreads": w.get("nthreads"), "memory_limit": w.get("memory_limit")})
    return out


def _counts(idle: int, running: int, preparing: int) -> dict[str, int]:
    return {"idle": idle, "running": running, "preparing": preparing, "leaving": 0, "unusable": 0,
            "preempted": 0}


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
