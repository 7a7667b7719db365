"""Warm workers shared by script runs that opt in (``run_config.warm_worker = True``; ``%ml_submit --warm``).

A script run has one supervisor and one job, so a pool of its own would be a pool of one that ends with the
run. Here the pool belongs to the workspace: a worker (`nbml.runs.warm_worker`, the same process AutoML and
HyperDrive use) outlives the run whose supervisor started it, and the next opted-in run on the same target,
with the same environment key and the same top-level imports, claims it instead of starting a process.

- **The registry**: ``<workspace>/warm/`` (mode 0700). Each worker has ``<id>.json`` (mode 0600: target,
  key, its job handle, its socket and token), ``<id>.lock`` (the claim: ``flock``, held by the supervisor
  that uses the worker, released by the kernel if that supervisor dies) and, while a child runs in it,
  ``<id>.busy`` (that child's job folder, so a worker whose supervisor died mid-run isn't handed a second
  child while an adopting supervisor still watches the first).
- **Claiming** takes the first entry of the target and key whose lock is free, that isn't busy and whose
  worker the target says still runs; a dead one is removed (entry, folder) and the next is tried; with none,
  the supervisor starts a new worker, registered and locked by it before anyone else can see it. Two runs at
  once get two workers; later runs find both idle.
- **The link** goes the other way round from a pool's: the worker listens on a Unix socket (in a folder of
  mode 0700 from `tempfile.mkdtemp`) and each claiming supervisor connects, presenting the worker's token;
  the worker answers with its own hello, and from then on it is the link of `nbml.runs.warm`: tasks, cancels
  and removals as JSON lines, the child's end right back. A supervisor that can't connect (a Dask worker on
  another machine) uses the inbox and exit code files, as an adopting supervisor does.
- **Lifetime**: the claimant renews the worker's lease while it uses it; the worker exits once it is idle
  and its lease is older than the keep-alive (``run_config.warm_worker_keep_alive_seconds``, else
  ``NBML_WARM_KEEP_ALIVE_SECONDS``, else 300 s) and it can take its own lock (no supervisor holds a claim),
  marking its entry retired (the next claimant removes its folder) before it lets the lock go.
  `stop_workers` stops them all now.
- Each run stays a run of its own exactly as a pool's children do (status, logs, metrics, outputs, time
  limit, cancel, exit code, adoption after a supervisor restart); only where its process comes from differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hmac
import json
import os
import re
import secrets
import select
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from nbml.compute import _jobwrap
from nbml.compute.base import ComputeBackend, JobHandle, JobSpec, JobState
from nbml.runs import warm_worker as ww
from nbml.runs.context import SupervisorContext
from nbml.runs.warm import WARM_KINDS, WarmBackend, _touch, _Worker, enabled, script_imports

#: The workspace folder that holds the registry of shared warm workers.
REGISTRY = "warm"
DEFAULT_KEEP_ALIVE = 300.0
KEEP_ALIVE_VAR = "NBML_WARM_KEEP_ALIVE_SECONDS"
#: The variable that hands a shared worker its token (not its config file: nothing secret on disk in a job folder).
TOKEN_VAR = "NBML_WARM_TOKEN"
#: The run property naming the shared worker a run ran in.
WORKER_PROPERTY = "nbml.warm_worker"
#: How long a claimant waits for an idle worker to accept its connection before it uses the files instead.
LINK_WAIT = 2.0


def registry_dir(ws_root: Path) -> Path:
    """The registry folder, created with mode 0700 (and put back to it if it was changed)."""
    folder = Path(ws_root) / REGISTRY
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def keep_alive_of(config: dict[str, Any]) -> float:
    value = config.get("warm_worker_keep_alive_seconds")
    if value is None:
        value = os.environ.get(KEEP_ALIVE_VAR) or DEFAULT_KEEP_ALIVE
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = DEFAULT_KEEP_ALIVE
    return seconds if seconds > 0 else DEFAULT_KEEP_ALIVE


def check_keep_alive(value: Any) -> float | None:
    """The checked ``warm_worker_keep_alive_seconds`` of a submit (None: the default); raises a user error."""
    from nbml.errors import UserErrorException

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UserErrorException(
            f"run_config.warm_worker_keep_alive_seconds must be a number of seconds greater than 0 (how long an "
            f"idle warm worker waits for the next run), not {value!r}; for example 300.")
    return float(value)


def shared_backend(ctx: SupervisorContext, inner: ComputeBackend, config: dict[str, Any]) -> ComputeBackend:
    """`inner` with the run's job started in a shared warm worker, or `inner` itself (cold), saying why."""
    if not enabled(None):
        ctx.log(f"{ctx.run_id}: warm workers are turned off (NBML_WARM_WORKERS=0); the run starts cold")
        return inner
    if inner.kind not in WARM_KINDS:
        ctx.log(f"{ctx.run_id}: the {inner.kind} target {inner.name!r} has no warm workers yet; the run starts "
                "a new process (cold)")
        return inner
    if config.get("distributed") or config.get("spark"):
        ctx.log(f"{ctx.run_id}: a {'distributed' if config.get('distributed') else 'Spark'} run has no warm "
                "worker; it starts a new process (cold)")
        return inner
    return SharedWarmBackend(ctx, inner, preload=script_imports(ctx.ws_root, config),
                             keep_alive=keep_alive_of(config))


class SharedWarmBackend(WarmBackend):
    """A `WarmBackend` whose one worker comes from (and goes back to) the workspace's registry."""

    def __init__(self, ctx: SupervisorContext, inner: ComputeBackend, *, preload: list[str],
                 keep_alive: float) -> None:
        super().__init__(ctx, inner, 1, preload=preload)
        self.keep_alive = keep_alive
        self.registry = Path(ctx.ws_root) / REGISTRY  # created (mode 0700) off the event loop on first use
        self._claims: dict[str, int] = {}  # worker id -> the fd holding its lock
        self._busy: dict[str, str] = {}  # worker id -> the job folder of the child it runs for us
        self._job_dir: str | None = None
        self._link_tasks: list[asyncio.Task[None]] = []

    # an adopting supervisor of a script run must not stop the worker: the registry, not the run, records it
    def _recorded(self) -> list[dict[str, Any]]:
        return []

    def _record(self) -> None:
        pass

    def _shared_key(self, job: JobSpec, python: str) -> str:
        environ = {k: v for k, v in job.environ.items() if k != "NBML_EXPERIMENT"}  # each task sets its own
        return json.dumps([self.name, python, job.env.hash, sorted(environ.items()), sorted(self.preload)])

    async def start(self, job: JobSpec, python: str, job_dir: str) -> JobHandle:
        self._job_dir = job_dir
        return await super().start(job, python, job_dir)

    async def _acquire(self, job: JobSpec, python: str) -> _Worker:
        key = self._shared_key(job, python)
        await asyncio.to_thread(registry_dir, self.ctx.ws_root)
        while True:
            got = await asyncio.to_thread(_claim, self.registry, self.name, key)
            if got is None:
                return await self._start_shared(job, python, key)
            fd, info = got
            w = _Worker(str(info["id"]), key, JobHandle.from_dict(info["handle"]), renewed=time.monotonic())
            await asyncio.to_thread(_touch, Path(w.handle.job_dir) / ww.LEASE_FILE)
            if not await self._alive(w, fresh=True):
                self.ctx.log(f"{self.ctx.run_id}: the warm worker {w.id} in the registry is gone; removing it")
                await asyncio.to_thread(_forget, self.registry, info, fd)
                await self._dispose(w)
                continue
            self._claims[w.id] = fd
            self.workers.append(w)
            await self._taken(w, info, "claimed")
            self._token = str(info.get("token") or "")
            await self._connect(w, str(info.get("socket") or ""), wait=LINK_WAIT)
            return w

    async def _taken(self, w: _Worker, info: dict[str, Any], how: str) -> None:
        assert self._job_dir is not None
        self._busy[w.id] = self._job_dir
        await asyncio.to_thread(_write_private, self.registry / f"{w.id}.busy", self._job_dir)
        await self.ctx.db(self.ctx.store.add_properties, self.ctx.run_id, {WORKER_PROPERTY: w.id})
        self.ctx.log(f"{self.ctx.run_id}: {how} the shared warm worker {w.id} (started by "
                     f"{info.get('started_by')}; keep-alive {float(info.get('keep_alive') or 0):g} s)")

    async def _start_shared(self, job: JobSpec, python: str, key: str) -> _Worker:
        wid = f"warm-{_safe(self.name)}-{secrets.token_hex(4)}"
        token = secrets.token_hex(16)
        sockdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="nbml-warm-")  # mode 0700
        sock = os.path.join(sockdir, "s")
        fd = await asyncio.to_thread(_new_lock, self.registry / f"{wid}.lock")
        cfg = {"preload": self.preload, "setup": None, "lease_seconds": self.keep_alive, "id": wid, "socket": None,
               "shared": {"listen": sock, "sockdir": sockdir, "lock": str(self.registry / f"{wid}.lock"),
                          "entry": str(self.registry / f"{wid}.json")}}
        spec = JobSpec(run_id=wid, argv=["-m", "nbml.runs.warm_worker"], env=job.env, files={}, blob_dir=job.blob_dir,
                       environ={**job.environ, "PYTHONUNBUFFERED": "1", TOKEN_VAR: token},
                       extra_files={ww.CONFIG_FILE: json.dumps(cfg).encode(), ww.LEASE_FILE: b""})
        try:
            job_dir = await self.inner.stage(spec, self.ctx.log)
            handle = await self.inner.start(spec, python, job_dir)
        except BaseException:
            os.close(fd)
            await asyncio.to_thread(_remove_quietly, [self.registry / f"{wid}.lock"], [sockdir])
            raise
        info = {"id": wid, "target": self.name, "key": key, "handle": handle.to_dict(), "socket": sock,
                "sockdir": sockdir, "token": token, "started_by": self.ctx.run_id, "started_at": time.time(),
                "keep_alive": self.keep_alive, "preload": self.preload}
        await asyncio.to_thread(_write_private, self.registry / f"{wid}.json", json.dumps(info))
        w = _Worker(wid, key, handle, renewed=time.monotonic())
        self._claims[wid] = fd
        self.workers.append(w)
        await self._taken(w, info, "started")
        self._token = token
        await self._connect(w, sock, wait=0)  # it is importing: the task waits in its inbox meanwhile
        return w

    async def _connect(self, w: _Worker, path: str, wait: float) -> None:
        """Connect to `w`'s socket (retrying in the background while it starts); wait up to `wait` for its hello."""

        async def link_up() -> None:
            deadline = time.monotonic() + 60
            while w.alive and time.monotonic() < deadline:
                try:
                    reader, writer = await asyncio.open_unix_connection(path)
                except (OSError, ValueError):
                    await asyncio.sleep(0.05)  # not listening yet (or on another machine: the files serve)
                    continue
                writer.write(json.dumps({"hello": self.ctx.run_id, "token": self._token}).encode() + b"\n")
                await writer.drain()
                await self._serve(reader, writer)  # the worker's hello, then its children's ends
                return

        if not path:
            return
        task = asyncio.create_task(link_up())
        self._link_tasks.append(task)
        deadline = time.monotonic() + wait
        while w.id not in self._links and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.002)

    async def close(self) -> None:
        """Hand the worker back: it waits `keep_alive` seconds for the next run (a dead one is removed)."""
        for w in [*self.workers, *self._old]:
            fd = self._claims.pop(w.id, None)
            alive = w.alive and await self._alive(w, fresh=True)
            if fd is not None and not alive:
                info = await asyncio.to_thread(_read_entry, self.registry, w.id)
                await asyncio.to_thread(_forget, self.registry, info or {"id": w.id}, None)
                await self._dispose(w)
            elif alive:  # its keep-alive counts from now, and is this run's
                await asyncio.to_thread(_release_lease, self.registry, w, self.keep_alive)
            await asyncio.to_thread(_unbusy, self.registry, w.id, self._busy.pop(w.id, None))
            if fd is not None:
                os.close(fd)
        self.workers, self._old = [], []
        for writer in list(self._links.values()):
            writer.close()
        self._links.clear()
        for task in self._link_tasks:
            task.cancel()
        for task in self._link_tasks:
            with contextlib.suppress(BaseException):
                await task
        left, self._removing = list(self._removing), set()
        if left:  # folders the worker was asked to remove: make sure (it may have ended first)
            await asyncio.to_thread(_remove_quietly, [], left)
        await self.inner.close()

    async def poll(self, handle: JobHandle) -> JobState:
        # A new worker takes its first task from the inbox while it still imports, and accepts the link only
        # once idle, that is after that child ended: its end is in the exit code file, not a message.
        if "warm" in handle.data and handle.job_dir not in self._ends:
            ended = await asyncio.to_thread(_jobwrap.read_exit, Path(handle.job_dir))
            if ended is not None:
                return JobState("exited", ended[0], ended[1])
        return await super().poll(handle)

    def _worker_of(self, handle: JobHandle) -> _Worker:
        w = super()._worker_of(handle)
        if w.id not in self._busy and w in self._old:  # an adopted child: its worker is busy with it until it ends
            self._busy[w.id] = handle.job_dir
        return w


# -- the registry (file work, run in threads) ------------------------------------------------------------
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _new_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _try_lock(path: Path) -> int | None:
    """An fd holding `path`'s lock, or None when another process holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    try:  # the worker may have retired between our open and our lock: then the file we locked is unlinked
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise FileNotFoundError(path)
    except FileNotFoundError:
        os.close(fd)
        return None
    return fd


def _read_entry(registry: Path, wid: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads((registry / f"{wid}.json").read_text()))
    except (OSError, ValueError):
        return None


def _busy_with(registry: Path, wid: str) -> str | None:
    """The job folder of a child the worker still runs (its supervisor died; another adopts it), or None."""
    try:
        job_dir = (registry / f"{wid}.busy").read_text().strip()
    except FileNotFoundError:
        return None
    from nbml.compute._jobwrap import read_exit

    if not job_dir or not os.path.isdir(job_dir) or read_exit(Path(job_dir)) is not None:
        return None
    return job_dir


def _claim(registry: Path, target: str, key: str) -> tuple[int, dict[str, Any]] | None:
    """(the lock's fd, the entry) of an idle registered worker for `target` and `key`, claimed; or None."""
    _sweep(registry)
    for path in sorted(registry.glob("*.json"), key=_mtime, reverse=True):  # the most recently used first
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if info.get("target") != target or info.get("key") != key:
            continue
        fd = _try_lock(registry / f"{info['id']}.lock")
        if fd is None:
            continue
        if not path.exists() or _busy_with(registry, str(info["id"])):
            os.close(fd)
            continue
        os.utime(path)  # so that runs one after another keep to one worker, and the others retire when idle
        return fd, info
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _forget(registry: Path, info: dict[str, Any], fd: int | None) -> None:
    """Remove a dead worker's entry (its lock held by the caller) and socket folder."""
    wid = str(info["id"])
    _remove_quietly([registry / f"{wid}.json", registry / f"{wid}.busy", registry / f"{wid}.lock"],
                    [str(info["sockdir"])] if info.get("sockdir") else [])
    if fd is not None:
        os.close(fd)


def _release_lease(registry: Path, w: _Worker, keep_alive: float) -> None:
    """Date the worker's lease so that it exits `keep_alive` seconds from now if no run claims it.

    The worker compares the lease's age with the keep-alive it was started with; a run that asks for another
    one dates the lease that much later (or earlier), so the keep-alive of the last run to use it holds.
    """
    info = _read_entry(registry, w.id) or {}
    shift = keep_alive - float(info.get("keep_alive") or keep_alive)
    when = time.time() + shift
    with contextlib.suppress(OSError):
        os.utime(Path(w.handle.job_dir) / ww.LEASE_FILE, (when, when))


def _unbusy(registry: Path, wid: str, job_dir: str | None) -> None:
    path = registry / f"{wid}.busy"
    try:
        if job_dir is None or path.read_text().strip() == job_dir:
            path.unlink()
    except FileNotFoundError:
        pass


def _sweep(registry: Path) -> None:
    """Remove the folders of workers that retired (their entries say so) once they have ended."""
    from nbml.compute._jobwrap import read_exit

    for path in registry.glob("*.retired"):
        try:
            info = json.loads(path.read_text())
            folder = Path(info["handle"]["job_dir"])
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
            continue
        if read_exit(folder) is not None or not folder.is_dir() or time.time() - path.stat().st_mtime > 60:
            shutil.rmtree(folder, ignore_errors=True)
            path.unlink(missing_ok=True)


def _remove_quietly(files: list[Path], folders: list[str]) -> None:
    for f in files:
        with contextlib.suppress(OSError):
            f.unlink()
    for d in folders:
        shutil.rmtree(d, ignore_errors=True)


def stop_workers(ws_root: Path | Any, timeout: float = 30.0) -> int:
    """Ask every shared warm worker of the workspace to stop (after the run it may be running); wait for
    them to end (up to `timeout` seconds). Returns how many there were. Takes a Workspace or its folder."""
    root = Path(getattr(ws_root, "path", ws_root))
    registry = root / REGISTRY
    if not registry.is_dir():
        return 0
    entries = [e for e in (_read_entry(registry, p.stem) for p in registry.glob("*.json")) if e]
    for info in entries:
        _touch(Path(info["handle"]["job_dir"]) / ww.STOP_FILE)
    from nbml.compute._jobwrap import read_exit

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any((registry / f"{e['id']}.json").exists() for e in entries):
        time.sleep(0.05)
    folders = [Path(e["handle"]["job_dir"]) for e in entries]
    while time.monotonic() < deadline and any(f.is_dir() and read_exit(f) is None for f in folders):
        time.sleep(0.05)  # the worker's wrapper records its exit once it has ended
    _sweep(registry)
    return len(entries)


# -- the worker's side (imported by nbml.runs.warm_worker when its config says "shared") ---------------------
class WorkerSide:
    """What a shared worker adds to `nbml.runs.warm_worker.serve`: its listening socket and its registry entry."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        shared = cfg["shared"]
        self.id = str(cfg.get("id"))
        self.token = os.environ.pop(TOKEN_VAR, "")  # the children it forks must not see it
        self.lock, self.entry, self.sockdir = Path(shared["lock"]), Path(shared["entry"]), str(shared["sockdir"])
        self.lease_s = float(cfg.get("lease_seconds") or DEFAULT_KEEP_ALIVE)
        self.listener: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.listener.bind(str(shared["listen"]))
            self.listener.listen(8)
            self.listener.setblocking(False)
        except OSError as exc:  # its supervisors use the inbox and exit code files instead
            print(f"warm worker {os.getpid()} can't listen on {shared['listen']} ({exc}); tasks come as files",
                  flush=True)
            self.listener.close()
            self.listener = None

    def wait(self, link: ww.Link | None, timeout: float) -> ww.Link | None:
        """Sleep until a message, a claimant's connection or `timeout`; the link to use from now on."""
        socks: list[Any] = [s for s in (self.listener, link.sock if link is not None and link.open else None) if s]
        if not socks:
            time.sleep(timeout)
            return link
        try:
            ready, _, _ = select.select(socks, [], [], timeout)
        except (OSError, ValueError):
            return link
        if link is not None and link.open and link.sock in ready:
            link.receive()
        if self.listener is not None and self.listener in ready:
            new = self._accept()
            if new is not None:  # a new claimant: the one before released the worker (or died)
                if link is not None:
                    link.close()
                link = new
        return link

    def _accept(self) -> ww.Link | None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return None
        try:
            conn.setblocking(True)
            conn.settimeout(5.0)
            buf = b""
            while b"\n" not in buf and len(buf) < 4096:
                chunk = conn.recv(4096)
                if not chunk:
                    raise ConnectionError("closed before its hello")
                buf += chunk
            line, _, rest = buf.partition(b"\n")
            hello = json.loads(line)
            if not hmac.compare_digest(str(hello.get("token")), self.token):
                raise PermissionError("a connection without the worker's token")
            conn.sendall(json.dumps({"hello": self.id, "token": self.token, "pid": os.getpid()}).encode() + b"\n")
        except (OSError, ValueError) as exc:
            print(f"warm worker {os.getpid()}: refused a connection ({exc})", flush=True)
            conn.close()
            return None
        link = ww.Link(conn)
        link._buf = rest  # what the claimant sent after its hello
        return link

    def retire(self, lease: Path) -> bool:
        """Whether the worker may exit now (its lease is stale): only when no supervisor holds its claim."""
        fd = _try_lock(self.lock)
        if fd is None:
            return False
        try:  # a claimant renews the lease right after it takes the lock: look again now that we hold it
            fresh = time.time() - lease.stat().st_mtime <= self.lease_s
        except FileNotFoundError:
            fresh = False
        if fresh:
            os.close(fd)
            return False
        self._leave()
        return True  # the lock stays held until the process exits: a late claimant finds its file gone

    def close(self) -> None:
        """The worker stops (asked to): leave the registry."""
        self._leave()

    def _leave(self) -> None:
        with contextlib.suppress(OSError):
            os.replace(self.entry, self.entry.with_suffix(".retired"))  # the next claimant removes the folder
        _remove_quietly([self.lock, self.entry.with_suffix(".busy")], [self.sockdir])
        if self.listener is not None:
            self.listener.close()
            self.listener = None
