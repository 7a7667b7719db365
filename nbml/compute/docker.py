"""The docker backend: each job runs in its own container on a local or remote Docker engine (docker-py).

Images come from `nbml.compute._docker_image` (base image + pip dependencies, built once, reused by hash).
Two ways to move the job folder, chosen by the ``transfer`` config key:

``bind`` (default for a local engine)
    The job folder is a folder of this machine, bind-mounted into the container at
    ``/tmp/nbml_run/<run_id>``: events, logs and outputs are plain files here, read as the local target does.
``copy`` (default for a remote engine: ``tcp://`` or ``ssh://`` in docker_host / DOCKER_HOST)
    The engine's filesystem isn't ours, so the files go into the created container with the archive API
    before it starts, and are read back from it (running or stopped) the same way.

In both cases the nbml package of this process is made importable in the container (read-only) so that
``Run.get_context()`` works, and the job runs under ``python -m nbml.compute._jobwrap``, which writes the
driver log and the exit code. Containers are removed by `cleanup` once the run is finalized.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import tarfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any

import nbml
from nbml.compute import _jobwrap, _staging, base
from nbml.compute._docker_image import connect, ensure_image
from nbml.compute.base import ComputeBackend, EnvSpec, JobHandle, JobSpec, JobState, LogFn, job_environ
from nbml.errors import ComputeTargetException

CONTAINER_ROOT = "/tmp/nbml_run"
NBML_MOUNT = "/opt/nbml-src"
LABEL_RUN = "nbml.run_id"
LABEL_TARGET = "nbml.target"


def is_remote(docker_host: str | None) -> bool:
    host = docker_host or os.environ.get("DOCKER_HOST") or ""
    return bool(host) and not host.startswith(("unix://", "npipe://"))


class DockerBackend(ComputeBackend):
    """Runs jobs in containers; see the module docstring for how files move."""

    kind = "docker"

    def __init__(self, name: str, config: dict[str, Any], workspace_root: Path) -> None:
        super().__init__(name, config, workspace_root)
        self._client: Any = None
        self._lock = threading.Lock()
        self._images: dict[str, tuple[str, str]] = {}
        transfer = config.get("transfer") or "auto"
        if transfer == "auto":
            transfer = "copy" if is_remote(config.get("docker_host")) else "bind"
        if transfer not in ("bind", "copy"):
            raise ComputeTargetException(f"transfer must be 'auto', 'bind' or 'copy', not {transfer!r}.")
        self.transfer = transfer
        self.job_root = Path(config.get("job_root") or Path(workspace_root) / "jobs" / name)

    # -- engine ------------------------------------------------------------------------------------
    def client(self) -> Any:
        with self._lock:  # called from worker threads of concurrent jobs
            if self._client is None:
                self._client = connect(self.config.get("docker_host"))
            return self._client

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- protocol ----------------------------------------------------------------------------------
    async def prepare(self, env: EnvSpec, log: LogFn) -> str:
        image, python = await self._call(self._prepare, env, log)
        self._images[env.hash] = (image, python)
        return json.dumps({"image": image, "python": python})

    def _prepare(self, env: EnvSpec, log: LogFn) -> tuple[str, str]:
        return ensure_image(self.client(), env, self.config.get("base_image"), log)

    async def stage(self, job: JobSpec, log: LogFn) -> str:
        job_dir = self.job_root / _safe(job.run_id)
        await self._call(_staging.stage_local, job, job_dir)
        log(f"Staged {len(job.files)} files in {job_dir} ({self.transfer} mode)")
        return str(job_dir)

    async def start(self, job: JobSpec, python: str, job_dir: str) -> JobHandle:
        image, py = _image_and_python(python, job.env, self.config.get("base_image"))
        return await self._call(self._start, job, image, py, Path(job_dir))

    def _start(self, job: JobSpec, image: str, python: str, job_dir: Path) -> JobHandle:
        cdir = f"{CONTAINER_ROOT}/{_safe(job.run_id)}"
        environ = {**job_environ(job, cdir, NBML_MOUNT), "HOME": "/tmp"}
        environ.pop("NBML_WORKSPACE", None)  # a path of this machine, meaningless in the container
        spec = {"python": python, "argv": base.job_argv(job, cdir), "environ": environ}
        (job_dir / _jobwrap.JOB_FILE).write_text(json.dumps(spec))
        client = self.client()
        kwargs: dict[str, Any] = dict(
            image=image, command=[python, "-m", "nbml.compute._jobwrap", cdir], working_dir=cdir,
            environment={"PYTHONPATH": NBML_MOUNT, "HOME": "/tmp"}, detach=True,
            labels={LABEL_RUN: job.run_id, LABEL_TARGET: self.name}, name=_container_name(job.run_id),
            network_mode=self.config.get("network_mode") or self._default_network(client),
        )
        if self.config.get("shm_size"):
            kwargs["shm_size"] = self.config["shm_size"]
        kwargs.update(limits(job.resources))
        if self.transfer == "bind":
            pkg = Path(nbml.__file__).resolve().parent
            kwargs["volumes"] = {str(job_dir.resolve()): {"bind": cdir, "mode": "rw"},
                                 str(pkg): {"bind": f"{NBML_MOUNT}/nbml", "mode": "ro"}}
            # Files written in the bind mount belong to us, not to root.
            kwargs["user"] = self.config.get("user") or f"{os.getuid()}:{os.getgid()}"
        elif self.config.get("user"):
            kwargs["user"] = self.config["user"]
        _remove_stale(client, kwargs["name"])
        container = _create(client, kwargs)
        try:
            if self.transfer == "copy":
                # Archive paths are absolute from "/" because the target folders don't exist in the image.
                container.put_archive("/", _tar_dir(job_dir, cdir.lstrip("/")))
                container.put_archive("/", _tar_dir(Path(nbml.__file__).resolve().parent, f"{NBML_MOUNT}/nbml"[1:]))
            container.start()
        except BaseException:
            container.remove(force=True)
            raise
        return JobHandle(target=self.name, job_dir=str(job_dir),
                         data={"container": container.id, "container_dir": cdir, "transfer": self.transfer,
                               "image": image})

    async def read(self, handle: JobHandle, relpath: str, offset: int, limit: int = 1 << 20) -> bytes:
        if handle.data.get("transfer") == "copy":
            data = await self._call(self._get_file, handle, relpath)
            return data[offset:offset + limit] if data else b""
        job_dir = Path(handle.job_dir)  # links planted in the job folder are never followed
        return await self._call(_staging.read_bytes, job_dir / relpath, offset, limit, job_dir)

    async def list_files(self, handle: JobHandle, prefix: str) -> list[tuple[str, int]]:
        if handle.data.get("transfer") == "copy":
            return await self._call(self._list_archive, handle, prefix)
        return await self._call(_staging.list_tree, Path(handle.job_dir), prefix)

    async def fetch(self, handle: JobHandle, relpath: str, dest: Path) -> None:
        if handle.data.get("transfer") == "copy":
            data = await self._call(self._get_file, handle, relpath)
            if data is None:
                raise FileNotFoundError(f"{relpath} is not in the container of run job {handle.job_dir}")
        else:
            await self._call(_staging.copy_out, Path(handle.job_dir), relpath, Path(dest))
            return
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        await self._call(dest.write_bytes, data)

    async def poll(self, handle: JobHandle) -> JobState:
        return await self._call(self._poll, handle)

    def _poll(self, handle: JobHandle) -> JobState:
        import docker.errors

        try:
            container = self.client().containers.get(handle.data["container"])
        except docker.errors.NotFound:
            ended = _jobwrap.read_exit(Path(handle.job_dir)) if handle.data.get("transfer") == "bind" else None
            if ended is not None:
                return JobState("exited", ended[0], ended[1])
            return JobState("lost", reason=f"The container {handle.data['container'][:12]} of this job was "
                                           "removed from the Docker engine before the job ended.")
        state = container.attrs.get("State", {})
        if state.get("Status") in ("created", "running", "restarting", "paused"):
            return JobState("running")
        code = int(state.get("ExitCode", -1))
        if state.get("OOMKilled"):
            return JobState("exited", code or 137, oom_reason(container.attrs.get("HostConfig") or {}))
        if state.get("Error"):
            return JobState("lost", code, f"Docker could not run the container: {state['Error']}")
        ended = self._wrapper_exit(handle)
        if ended is None:
            return JobState("lost", code, f"The container stopped (exit code {code}) before the job ended: stopped "
                                          "or killed outside nbml (docker stop/kill, an engine restart)?")
        return JobState("exited", code, ended[1])

    def _wrapper_exit(self, handle: JobHandle) -> tuple[int, str | None] | None:
        if handle.data.get("transfer") == "bind":
            return _jobwrap.read_exit(Path(handle.job_dir))
        code = self._get_file(handle, _jobwrap.EXIT_CODE_FILE)
        if not code:
            return None
        reason = self._get_file(handle, _jobwrap.REASON_FILE)
        return int(code.strip()), (reason.decode(errors="replace").strip() or None) if reason else None

    async def cancel(self, handle: JobHandle, grace_seconds: float = 3.0) -> None:
        await self._call(self._cancel, handle, grace_seconds)

    def _cancel(self, handle: JobHandle, grace_seconds: float) -> None:
        import docker.errors

        try:
            container = self.client().containers.get(handle.data["container"])
            # TERM reaches the wrapper (PID 1), which stops the job's process group; KILL after the grace.
            container.stop(timeout=max(1, round(grace_seconds)))
        except docker.errors.NotFound:
            pass

    async def cleanup(self, handle: JobHandle) -> None:
        await self._call(self._cleanup, handle)

    def _cleanup(self, handle: JobHandle) -> None:
        import docker.errors

        try:
            self.client().containers.get(handle.data["container"]).remove(force=True)
        except docker.errors.NotFound:
            pass
        shutil.rmtree(handle.job_dir, ignore_errors=True)

    async def status(self) -> dict[str, Any]:
        try:
            info = await self._call(lambda: self.client().info())
        except ComputeTargetException as exc:
            return {"state": "Failed", "error": str(exc)}
        return {"state": "Succeeded", "engine": info.get("ServerVersion"), "containers_running":
                info.get("ContainersRunning"), "images": info.get("Images"), "transfer": self.transfer}

    async def close(self) -> None:
        if self._client is not None:
            await self._call(self._client.close)
            self._client = None

    # -- helpers -----------------------------------------------------------------------------------
    def _default_network(self, client: Any) -> str:
        # An engine started without a bridge (--bridge=none) can only run with "none" (or "host").
        names = {n.name for n in client.networks.list()}
        return "bridge" if "bridge" in names else "none"

    def _get_file(self, handle: JobHandle, relpath: str) -> bytes | None:
        import docker.errors

        path = str(PurePosixPath(handle.data["container_dir"]) / relpath)
        try:
            stream, _ = self.client().containers.get(handle.data["container"]).get_archive(path)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    f = tar.extractfile(member)
                    return f.read() if f else b""
        return None

    def _list_archive(self, handle: JobHandle, prefix: str) -> list[tuple[str, int]]:
        import docker.errors

        path = str(PurePosixPath(handle.data["container_dir"]) / prefix)
        try:
            stream, _ = self.client().containers.get(handle.data["container"]).get_archive(path)
        except docker.errors.NotFound:
            return []
        top = PurePosixPath(prefix.rstrip("/")).parent
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return sorted((str(top / m.name) if str(top) != "." else m.name, m.size)
                          for m in tar.getmembers() if m.isfile())


def limits(resources: dict[str, float]) -> dict[str, Any]:
    """docker-py create() arguments for {"cpu_cores", "memory_gb"}: enforced by the engine's cgroups.

    Swap is capped at the memory limit, so a job over its memory is killed rather than slowed to a crawl.
    """
    out: dict[str, Any] = {}
    if resources.get("cpu_cores"):
        out["nano_cpus"] = int(float(resources["cpu_cores"]) * 1e9)
    if resources.get("memory_gb"):
        mem = int(float(resources["memory_gb"]) * (1 << 30))
        out["mem_limit"] = mem
        out["memswap_limit"] = mem
    return out


def oom_reason(host_config: dict[str, Any]) -> str:
    memory = int(host_config.get("Memory") or 0)
    limit = f" of {memory / (1 << 30):g} GB ({memory >> 20} MiB)" if memory else ""
    return (f"Out of memory: the job used more than the container's memory limit{limit} and was killed by "
            "the kernel's OOM killer. Give it more memory (run_config.container_instance.memory_gb, or "
            "memory_gb= of the deployment) or make the script use less.")


def _image_and_python(prepared: str, env: EnvSpec, default_base: str | None) -> tuple[str, str]:
    """`prepare` returns JSON {image, python}; accept a bare interpreter path for the base image too."""
    try:
        info = json.loads(prepared)
        return str(info["image"]), str(info["python"])
    except (ValueError, TypeError, KeyError):
        from nbml.compute._docker_image import base_image_for

        return base_image_for(env, default_base), prepared or "python3"


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)


def _container_name(run_id: str) -> str:
    return "nbml-" + _safe(run_id)[:120]


def _remove_stale(client: Any, name: str) -> None:
    """A container left by an earlier attempt at the same run would block the name."""
    import docker.errors

    try:
        client.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


def _create(client: Any, kwargs: dict[str, Any], wait: float = 60.0) -> Any:
    """Create the run's container. A busy engine may finish a create the client stopped waiting for (the
    start is then retried) only after the retry began: the name is taken by that container of the same run
    ("409 Conflict"), so it is removed, once the engine shows it, and the create made again."""
    import time

    import docker.errors

    deadline = time.monotonic() + wait
    while True:
        try:
            return client.containers.create(**kwargs)
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or time.monotonic() > deadline:
                raise
        time.sleep(1.0)
        _remove_stale(client, kwargs["name"])


def _tar_dir(src: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(src), arcname=arcname,
                filter=lambda ti: None if "__pycache__" in ti.name else _world_writable(ti))
    return buf.getvalue()


def _world_writable(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    # The container may run as another user than the archive's owner; the job folder must be writable.
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    if ti.isdir():
        ti.mode |= 0o777
    return ti
