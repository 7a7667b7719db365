"""The one retry policy: a host that goes down and comes back is waited for; any other error fails at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sshd import SshServer, ssh_attach_args
from waiting import wait_status

from nbml import Experiment, RemoteCompute, Run, ScriptRunConfig
from nbml.compute.transient import is_transient

STEADY = """
import time
from nbml import Run
run = Run.get_context()
for i in range(int(__import__("sys").argv[1])):
    run.log("step", i)
    time.sleep(0.1)
"""


def _steps(run: Run) -> list[int]:
    value = run.get_metrics().get("step", [])
    return value if isinstance(value, list) else [value]


@pytest.mark.ssh
def test_a_host_that_goes_down_and_comes_back_is_retried_and_the_run_completes(
        ws, project, sshd: SshServer, tmp_path: Path):  # sshd: skipped where no sshd can run
    host = SshServer(tmp_path / "host").start()
    try:
        RemoteCompute.attach(ws, "flaky", **ssh_attach_args(host, tmp_path))
        project(**{"steady.py": STEADY})
        run = Experiment(ws, "retry").submit(ScriptRunConfig(".", "steady.py", arguments=[80],
                                                             compute_target="flaky"))
        wait_status(run, {"Running"}, 60)
        deadline = time.monotonic() + 30
        while not _steps(run) and time.monotonic() < deadline:
            time.sleep(0.05)
        host.kill_connections()
        host.stop()  # sshd is gone: connections are refused (the job itself runs on, detached)
        deadline = time.monotonic() + 30
        while int(run.get_properties().get("nbml.target_retries", 0)) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.get_properties().get("nbml.target_reachable") == "false"
        assert "Connection" in run.get_properties()["nbml.target_error"] or "reach" in \
            run.get_properties()["nbml.target_error"]
        host.start()
        run.wait_for_completion(raise_on_error=True, timeout_seconds=120)
        assert _steps(run) == list(range(80))  # nothing lost while the host was down
        assert run.get_properties()["nbml.target_reachable"] == "true"
    finally:
        host.stop()


@pytest.mark.docker
def test_an_error_that_is_not_a_connection_fault_fails_the_run_at_once_naming_it(ws, project):
    from cluster_factories import docker_target

    target = docker_target(ws, "no-net", network_mode="nbml-no-such-network")
    project(**{"steady.py": STEADY})
    t0 = time.monotonic()
    run = Experiment(ws, "retry").submit(ScriptRunConfig(".", "steady.py", arguments=[3], compute_target=target))
    assert wait_status(run, {"Failed", "Completed", "Canceled"}, 90) == "Failed"
    # Not the 600 s of retries an unreachable engine gets (the time is the supervisor's start on a busy machine).
    assert time.monotonic() - t0 < 90
    message = run.get_details()["error"]["error"]["message"]
    assert "nbml-no-such-network" in message and "starting the job" in message.lower()
    assert "unreachable" not in message
    assert "nbml.target_retries" not in run.get_properties()


def test_only_connection_faults_are_transient():
    import asyncssh
    import requests

    for exc in (ConnectionRefusedError(111, "refused"), ConnectionResetError(), TimeoutError(),
                asyncssh.ConnectionLost("lost"), requests.exceptions.ConnectionError("engine down"),
                OSError(113, "No route to host"),
                asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "too many sessions")):
        assert is_transient(exc), exc
    for exc in (PermissionError(13, "denied"), FileNotFoundError(2, "missing"), OSError(28, "No space left"),
                IsADirectoryError(21, "dir"), ValueError("bad"), asyncssh.SFTPPermissionDenied("denied"),
                asyncssh.DisconnectError(asyncssh.DISC_HOST_KEY_NOT_VERIFIABLE, "changed key"),
                asyncssh.ChannelOpenError(asyncssh.OPEN_REQUEST_SESSION_FAILED, "Session request failed")):
        assert not is_transient(exc), exc
