"""Warm workers: child runs (AutoML iterations, HyperDrive trials) run in long-lived worker processes.

`WarmBackend` wraps a target's backend and is what a parent's `ChildLoop` hands to the executor, so every
child stays a run of its own, driven by `execute` exactly as before: its own job folder (staged by the
target's backend), status, event log (ingested by offset, so adoption and recovery are unchanged), logs,
outputs, time limit and cancel. Only *starting* differs: instead of a new process, the child becomes a task
file in the inbox of one of the pool's workers (`nbml.runs.warm_worker`), which forks from its warm state
(imports done, training data loaded once) into the child's folder. The worker writes the child's exit code
where a cold job's wrapper would, so polling, finalizing and copy-back are the same.

- A worker is itself a job on the backend (its folder ``<parent>_warm<k>``, started by `backend.start`), so
  the target supervises it like any job; its handle goes into the child's handle, so a supervisor that
  adopts the child (another process) can tell whether the worker still runs.
- A child whose worker dies (killed, out of memory) ends Failed as lost, naming the worker; the pool starts a
  new worker for the next child and the other workers go on. A cancel or a time limit stops only the child's
  forked process (the worker's cancel file), never the worker.
- The pool renews each worker's lease while it is in use; a worker whose supervisor died ends once idle, and
  the adopting supervisor stops the old workers it finds recorded in the parent's properties.
- Targets whose job folders aren't on this machine's filesystem (ssh, docker) fall back to cold children;
  `warm_backend` says so in the supervisor's log.
- Each worker that can reach this process connects back over a Unix socket (in a folder only this user can
  open, with a token from its config): tasks, cancels and stops go to it as JSON lines and its children's ends
  come back the same way, so a child is started and seen to end without any polling interval. The files stay
  the record (and the path for a worker that couldn't connect, or one an adopting supervisor inherits).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import itertools
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from nbml.compute import _jobwrap
from nbml.compute.base import (
    ComputeBackend,
    EnvSpec,
    JobHandle,
    JobSpec,
    JobState,
    LogFn,
    job_argv,
    job_environ,
)
from nbml.runs import warm_worker as ww
from nbml.runs.context import SupervisorContext

#: Backends whose job folders are paths on this machine (for Dask: the shared folder the workers see).
WARM_KINDS = ("local", "dask")
#: The parent run's property that lists its workers' handles (a later supervisor stops them).
WORKERS_PROPERTY = "nbml.warm_workers"
LEASE_SECONDS = 60.0
RENEW_SECONDS = 5.0
#: What every worker imports before its first child: what ``Run.get_context()`` needs.
BASE_PRELOAD = ["nbml.runs.run", "nbml.runs.script_run"]
#: How long `poll` waits for a running child's exit before it answers "running" (the executor then sleeps).
POLL_WAIT = 0.25


def enabled(config: dict[str, Any] | None = None) -> bool:
    """Warm workers unless the run's config or NBML_WARM_WORKERS=0 turns them off."""
    if os.environ.get("NBML_WARM_WORKERS", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return bool((config or {}).get("warm_workers", True))


def warm_backend(ctx: SupervisorContext, inner: ComputeBackend, size: int, *, shared: set[str] | None = None,
                 preload: list[str] | None = None, setup: str | None = None,
                 setup_files: dict[str, bytes] | None = None, config: dict[str, Any] | None = None) -> ComputeBackend:
    """`inner` wrapped in a pool of `size` warm workers, or `inner` itself (cold children) where that can't be."""
    if not enabled(config):
        ctx.log(f"{ctx.run_id}: warm workers are turned off; every child starts a new process")
        return inner
    if inner.kind not in WARM_KINDS:
        ctx.log(f"{ctx.run_id}: the {inner.kind} target {inner.name!r} has no warm workers yet; every child "
                "starts a new process (cold)")
        return inner
    return WarmBackend(ctx, inner, size, shared=shared, preload=preload, setup=setup, setup_files=setup_files)


@dataclasses.dataclass
class _Worker:
    id: str
    key: str
    handle: JobHandle
    busy: str | None = None  # the job folder of the child it runs
    checked: float = 0.0
    alive: bool = True
    renewed: float = 0.0
    retiring: bool = False


class WarmBackend(ComputeBackend):
    """`inner` with children started in warm workers; see the module docstring."""

    def __init__(self, ctx: SupervisorContext, inner: ComputeBackend, size: int, *, shared: set[str] | None = None,
                 preload: list[str] | None = None, setup: str | None = None,
                 setup_files: dict[str, bytes] | None = None) -> None:
        super().__init__(inner.name, inner.config, inner.workspace_root)
        self.kind = inner.kind  # type: ignore[misc]
        self.local_files = inner.local_files  # type: ignore[misc]
        self.ctx, self.inner = ctx, inner
        self.size = max(1, int(size))
        capacity = getattr(inner, "capacity", None)
        if callable(capacity):  # a worker holds a slot of a cluster for good: never more workers than slots
            self.size = max(1, min(self.size, int(capacity())))
        self.shared = set(shared or ())
        self.preload = [*BASE_PRELOAD, *(preload or ())]
        self.setup = setup
        self.setup_files = dict(setup_files or {})
        self.workers: list[_Worker] = []
        self._pythons: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._seq = itertools.count()
        self._numbers = itertools.count(self._first_number())
        self._old = self._recorded_workers()
        # the link (see the module docstring): workers' connections by worker id, children's ends by job folder
        self._server: asyncio.AbstractServer | None = None
        self._sockdir: str | None = None
        self._token = secrets.token_hex(16)
        self._links: dict[str, asyncio.StreamWriter] = {}
        self._ends: dict[str, tuple[int, str | None]] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self._removing: set[str] = set()  # children's folders handed to their worker to remove

    # -- the link --------------------------------------------------------------------------------------
    async def _listen(self) -> str | None:
        """The socket path workers connect to (started on first use), or None where there can't be one."""
        if self._server is None:
            try:
                self._sockdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="nbml-warm-")  # mode 0700
                self._server = await asyncio.start_unix_server(self._serve, path=os.path.join(self._sockdir, "s"))
            except (OSError, NotImplementedError) as exc:
                self.ctx.log(f"{self.ctx.run_id}: warm workers get no link ({exc}); they read task files")
                return None
        assert self._sockdir is not None
        return os.path.join(self._sockdir, "s")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        wid = None
        try:
            hello = json.loads(await asyncio.wait_for(reader.readline(), 30))
            if not hmac.compare_digest(str(hello.get("token")), self._token):
                return
            wid = str(hello.get("hello"))
            self._links[wid] = writer
            while line := await reader.readline():
                msg = json.loads(line)
                if "exit" in msg:
                    job_dir = str(msg["exit"])
                    self._ends[job_dir] = (int(msg["code"]), msg.get("reason"))
                    for w in self.workers:
                        if w.busy == job_dir:
                            w.busy = None
                    if job_dir in self._waiters:
                        self._waiters[job_dir].set()
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            if wid is not None and self._links.get(wid) is writer:
                del self._links[wid]
            writer.close()

    async def _send(self, w: _Worker, msg: dict[str, Any]) -> bool:
        """Send `msg` over `w`'s link; False when it has none (the caller uses the files)."""
        writer = self._links.get(w.id)
        if writer is None or writer.is_closing():
            return False
        try:
            writer.write(json.dumps(msg).encode() + b"\n")
            await writer.drain()
        except (OSError, ConnectionError):
            return False
        return True

    def _ended(self, job_dir: str) -> tuple[int, str | None] | None:
        return self._ends.get(job_dir)

    # -- the pool -----------------------------------------------------------------------------------
    def _recorded(self) -> list[dict[str, Any]]:
        props = self.ctx.store.get_properties(self.ctx.run_id)
        try:
            return list(json.loads(props.get(WORKERS_PROPERTY) or "[]"))
        except ValueError:
            return []

    def _first_number(self) -> int:
        numbers = [int(w["id"].rsplit("warm", 1)[1]) for w in self._recorded() if "warm" in w.get("id", "")]
        return max(numbers) + 1 if numbers else 0

    def _recorded_workers(self) -> list[_Worker]:
        """Workers an earlier supervisor of this parent started: asked to stop, cleaned up on close."""
        old = [_Worker(w["id"], "", JobHandle.from_dict(w["handle"])) for w in self._recorded()]
        for w in old:
            _touch(Path(w.handle.job_dir) / ww.STOP_FILE)  # it ends after the child it may still run
        return old

    def _record(self) -> None:
        entries = [{"id": w.id, "handle": w.handle.to_dict()} for w in [*self._old, *self.workers]]
        self.ctx.store.add_properties(self.ctx.run_id, {WORKERS_PROPERTY: json.dumps(entries)})

    def _key(self, job: JobSpec, python: str) -> str:
        return json.dumps([python, job.env.hash, sorted(job.environ.items())])

    async def _alive(self, w: _Worker, fresh: bool = False) -> bool:
        now = time.monotonic()
        if w.alive and (fresh or now - w.checked > 0.25):
            w.checked = now
            try:
                state = await self.inner.poll(w.handle)
            except Exception as exc:
                self.ctx.log(f"warm worker {w.id}: polling it failed: {exc}")
                return True  # a fault of the link, not the worker: the executor's retries decide
            w.alive = state.state == "running"
            if not w.alive and not w.retiring:
                self.ctx.log(f"warm worker {w.id} ended ({state.state}, exit code {state.exit_code}"
                             f"{', ' + state.reason if state.reason else ''}); a new one takes its place")
        if w.alive and now - w.renewed > RENEW_SECONDS:
            w.renewed = now
            await asyncio.to_thread(_touch, Path(w.handle.job_dir) / ww.LEASE_FILE)
        return w.alive

    async def _renew_idle(self) -> None:
        """Renew the lease of workers that wait for children (a long child elsewhere must not retire them)."""
        now = time.monotonic()
        due = [w for w in self.workers if w.alive and now - w.renewed > RENEW_SECONDS]
        for w in due:
            w.renewed = now
        if due:
            await asyncio.to_thread(_touch_all, [Path(w.handle.job_dir) / ww.LEASE_FILE for w in due])

    async def _acquire(self, job: JobSpec, python: str) -> _Worker:
        key = self._key(job, python)
        while True:
            for w in list(self.workers):
                if w.busy and w.id not in self._links and await asyncio.to_thread(_child_done, w.busy):
                    w.busy = None  # its child ended (and may be cleaned up already); a linked worker says so
                if not await self._alive(w):
                    self.workers.remove(w)
                    await self._dispose(w)
            idle = [w for w in self.workers if w.busy is None]
            mine = [w for w in idle if w.key == key]
            if mine:
                return mine[0]
            if len(self.workers) < self.size:
                return await self._start_worker(job, python, key)
            if idle:  # a worker for other children (another environment): replace it
                self.workers.remove(idle[0])
                await self._retire(idle[0])
                return await self._start_worker(job, python, key)
            await asyncio.sleep(0.01)  # every worker busy: one is finishing (the loop limits children)

    async def _start_worker(self, job: JobSpec, python: str, key: str) -> _Worker:
        wid = f"{self.ctx.run_id}_warm{next(self._numbers)}"
        cfg = {"preload": self.preload, "setup": self.setup, "lease_seconds": LEASE_SECONDS, "id": wid,
               "socket": await self._listen(), "token": self._token}
        spec = JobSpec(run_id=wid, argv=["-m", "nbml.runs.warm_worker"], env=job.env,
                       files={k: v for k, v in job.files.items() if k in self.shared}, blob_dir=job.blob_dir,
                       environ={**job.environ, "PYTHONUNBUFFERED": "1"},
                       extra_files={ww.CONFIG_FILE: json.dumps(cfg).encode(), ww.LEASE_FILE: b"", **self.setup_files,
                                    **{k: v for k, v in job.extra_files.items() if k in self.shared}})
        log = self.ctx.log
        job_dir = await self.inner.stage(spec, log)
        handle = await self.inner.start(spec, python, job_dir)
        w = _Worker(wid, key, handle, renewed=time.monotonic())
        self.workers.append(w)
        await self.ctx.db(self._record)
        self.ctx.log(f"warm worker {wid} started in {job_dir} for {job.run_id}")
        return w

    async def _retire(self, w: _Worker, wait: float = 10.0) -> None:
        """Ask a worker to stop after its current child, wait for it, then release its folder."""
        w.retiring = True
        await self._send(w, {"stop": True})
        await asyncio.to_thread(_touch, Path(w.handle.job_dir) / ww.STOP_FILE)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and await self._alive(w, fresh=True):
            await asyncio.sleep(0.05)
        if w.alive:
            await self.inner.cancel(w.handle)
        await self._dispose(w)

    async def _dispose(self, w: _Worker) -> None:
        try:
            await self.inner.cleanup(w.handle)
        except Exception:
            self.ctx.log_exception(f"cleanup of warm worker {w.id} failed")

    def _worker_of(self, handle: JobHandle) -> _Worker:
        info = handle.data["warm"]
        for w in [*self.workers, *self._old]:
            if w.id == info["worker_id"]:
                return w
        w = _Worker(info["worker_id"], "", JobHandle.from_dict(info["worker"]))
        self._old.append(w)  # a worker of an earlier supervisor (an adopted child)
        return w

    # -- the backend protocol -------------------------------------------------------------------------
    async def prepare(self, env: EnvSpec, log: LogFn) -> str:
        if env.hash not in self._pythons:
            self._pythons[env.hash] = await self.inner.prepare(env, log)
        return self._pythons[env.hash]

    async def stage(self, job: JobSpec, log: LogFn) -> str:
        own = dataclasses.replace(job, files={k: v for k, v in job.files.items() if k not in self.shared},
                                  extra_files={k: v for k, v in job.extra_files.items() if k not in self.shared})
        return await self.inner.stage(own, log)

    async def start(self, job: JobSpec, python: str, job_dir: str) -> JobHandle:
        environ = {k: v for k, v in job_environ(job, job_dir).items() if k != "PYTHONPATH"}
        task = {"run_id": job.run_id, "job_dir": job_dir, "argv": job_argv(job, job_dir), "environ": environ}
        async with self._lock:
            w = await self._acquire(job, python)
            w.busy = job_dir
            self._ends.pop(job_dir, None)
            if not await self._send(w, {"task": task}):
                name = f"{next(self._seq):09d}-{os.getpid()}"
                await asyncio.to_thread(_write_task, Path(w.handle.job_dir) / ww.INBOX, name, task)
        return JobHandle(target=self.name, job_dir=job_dir,
                         data={"warm": {"worker_id": w.id, "worker": w.handle.to_dict()}})

    async def read(self, handle: JobHandle, relpath: str, offset: int, limit: int = 1 << 20) -> bytes:
        return await self.inner.read(handle, relpath, offset, limit)

    async def list_files(self, handle: JobHandle, prefix: str) -> list[tuple[str, int]]:
        return await self.inner.list_files(handle, prefix)

    async def fetch(self, handle: JobHandle, relpath: str, dest: Path) -> None:
        await self.inner.fetch(handle, relpath, dest)

    async def poll(self, handle: JobHandle) -> JobState:
        if "warm" not in handle.data:
            return await self.inner.poll(handle)
        folder = Path(handle.job_dir)
        w = self._worker_of(handle)
        # a short child ends within milliseconds: answer then, not after the executor's sleep
        if w.id in self._links and handle.job_dir not in self._ends:  # its worker says when: wait for that
            waiter = self._waiters.setdefault(handle.job_dir, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), POLL_WAIT)
        ended = self._ends.get(handle.job_dir)
        if ended is not None:
            return JobState("exited", ended[0], ended[1])
        if w.id not in self._links:  # no link (or it broke): the exit code file, looked at every few ms
            deadline = time.monotonic() + POLL_WAIT
            while True:
                ended = await asyncio.to_thread(_jobwrap.read_exit, folder)
                if ended is not None:
                    return JobState("exited", ended[0], ended[1])
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.003)
        await self._renew_idle()
        if await self._alive(w):
            return JobState("running")
        ended = self._ends.get(handle.job_dir) or await asyncio.to_thread(_jobwrap.read_exit, folder)
        # it may have ended just before its worker
        if ended is not None:
            return JobState("exited", ended[0], ended[1])
        return JobState("lost", reason=f"the warm worker {w.id} running it ended before it did (killed or out of "
                                       "memory); a new worker runs the next children")

    async def cancel(self, handle: JobHandle, grace_seconds: float = 3.0) -> None:
        if "warm" not in handle.data:
            await self.inner.cancel(handle, grace_seconds)
            return
        folder = Path(handle.job_dir)
        w = self._worker_of(handle)
        if await asyncio.to_thread(_take_back, Path(w.handle.job_dir) / ww.INBOX, str(folder)):
            await asyncio.to_thread(_jobwrap.write_exit, folder, -15, "canceled before it started")
            return
        await asyncio.to_thread(_touch, folder / _jobwrap.CANCEL_FILE)
        await self._send(w, {"cancel": handle.job_dir})
        deadline = time.monotonic() + grace_seconds + 5
        while handle.job_dir not in self._ends and await asyncio.to_thread(_jobwrap.read_exit, folder) is None:
            if not await self._alive(w, fresh=True):
                break
            if time.monotonic() > deadline:  # the worker doesn't answer: it goes, and the child with it
                self.ctx.log(f"warm worker {w.id} did not stop {handle.job_dir}; stopping the worker")
                await self.inner.cancel(w.handle, grace_seconds)
                w.alive = False
                break
            await asyncio.sleep(0.02)
        if handle.job_dir not in self._ends and await asyncio.to_thread(_jobwrap.read_exit, folder) is None:
            # its worker is gone: record the end it couldn't
            await asyncio.to_thread(_jobwrap.write_exit, folder, -15, "canceled")

    async def cleanup(self, handle: JobHandle) -> None:
        if "warm" not in handle.data:
            await self.inner.cleanup(handle)
            return
        for w in self.workers:
            if w.busy == handle.job_dir:
                w.busy = None
        self._ends.pop(handle.job_dir, None)
        self._waiters.pop(handle.job_dir, None)
        w = self._worker_of(handle)
        if w.alive and not w.retiring and await self._send(w, {"remove": handle.job_dir}):
            self._removing.add(handle.job_dir)  # its worker removes it between tasks (close() makes sure)
            return
        await asyncio.to_thread(shutil.rmtree, handle.job_dir, True)

    async def status(self) -> dict[str, Any]:
        return await self.inner.status()

    async def close(self) -> None:
        workers, self.workers = [*self.workers, *self._old], []
        self._old = []
        await asyncio.gather(*(self._retire(w) for w in workers), return_exceptions=True)
        if workers:
            await self.ctx.db(self._record)  # none left to stop
        if self._server is not None:
            self._server.close()
            for writer in list(self._links.values()):
                writer.close()
            self._links.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        if self._sockdir is not None:
            await asyncio.to_thread(shutil.rmtree, self._sockdir, True)
            self._sockdir = None
        left, self._removing = list(self._removing), set()
        if left:  # what a worker that ended early didn't get to
            await asyncio.to_thread(_remove_all, left)
        await self.inner.close()


def script_imports(ws_root: Path, config: dict[str, Any]) -> list[str]:
    """The installed packages a script run's script imports at its top level (what its workers preload).

    Modules of the snapshot itself are left out: a worker imports them from nowhere (its folder holds no
    snapshot), and a same-named installed package would shadow the run's own module in the forked child.
    """
    import ast

    from nbml.snapshot import blob_path, load_manifest

    try:
        manifest = load_manifest(ws_root, config["snapshot_id"])
        entry = manifest[config["script"]]
        tree = ast.parse(blob_path(ws_root / "snapshots" / "blobs", entry.sha256).read_bytes())
    except Exception:  # no script to read (or not Python): the worker preloads only nbml
        return []
    own = {Path(rel).parts[0].removesuffix(".py") for rel in manifest}
    names: list[str] = []
    for node in tree.body:
        found = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        for name in found:
            if name.split(".")[0] not in own and name not in names:
                names.append(name)
    return names


def _touch(path: Path) -> None:
    """Create or touch `path` in a folder that exists (a worker's or child's folder already removed stays so)."""
    try:
        path.touch()
    except OSError:
        pass


def _child_done(job_dir: str) -> bool:
    """Whether the child in `job_dir` has an exit code (or its folder is gone: cleaned up)."""
    return _jobwrap.read_exit(Path(job_dir)) is not None or not Path(job_dir).is_dir()


def _remove_all(folders: list[str]) -> None:
    for folder in folders:
        if os.path.isdir(folder):
            shutil.rmtree(folder, True)


def _touch_all(paths: list[Path]) -> None:
    for path in paths:
        _touch(path)


def _write_task(inbox: Path, name: str, task: dict[str, Any]) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = inbox / f"{name}.tmp"
    tmp.write_text(json.dumps(task))
    os.replace(tmp, inbox / f"{name}.json")  # the worker sees whole tasks only


def _take_back(inbox: Path, job_dir: str) -> bool:
    """Remove the task of `job_dir` from a worker's inbox if the worker hasn't taken it; whether it was there."""
    for path in sorted(inbox.glob("*.json")):
        try:
            if json.loads(path.read_text()).get("job_dir") == job_dir:
                path.unlink()
                return True
        except (OSError, ValueError):
            continue
    return False
