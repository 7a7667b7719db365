"""A host whose sshd has no SFTP subsystem (hardened hosts, some images): files move over exec channels."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SshServer, available, ssh_attach_args

from nbml import Experiment, RemoteCompute, ScriptRunConfig

pytestmark = pytest.mark.ssh

TRAIN = """
import os, sys
from nbml import Run
run = Run.get_context()
for i in range(40):
    run.log("loss", 1.0 / (i + 1))
run.log("accuracy", 0.93)
os.makedirs("outputs/model", exist_ok=True)
open("outputs/model/weights.bin", "wb").write(bytes(range(256)) * 4096)  # 1 MiB
open("outputs/notes.txt", "w").write("trained\\n")
os.makedirs("logs", exist_ok=True)
open("logs/train.log", "w").write("epoch 1 done\\n")
os.symlink("/etc/passwd", "outputs/x")  # links out of the job folder are never copied back
os.symlink("/etc", "logs/etc")
print("trained on", sys.platform)
"""


@pytest.fixture(scope="module")
def bare_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real sshd started without any `Subsystem sftp` line."""
    why = available()
    if why:
        pytest.skip(why)
    server = SshServer(tmp_path_factory.mktemp("sshd-nosftp"), sftp=False).start()
    yield server
    server.stop()


def test_script_run_completes_with_metrics_outputs_and_logs_and_cached_files_are_not_sent_again(
        ws, project, bare_sshd: SshServer, tmp_path: Path):
    RemoteCompute.attach(ws, "bare", **ssh_attach_args(bare_sshd, tmp_path))
    project(**{"train.py": TRAIN, "helper.py": "X = 1\n"})
    t0 = time.monotonic()
    run = Experiment(ws, "no-sftp").submit(ScriptRunConfig(".", "train.py", compute_target="bare"))
    run.wait_for_completion(raise_on_error=True, timeout_seconds=90)
    assert time.monotonic() - t0 < 60  # no minutes of "Session request failed" retries
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0 / (i + 1) for i in range(40)] and metrics["accuracy"] == 0.93
    assert (run.run_dir / "outputs" / "model" / "weights.bin").read_bytes() == bytes(range(256)) * 4096
    assert (run.run_dir / "outputs" / "notes.txt").read_text() == "trained\n"
    assert (run.run_dir / "logs" / "train.log").read_text() == "epoch 1 done\n"
    assert not (run.run_dir / "outputs" / "x").exists() and not (run.run_dir / "logs" / "etc").exists()
    assert "trained on linux" in (run.run_dir / "nbml-logs" / "driver_log.txt").read_text()
    prepare_log = (run.run_dir / "nbml-logs" / "prepare_log.txt").read_text()
    assert "no SFTP subsystem" in prepare_log
    again = Experiment(ws, "no-sftp").submit(ScriptRunConfig(".", "train.py", compute_target="bare"))
    again.wait_for_completion(raise_on_error=True, timeout_seconds=90)
    staged = re.search(r"Staged (\d+) files .*: sent (\d+) \((\d+) bytes\)",
                       (again.run_dir / "nbml-logs" / "prepare_log.txt").read_text())
    assert staged and int(staged.group(1)) >= 2 and staged.group(2) == "0" and staged.group(3) == "0"
    assert again.get_metrics()["accuracy"] == 0.93
