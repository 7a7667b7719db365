"""The local target: jobs are processes on this machine, in their own session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import nbml
from nbml._proc import pid_alive, process_alive, start_time
from nbml.compute import _staging
from nbml.compute.base import (
    EXIT_CODE_FILE,
    ComputeBackend,
    EnvSpec,
    JobHandle,
    JobSpec,
    JobState,
    LogFn,
    job_argv,
    job_environ,
    wrapper_script,
)
from nbml.envbuild import ensure_local_env
from nbml.snapshot import blob_path

NBML_PACKAGE_DIR = str(Path(nbml.__file__).resolve().parent)


def runtime_dir(job_dir: Path) -> str:
    """A folder holding only `nbml` (a link to this package), put on the job's PYTHONPATH so any interpreter
    imports the same nbml as the supervisor without seeing the rest of this site-packages."""
    rt = job_dir / ".nbml" / "runtime"
    rt.mkdir(parents=True, exist_ok=True)
    link = rt / "nbml"
    if not link.exists():
        os.symlink(NBML_PACKAGE_DIR, link)
    from nbml.mlflow_plugin import write_entry_points

    write_entry_points(rt)  # mlflow.log_* in the job find nbml's tracking store (docs/mlflow.md)
    return str(rt)


class LocalBackend(ComputeBackend):
    kind = "local"
    local_files = True

    def __init__(self, name: str, config: dict, workspace_root: Path) -> None:  # type: ignore[type-arg]
        super().__init__(name, config, workspace_root)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    async def prepare(self, env: EnvSpec, log: LogFn) -> str:
        return await asyncio.to_thread(ensure_local_env, self.workspace_root / "envs", env, log)

    async def stage(self, job: JobSpec, log: LogFn) -> str:
        job_dir = self.workspace_root / "jobs" / job.run_id
        await asyncio.to_thread(self._stage_sync, job, job_dir)
        return str(job_dir)

    def _stage_sync(self, job: JobSpec, job_dir: Path) -> None:
        for sub in ("outputs", "logs", "nbml-logs", ".nbml"):
            (job_dir / sub).mkdir(parents=True, exist_ok=True)
        for rel, entry in job.files.items():
            dest = job_dir / rel
            if dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(blob_path(job.blob_dir, entry.sha256), dest)
            os.chmod(dest, entry.mode | 0o200)
        for rel, data in job.extra_files.items():
            dest = job_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)

    async def start(self, job: JobSpec, python: str, job_dir: str) -> JobHandle:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.update(job_environ(job, job_dir, runtime_dir(Path(job_dir))))
        cmd = ["/bin/sh", "-c", wrapper_script(job_dir), "nbml-job", python, *job_argv(job, job_dir)]
        proc = subprocess.Popen(cmd, cwd=job_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self._procs[proc.pid] = proc
        # The start time makes the pid unambiguous for a supervisor that reattaches from another process.
        return JobHandle(target=self.name, job_dir=job_dir, data={"pid": proc.pid, "pgid": proc.pid,
                                                                   "started": time.time(),
                                                                   "create_time": start_time(proc.pid)})

    # Job files are read without following symbolic links: a job can't have files outside its folder copied
    # into the run by planting a link (see nbml.compute._staging._open_inside).
    async def read(self, handle: JobHandle, relpath: str, offset: int, limit: int = 1 << 20) -> bytes:
        job_dir = Path(handle.job_dir)
        return _staging.read_bytes(job_dir / relpath, offset, limit, job_dir)

    async def list_files(self, handle: JobHandle, prefix: str) -> list[tuple[str, int]]:
        return await asyncio.to_thread(_staging.list_tree, Path(handle.job_dir), prefix)

    async def poll(self, handle: JobHandle) -> JobState:
        pid = int(handle.data["pid"])
        proc = self._procs.get(pid)
        if proc is not None:
            if proc.poll() is None:
                return JobState("running")
        elif (process_alive(pid, handle.data["create_time"]) if handle.data.get("create_time")
              else pid_alive(pid)):
            return JobState("running")
        code_file = Path(handle.job_dir) / EXIT_CODE_FILE
        for _ in range(20):  # the wrapper writes the code right after the job ends
            if code_file.exists():
                text = code_file.read_text().strip()
                if text:
                    return JobState("exited", exit_code=int(text))
            await asyncio.sleep(0.05)
        return JobState("lost", reason=f"process {pid} ended without recording an exit code (killed?)")

    async def cancel(self, handle: JobHandle, grace_seconds: float = 3.0) -> None:
        pgid = int(handle.data.get("pgid") or handle.data["pid"])
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            proc = self._procs.get(pgid)
            if proc is not None:
                proc.poll()  # reap the wrapper so it doesn't linger as a zombie of the group
            if not _group_alive(pgid):
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

    async def fetch(self, handle: JobHandle, relpath: str, dest: Path) -> None:
        await asyncio.to_thread(_staging.copy_out, Path(handle.job_dir), relpath, Path(dest))

    async def cleanup(self, handle: JobHandle) -> None:
        proc = self._procs.pop(int(handle.data["pid"]), None)
        if proc is not None:
            proc.poll()
        await asyncio.to_thread(shutil.rmtree, handle.job_dir, True)


def _group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still runs (zombies left for init to reap don't count)."""
    import psutil

    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return True
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return False
