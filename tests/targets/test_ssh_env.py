"""Environments on an SSH host: the user's interpreter, or a venv built once per spec and reused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sshd import SshServer

from nbml._aio import run_sync
from nbml.compute.base import EnvSpec
from nbml.compute.ssh import SSHBackend
from nbml.errors import ComputeTargetException, EnvironmentBuildError

pytestmark = pytest.mark.ssh


def _backend(sshd: SshServer, tmp_path: Path) -> SSHBackend:
    return SSHBackend("box", sshd.target_config(remote_root=str(tmp_path / "cache")), tmp_path)


def test_venv_is_built_once_per_spec_and_reused(sshd: SshServer, tmp_path: Path):
    spec = EnvSpec(name="train", hash="feedc0de", user_managed=False, pip=["pip"])  # satisfied offline
    lines: list[str] = []

    async def prepare_twice() -> tuple[str, str, float]:
        backend = _backend(sshd, tmp_path)
        try:
            first = await backend.prepare(spec, lines.append)
            t0 = time.perf_counter()
            second = await backend.prepare(spec, lines.append)
            return first, second, time.perf_counter() - t0
        finally:
            await backend.close()

    first, second, reuse_seconds = run_sync(prepare_twice())
    assert first == second == str(tmp_path / "cache" / "envs" / "feedc0de" / "bin" / "python")
    assert Path(first).exists() and (tmp_path / "cache" / "envs" / "feedc0de" / ".nbml-ready").exists()
    assert any("venv" in line for line in lines)  # the build's output reached the run's log
    assert reuse_seconds < 5


def test_failed_venv_build_reports_pip_output_and_leaves_no_env(sshd: SshServer, tmp_path: Path):
    spec = EnvSpec(name="bad", hash="badbad", user_managed=False, pip=["/nonexistent/pkg-1.0-py3-none-any.whl"])
    with pytest.raises(EnvironmentBuildError, match="nonexistent"):
        run_sync(_backend(sshd, tmp_path).prepare(spec, lambda line: None))
    assert not (tmp_path / "cache" / "envs" / "badbad").exists()


def test_user_managed_interpreter_path_is_checked(sshd: SshServer, tmp_path: Path):
    spec = EnvSpec(name="mine", hash="1", user_managed=True, interpreter_path="/opt/none/bin/python")
    with pytest.raises(ComputeTargetException, match="/opt/none/bin/python"):
        run_sync(_backend(sshd, tmp_path).prepare(spec, lambda line: None))
