"""The SSH compute backend: runs jobs on any host with sshd and Python, over asyncssh.

On the host (paths are the target's settings, shown with their defaults)::

    ~/.cache/nbml/blobs/ab/abcd...    content-addressed cache of every file ever sent (sha256)
    ~/.cache/nbml/lib/<hash>/nbml/    the nbml package the job imports (Run.get_context), sent once per version
    ~/.cache/nbml/envs/<env hash>/    venvs built from an Environment's pip list, once per spec
    /tmp/nbml_run/<run_id>/           the job folder: snapshot files, outputs/, logs/, events.jsonl, .nbml/

Staging sends a manifest (path -> sha256); the host copies every file it already has and answers with the
blobs it lacks, which are streamed in one channel and verified. A repeat upload of the same snapshot sends
no file content at all. The job starts in its own session (setsid) under a shell wrapper that writes
``.nbml/exit_code``, so it outlives the connection; everything else reads the job folder by offset and is
safe to retry after a reconnect (see nbml.compute._ssh_conn).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shlex
import signal
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import nbml
from nbml._extras import missing_extra
from nbml._progress import LogProgress
from nbml.compute import _ssh_files, _ssh_remote
from nbml.compute._ssh_conn import SshSession, SshSettings, connect_once
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
from nbml.errors import ComputeTargetException, EnvironmentBuildError
from nbml.snapshot import blob_path

try:
    import asyncssh
except ImportError as exc:  # the ssh extra is not installed
    raise missing_extra("ssh", exc) from exc

logger = logging.getLogger(__name__)
HELPER_SOURCE = Path(_ssh_remote.__file__).read_text()
CHUNK = 1 << 20


async def _read_small(sftp: asyncssh.SFTPClient, path: str) -> bytes | None:
    try:
        async with sftp.open(path, "rb") as f:
            return cast(bytes, await f.read(4096, 0))
    except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, asyncssh.SFTPPermissionDenied):
        return None


def _alive(stat: str, start: str) -> bool:
    """Whether /proc/PID/stat shows a live process that is the job's (same start time, so not a reused pid)."""
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return False
    return start in ("None", "") or fields[19] == start


def job_state(facts: dict[str, Any], pid: int, job_dir: str, host: str) -> JobState:
    """The job's state from what the host reports: folder present, process alive, exit code written."""
    if facts["alive"]:
        return JobState("running")
    if not facts["dir"]:
        return JobState("lost", reason=f"the job folder {job_dir} no longer exists on {host} (was /tmp cleaned, or "
                                       "the host restarted?)")
    code = facts.get("exit_code")
    if code is None:
        return JobState("lost", reason=f"the job's process group (pid {pid}) on {host} ended without writing an exit "
                                       "code: it was killed (kill -9, the OOM killer) or the host restarted")
    reason = None
    if code > 128 and code - 128 < signal.NSIG:
        reason = f"the process was killed by signal {code - 128} ({signal.Signals(code - 128).name})"
    return JobState("exited", exit_code=code, reason=reason)


def _q(arg: str) -> str:
    return shlex.quote(arg)


def _package_manifest() -> tuple[str, dict[str, tuple[str, int, int]], dict[str, Path]]:
    """(hash, {relpath: (sha, mode)}, {sha: path}) of the local nbml package's source files."""
    root = Path(nbml.__file__).parent
    files: dict[str, tuple[str, int, int]] = {}
    sources: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".json", ".typed"):
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            files["nbml/" + path.relative_to(root).as_posix()] = (sha, 0o644, len(data))
            sources[sha] = path
    # MLflow in the job finds nbml's tracking store by these entry points (docs/mlflow.md).
    from nbml.mlflow_plugin import write_entry_points

    meta = Path(tempfile.gettempdir()) / f"nbml-entry-points-{os.getuid()}"
    for path in write_entry_points(meta):
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        files[path.relative_to(meta).as_posix()] = (sha, 0o644, len(data))
        sources[sha] = path
    digest = hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()[:16]
    return digest, files, sources


class SSHBackend(ComputeBackend):
    """Runs jobs on a remote host over SSH (see the module docstring for the layout on the host)."""

    kind = "ssh"

    def __init__(self, name: str, config: dict[str, Any], workspace_root: Path) -> None:
        super().__init__(name, config, workspace_root)
        self.settings = SshSettings.from_config(name, config)
        self.session = SshSession(self.settings, on_retry=self._on_retry)
        self.python = str(config.get("python") or "python3")
        self.helper_python = str(config.get("remote_python") or self.python)
        self._procfs: bool | None = None
        self.link_files = not config.get("copy_files", False)
        self.keep_job_dirs = bool(config.get("keep_job_dirs", False))
        self.remote_root = str(config.get("remote_root") or "~/.cache/nbml")
        self.run_root = str(config.get("run_root") or "/tmp/nbml_run").rstrip("/")
        self.log: LogFn | None = None
        self.last_upload: dict[str, int] = {}
        self._lib_dir: str | None = None

    def _on_retry(self, message: str) -> None:
        logger.warning("%s: %s", self.name, message)
        if self.log is not None:
            self.log(message)

    # -- remote helper -------------------------------------------------------------------------------
    def _command(self, op: str, *args: str, python: str | None = None) -> str:
        # The resolved interpreter (not a pyenv shim) with -S (no site): the helper needs only the stdlib.
        exe = python or self.helper_python
        return " ".join([_q(exe), "-S", "-c", _q(HELPER_SOURCE), op, *(_q(a) for a in args)])

    async def _helper(self, op: str, *args: str, payload: Any = None, python: str | None = None) -> Any:
        cmd = self._command(op, *args, python=python)
        data = None if payload is None else json.dumps(payload).encode()

        async def go(session: SshSession) -> Any:
            conn = await session.connection()
            result = await conn.run(cmd, input=data, encoding=None, check=False)
            return self._answer(op, result.exit_status, result.stdout, result.stderr, python)

        return await self.session.call(go)

    def _answer(self, op: str, status: int | None, stdout: Any, stderr: Any, python: str | None) -> Any:
        if status is None:  # the channel closed without an exit status: the link dropped
            raise ConnectionResetError(f"remote {op} ended without an exit status")
        out = (stdout or b"").decode(errors="replace").strip().splitlines()
        err = (stderr or b"").decode(errors="replace").strip()
        if status == 127:
            raise ComputeTargetException(
                f"{python or self.python!r} was not found on {self.settings.address}; install Python 3 there, or set "
                "the interpreter path (python=... when attaching, or the Environment's interpreter path)."
            )
        if status != 0 or not out:
            raise ComputeTargetException(f"{op} failed on {self.settings.address} (exit {status}): {err[-2000:]}")
        return json.loads(out[-1])

    async def info(self, python: str | None = None) -> dict[str, Any]:
        """The host's interpreter, version, platform and home (used to check a target when attaching)."""
        return dict(await self._helper("info", python=python))

    # -- environment ---------------------------------------------------------------------------------
    async def prepare(self, env: EnvSpec, log: LogFn) -> str:
        self.log = log
        if env.docker_enabled:
            log("Docker settings of the environment are ignored on an SSH target; use a Docker target for images.")
        if env.user_managed or not env.pip:
            python = env.interpreter_path or self.python
            info = await self.info(python)
            if python == self.python:
                self.helper_python = str(info["python"])
            log(f"Using {info['python']} (Python {'.'.join(map(str, info['version']))}) on {self.settings.address}")
            return str(info["python"])
        return await self._build_venv(env, log)

    async def _build_venv(self, env: EnvSpec, log: LogFn) -> str:
        cmd = self._command("venv", self.remote_root, env.hash, self.python)
        payload = json.dumps({"pip": env.pip}).encode()
        log(f"Preparing environment {env.name} ({env.hash[:12]}) on {self.settings.address}")

        async def go(session: SshSession) -> str:
            conn = await session.connection()
            tail: list[str] = []
            async with conn.create_process(cmd, encoding="utf-8", errors="replace", stderr=asyncssh.STDOUT) as proc:
                proc.stdin.write(payload.decode())
                proc.stdin.write_eof()
                async for raw in proc.stdout:
                    line = raw.rstrip()
                    if line:
                        tail = [*tail, line][-40:]
                        if not line.startswith("{"):
                            log(line)
                await proc.wait()
                if proc.exit_status is None:
                    raise ConnectionResetError("environment build ended without an exit status")
            answer = json.loads(tail[-1]) if tail and tail[-1].startswith("{") else {"error": "no answer"}
            if "error" in answer:
                raise EnvironmentBuildError(
                    f"Building environment {env.name} on {self.settings.address} failed: {answer['error']}.\n"
                    + "\n".join(tail[-30:])
                )
            return str(answer["python"])

        return await self.session.call(go)

    # -- upload --------------------------------------------------------------------------------------
    async def _upload(self, dest: str, files: dict[str, tuple[str, int, int]], sources: dict[str, Path],
                      extra: dict[str, bytes] | None = None, marker: bool = False, layout: Iterable[str] = ()) -> None:
        spec: dict[str, Any] = {
            "files": {rel: list(entry) for rel, entry in files.items()}, "marker": marker, "link": self.link_files,
            "extra": {rel: base64.b64encode(data).decode() for rel, data in (extra or {}).items()},
        }
        if layout is not None:
            spec["layout"] = list(layout)
        answer = await self._helper("stage", self.remote_root, dest, payload=spec)
        missing = set(answer["missing"])
        sent = sum(sources[sha].stat().st_size for sha in missing)
        self.last_upload = {"files": len(files), "blobs_sent": len(missing), "bytes_sent": sent}
        if not missing:
            return
        pending = {"files": {rel: v for rel, v in spec["files"].items() if v[0] in missing}, "marker": marker,
                   "link": self.link_files}
        cmd = self._command("receive", self.remote_root, dest)

        async def go(session: SshSession) -> None:
            conn = await session.connection()
            log = self.log or (lambda _line: None)
            progress = LogProgress(log, f"Uploading to {self.settings.address}", len(missing), total_bytes=sent)
            async with conn.create_process(cmd, encoding=None) as proc:
                buf = bytearray(json.dumps(pending).encode() + b"\n")
                for sha in sorted(missing):
                    path = sources[sha]
                    buf += f"{sha} {path.stat().st_size}\n".encode()
                    with open(path, "rb") as f:
                        while chunk := f.read(CHUNK):
                            buf += chunk
                            if len(buf) >= CHUNK:
                                proc.stdin.write(bytes(buf))
                                buf.clear()
                                await proc.stdin.drain()
                    progress.update(1, path.stat().st_size)
                progress.close()
                buf += b"\n"
                proc.stdin.write(bytes(buf))
                proc.stdin.write_eof()
                result = await proc.wait()
            self._answer("receive", result.exit_status, result.stdout, result.stderr, None)

        await self.session.call(go)

    async def stage(self, job: JobSpec, log: LogFn) -> str:
        self.log = log
        job_dir = f"{self.run_root}/{job.run_id}"
        files = {rel: (e.sha256, e.mode, e.size) for rel, e in job.files.items()}
        sources = {e.sha256: blob_path(job.blob_dir, e.sha256) for e in job.files.values()}
        await self._upload(job_dir, files, sources, extra=job.extra_files, layout=_ssh_remote.LAYOUT)
        up = self.last_upload
        log(f"Staged {up['files']} files in {self.settings.address}:{job_dir}: sent {up['blobs_sent']} "
            f"({up['bytes_sent']} bytes), the rest were cached on the host")
        return job_dir

    async def _ensure_lib(self) -> str:
        """Send this nbml version's source to the host once; its folder goes on the job's PYTHONPATH."""
        if self._lib_dir is None:
            digest, files, sources = _package_manifest()
            lib_dir = f"{self.remote_root}/lib/{digest}"
            await self._upload(lib_dir, files, sources, marker=True, layout=())
            self._lib_dir = lib_dir
        return self._lib_dir

    # -- job lifecycle -------------------------------------------------------------------------------
    async def start(self, job: JobSpec, python: str, job_dir: str) -> JobHandle:
        lib_dir = await self._ensure_lib()
        cmd = ["/bin/sh", "-c", wrapper_script(job_dir), "nbml-job", python, *job_argv(job, job_dir)]
        answer = await self._helper("start", job_dir, payload={"cmd": cmd, "env": job_environ(job, job_dir, lib_dir)})
        return JobHandle(target=self.name, job_dir=job_dir, data={"pid": answer["pid"], "start": answer["start"],
                                                                   "host": self.settings.address})

    async def poll(self, handle: JobHandle) -> JobState:
        pid, start = int(handle.data["pid"]), str(handle.data.get("start"))

        async def go(session: SshSession) -> dict[str, Any] | None:
            sftp = await session.sftp()
            if sftp is None:
                return None  # no SFTP on the host: the helper reports the facts
            if self._procfs is None:
                self._procfs = await sftp.isdir("/proc/self")
            if not self._procfs:
                return None
            # Three SFTP reads instead of starting a process on the host at every poll.
            stat = await _read_small(sftp, f"/proc/{pid}/stat")
            alive = stat is not None and _alive(stat.decode(errors="replace"), start)
            code = None if alive else await _read_small(sftp, f"{handle.job_dir}/{EXIT_CODE_FILE}")
            return {"dir": alive or await sftp.isdir(handle.job_dir), "alive": alive,
                    "exit_code": int(code) if code and code.strip().isdigit() else None}

        facts = await self.session.call(go)
        if facts is None:
            facts = await self._helper("poll", handle.job_dir, str(pid), start)
        return job_state(facts, pid, handle.job_dir, self.settings.address)

    async def cancel(self, handle: JobHandle, grace_seconds: float = 3.0) -> None:
        await self._helper("cancel", str(handle.data["pid"]), str(grace_seconds))

    # -- job files -----------------------------------------------------------------------------------
    # Over SFTP when the host has it, else over exec channels (nbml.compute._ssh_files). Either way a symbolic
    # link the job planted in its folder is never followed: it is neither listed nor read.
    async def read(self, handle: JobHandle, relpath: str, offset: int, limit: int = 1 << 20) -> bytes:
        return await self.session.call(lambda s: _ssh_files.read(s, handle.job_dir, relpath, offset, limit))

    async def list_files(self, handle: JobHandle, prefix: str) -> list[tuple[str, int]]:
        listed = await self.session.call(lambda s: _ssh_files.list_sftp(s, handle.job_dir, prefix))
        if listed is None:  # no SFTP on the host: the helper walks the folder
            answer = await self._helper("list", handle.job_dir, prefix)
            listed = [(str(rel), int(size)) for rel, size in answer["files"]]
        return listed

    async def fetch(self, handle: JobHandle, relpath: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".nbml-part")
        await self.session.call(lambda s: _ssh_files.fetch(s, handle.job_dir, relpath, tmp))
        os.replace(tmp, dest)

    async def cleanup(self, handle: JobHandle) -> None:
        """Remove the job folder once outputs and logs are back (``keep_job_dirs=True`` keeps it)."""
        if not self.keep_job_dirs:
            await self._helper("remove", self.run_root, handle.job_dir)

    # -- target --------------------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        try:
            conn = await connect_once(self.settings)
        except (ConnectionError, ComputeTargetException) as exc:
            return {"state": "Failed", "error": str(exc)}
        conn.close()
        return {"state": "Succeeded", "address": self.settings.address}

    async def close(self) -> None:
        await self.session.close()
