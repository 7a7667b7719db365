"""Processes told apart without /proc: psutil on this machine, psutil or ps on an SSH host without procfs.

This machine is Linux; macOS has no /proc. The SSH helper's branch for such hosts is run here by making it
see no procfs (the one fault simulated: the files exist on Linux), through psutil and then through ps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbml._proc import pid_alive
from nbml.compute import local

HELPER = Path(local.__file__).with_name("_ssh_remote.py")


def zombie() -> subprocess.Popen[bytes]:
    """A child that has exited but is not reaped yet."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stat = subprocess.run(["ps", "-o", "stat=", "-p", str(proc.pid)], capture_output=True, text=True).stdout
        if stat.strip().startswith("Z"):
            return proc
        time.sleep(0.05)
    raise AssertionError("the child never became a zombie")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_local_liveness_counts_a_zombie_as_ended(sleeper: subprocess.Popen[bytes]) -> None:
    assert pid_alive(sleeper.pid) and local._group_alive(sleeper.pid)
    dead = zombie()
    try:
        assert not pid_alive(dead.pid)
        assert not local._group_alive(dead.pid)
    finally:
        dead.wait()
    assert not pid_alive(dead.pid)


@pytest.fixture(params=["psutil", "ps"])
def helper_without_procfs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The SSH host helper as it runs on a host with no /proc, with or without psutil in its Python."""
    module = types.ModuleType("nbml_ssh_remote_under_test")
    exec(compile(HELPER.read_text(), str(HELPER), "exec"), module.__dict__)
    module.__dict__["_procfs"] = lambda: False
    if request.param == "ps":
        monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` raises ImportError
    return module


def test_ssh_helper_tells_the_jobs_process_without_procfs(helper_without_procfs: types.ModuleType,
                                                          sleeper: subprocess.Popen[bytes]) -> None:
    h = helper_without_procfs
    state, token = h._starttime(sleeper.pid)
    assert state not in (None, "Z") and token
    assert h._starttime(sleeper.pid) == (state, token)  # the same token every time: the pid check is stable
    assert h._alive(sleeper.pid, token)
    assert not h._alive(sleeper.pid, "another process's start")  # a reused pid is not the job
    assert h._group_alive(sleeper.pid)
    dead = zombie()
    try:
        assert h._starttime(dead.pid)[0] == "Z"
        assert not h._alive(dead.pid, None)
        assert not h._group_alive(dead.pid)
    finally:
        dead.wait()
    assert h._starttime(dead.pid) == (None, None)
    assert not h._alive(dead.pid, token)


def test_ssh_helper_cancel_without_procfs_ends_the_group(helper_without_procfs: types.ModuleType,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # The job ignores TERM for a moment, as a job flushing its files would; cancel waits, then it's gone.
    proc = subprocess.Popen([sys.executable, "-c", "import signal,time; signal.signal(signal.SIGTERM, lambda *a: "
                             "(time.sleep(0.3), exit(0))); print('ready', flush=True); time.sleep(60)"],
                            start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"  # its TERM handler is set
        helper_without_procfs.op_cancel(str(proc.pid), "10")
        assert '"signalled": true' in capsys.readouterr().out
        assert proc.wait(timeout=10) == 0  # ended by its TERM handler: cancel saw it go, no KILL needed
        assert not helper_without_procfs._group_alive(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
