"""Start, find and stop the cluster-host process of an nbml-owned Dask cluster (see _dask_host)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nbml._proc import pid_alive
from nbml.compute._dask_host import LOG, SPEC, STATE, STOP, read_json, write_json
from nbml.errors import ComputeTargetException

SPEC_KEYS = ("min_nodes", "max_nodes", "idle_seconds_before_scaledown", "threads_per_node", "memory_limit", "ssh")


def state_dir(workspace_root: Path, name: str) -> Path:
    return Path(workspace_root) / "clusters" / name


def spec_of(config: dict[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in SPEC_KEYS if k in config}


def live_state(workspace_root: Path, name: str) -> dict[str, Any] | None:
    """The host's state if its process is alive and it has reported recently."""
    state = read_json(state_dir(workspace_root, name) / STATE)
    if not state or not pid_alive(int(state.get("pid", 0))):
        return None
    if time.time() - float(state.get("heartbeat", 0)) > 30:
        return None
    return state


@contextmanager
def _lock(folder: Path):  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "start.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_running(workspace_root: Path, name: str, config: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
    """Start the cluster host unless it runs; return its state (with the scheduler address)."""
    folder = state_dir(workspace_root, name)
    with _lock(folder):
        state = live_state(workspace_root, name)
        if state is not None:
            return state
        (folder / STOP).unlink(missing_ok=True)
        (folder / STATE).unlink(missing_ok=True)
        write_json(folder / SPEC, spec_of(config))
        env = dict(os.environ)
        # The host and its workers import nbml from where this process does.
        pkg_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH", "")) if p)
        with open(folder / LOG, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "nbml.compute._dask_host", str(folder)], cwd=folder,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = read_json(folder / STATE)
            if state and state.get("address"):
                return state
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        if proc.poll() is None:
            proc.terminate()
        tail = _tail(folder / LOG)
        raise ComputeTargetException(
            f"The Dask cluster for compute target {name!r} did not start (log {folder / LOG}):\n{tail}"
        )


def stop(workspace_root: Path, name: str, timeout: float = 60) -> bool:
    """Stop the cluster host (and with it every worker); True if one was running."""
    folder = state_dir(workspace_root, name)
    state = read_json(folder / STATE)
    if not state or not pid_alive(int(state.get("pid", 0))):
        return False
    pid = int(state["pid"])
    (folder / STOP).touch()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        _reap(pid)
        time.sleep(0.2)
    if pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    return True


def update_spec(workspace_root: Path, name: str, config: dict[str, Any]) -> None:
    folder = state_dir(workspace_root, name)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / SPEC, spec_of(config))


def _reap(pid: int) -> None:
    # When this process started the host, collect its exit status so it doesn't linger as a zombie.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
