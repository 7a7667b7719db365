"""Snapshot upload to an SSH host: only content the host lacks travels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sshd import SshServer

from nbml._aio import run_sync
from nbml.compute.base import EnvSpec, JobSpec
from nbml.compute.ssh import SSHBackend
from nbml.snapshot import take_snapshot

pytestmark = pytest.mark.ssh


def test_second_upload_of_a_5000_file_snapshot_sends_no_file_content(ws, sshd: SshServer, tmp_path: Path):
    source = tmp_path / "project"
    for i in range(5000):
        path = source / f"pkg{i // 500}" / f"mod_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE = {i}  # {tmp_path}\n")
    snap = take_snapshot(ws, source)
    assert snap.file_count == 5000
    config = sshd.target_config(remote_root=str(tmp_path / "cache"), run_root=str(tmp_path / "runs"))
    env = EnvSpec(name="default", hash="0")

    async def stage_twice() -> list[dict[str, int]]:
        backend = SSHBackend("box", config, ws.path)
        stats = []
        try:
            for run_id in ("first", "second"):
                job = JobSpec(run_id=run_id, argv=["x.py"], env=env, files=snap.files,
                              blob_dir=ws.path / "snapshots" / "blobs")
                await backend.stage(job, lambda line: None)
                stats.append(dict(backend.last_upload))
        finally:
            await backend.close()
        return stats

    first, second = run_sync(stage_twice())
    assert first["blobs_sent"] == 5000 and first["bytes_sent"] > 0
    assert second == {"files": 5000, "blobs_sent": 0, "bytes_sent": 0}
    for run_id in ("first", "second"):
        staged = sorted(p for p in (tmp_path / "runs" / run_id).rglob("*.py"))
        assert len(staged) == 5000
    sample = tmp_path / "runs" / "second" / "pkg3" / "mod_1717.py"
    assert sample.read_text() == f"VALUE = 1717  # {tmp_path}\n"
    assert hashlib.sha256(sample.read_bytes()).hexdigest() == snap.files["pkg3/mod_1717.py"].sha256


def test_a_job_rewriting_its_source_in_place_does_not_change_the_next_runs_copy(ws, sshd: SshServer,
                                                                                tmp_path: Path):
    source = tmp_path / "project"
    source.mkdir()
    (source / "config.py").write_text("LR = 0.1\n")
    (source / "train.py").write_text("import config\n")
    snap = take_snapshot(ws, source)
    config = sshd.target_config(remote_root=str(tmp_path / "cache"), run_root=str(tmp_path / "runs"))

    async def stage(run_id: str) -> dict[str, int]:
        backend = SSHBackend("box", config, ws.path)
        try:
            job = JobSpec(run_id=run_id, argv=["train.py"], env=EnvSpec(name="d", hash="0"), files=snap.files,
                          blob_dir=ws.path / "snapshots" / "blobs")
            await backend.stage(job, lambda line: None)
            return dict(backend.last_upload)
        finally:
            await backend.close()

    run_sync(stage("one"))
    with open(tmp_path / "runs" / "one" / "config.py", "w") as f:  # in place, through the hard link
        f.write("LR = 99\n")
    again = run_sync(stage("two"))
    assert (tmp_path / "runs" / "two" / "config.py").read_text() == "LR = 0.1\n"
    assert again["blobs_sent"] == 1  # the altered blob was dropped from the cache and sent again
    assert (tmp_path / "runs" / "one" / "config.py").read_text() == "LR = 99\n"  # the first job keeps its edit
