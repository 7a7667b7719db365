"""Faults an SSH target must survive or report: dropped links, killed jobs, unreachable hosts."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from sshd import SshServer, ssh_attach_args
from waiting import wait_status

from nbml import Experiment, RemoteCompute, Run, ScriptRunConfig

pytestmark = pytest.mark.ssh

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


def test_run_completes_with_every_metric_when_the_link_drops_twice(ws, project, target_ssh, sshd: SshServer,
                                                                   tmp_path: Path):
    project(**{"steady.py": STEADY})
    run = Experiment(ws, "faults").submit(ScriptRunConfig(".", "steady.py", arguments=[60], compute_target=target_ssh))
    wait_status(run, {"Running"}, 60)
    for _ in range(2):
        deadline = time.monotonic() + 20
        seen = len(_steps(run))
        while len(_steps(run)) <= seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sshd.kill_connections() > 0  # the sshd serving the supervisor's connection dies
        time.sleep(0.8)
    run.wait_for_completion(raise_on_error=True)
    assert _steps(run) == list(range(60))  # nothing lost, nothing twice
    assert "reconnect" in (run.run_dir / "nbml-logs" / "prepare_log.txt").read_text()
    job_dir = tmp_path / "remote-runs" / run.id
    deadline = time.monotonic() + 10  # cleanup follows the terminal status
    while job_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not job_dir.exists()  # the host's job folder went once outputs were back


def test_killed_remote_job_fails_the_run_with_the_reason(ws, project, target_ssh):
    project(**{"steady.py": STEADY})
    run = Experiment(ws, "faults").submit(ScriptRunConfig(".", "steady.py", arguments=[600], compute_target=target_ssh))
    wait_status(run, {"Running"}, 60)
    pid = json.loads(run._refresh()["handle_json"])["data"]["pid"]
    os.killpg(pid, signal.SIGKILL)  # the whole job, wrapper included: nobody writes an exit code
    assert wait_status(run, {"Failed", "Completed", "Canceled"}, 30) == "Failed"
    message = run.get_details()["error"]["error"]["message"]
    assert "lost" in message and "without writing an exit code" in message and "127.0.0.1" in message


def test_script_killed_by_a_signal_fails_the_run_naming_the_signal(ws, project, target_ssh):
    project(**{"steady.py": STEADY})
    run = Experiment(ws, "faults").submit(ScriptRunConfig(".", "steady.py", arguments=[600], compute_target=target_ssh))
    wait_status(run, {"Running"}, 60)
    wrapper = json.loads(run._refresh()["handle_json"])["data"]["pid"]
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == wrapper]
    assert children
    os.kill(children[0], signal.SIGKILL)  # the script only (the OOM killer's way); its wrapper records 137
    assert wait_status(run, {"Failed", "Completed", "Canceled"}, 30) == "Failed"
    assert "SIGKILL" in run.get_details()["error"]["error"]["message"]


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_unreachable_host_shows_retries_then_fails_after_the_configured_time(ws, project, sshd: SshServer,
                                                                            tmp_path: Path):  # sshd: skip without one
    down = SshServer(tmp_path / "down").start()
    RemoteCompute.attach(ws, "flaky", **ssh_attach_args(down, tmp_path, unreachable_timeout_seconds=4))
    down.stop()  # the host goes away after it was attached
    project(**{"steady.py": STEADY})
    t0 = time.monotonic()
    run = Experiment(ws, "faults").submit(ScriptRunConfig(".", "steady.py", arguments=[3], compute_target="flaky"))
    retries_seen = 0
    while run.get_status() not in ("Failed", "Completed", "Canceled") and time.monotonic() - t0 < 60:
        assert run.get_status() in ("NotStarted", "Queued", "Preparing")
        retries_seen = max(retries_seen, int(run.get_properties().get("nbml.target_retries", 0)))
        time.sleep(0.1)
    assert run.get_status() == "Failed"
    assert retries_seen >= 1
    assert time.monotonic() - t0 < 40  # failed after the configured time, not hung
    assert "unreachable" in run.get_details()["error"]["error"]["message"]
