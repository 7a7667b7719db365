"""Snapshots: ignore files, size limits, secret warnings, content addressing."""

from __future__ import annotations

import pytest

from nbml.errors import SnapshotError
from nbml.snapshot import SnapshotSecretWarning, restore, take_snapshot


def test_amlignore_wins_over_gitignore(ws, tmp_path):
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "train.py").write_text("print(1)")
    (src / "data" / "big.csv").write_text("x" * 100)
    (src / "notes.txt").write_text("n")
    (src / ".gitignore").write_text("notes.txt\n")
    (src / ".amlignore").write_text("data/\n")
    snap = take_snapshot(ws, src)
    assert set(snap.files) == {"train.py", "notes.txt", ".gitignore", ".amlignore"}
    assert snap.ignore_file == ".amlignore"
    (src / ".amlignore").unlink()
    assert "notes.txt" not in take_snapshot(ws, src).files
    assert "data/big.csv" in take_snapshot(ws, src).files


def test_too_big_snapshot_names_the_biggest_files(ws, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print(1)")
    (src / "huge.bin").write_bytes(b"\0" * 2_000_000)
    with pytest.raises(SnapshotError, match=r"over the 1 MB limit.*huge.bin \(2.0 MB\).*\.amlignore"):
        take_snapshot(ws, src, max_mb=1)


def test_secret_looking_files_are_warned_about(ws, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print(1)")
    (src / ".env").write_text("TOKEN=abc")
    (src / "deploy").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    with pytest.warns(SnapshotSecretWarning, match=r"\.env.*deploy|deploy.*\.env"):
        take_snapshot(ws, src)


def test_identical_content_is_stored_once_and_restores_exactly(ws, tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "one.py").write_text("same")
    (src / "a" / "two.py").write_text("same")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    snap = take_snapshot(ws, src)
    blobs = [p for p in (ws.path / "snapshots" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 2
    assert take_snapshot(ws, src).id == snap.id  # unchanged folder, same snapshot
    (src / "one.py").write_text("changed")
    assert take_snapshot(ws, src).id != snap.id
    out = tmp_path / "restored"
    restore(ws.path, snap.id, out)
    assert (out / "one.py").read_text() == "same" and (out / "a" / "two.py").read_text() == "same"
    assert (out / "run.sh").stat().st_mode & 0o111


def test_workspace_inside_the_source_folder_is_never_snapshotted(tmp_path, monkeypatch):
    from nbml import Workspace

    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print(1)")
    ws = Workspace(path=src / "my-ws")
    assert set(take_snapshot(ws, src).files) == {"train.py"}
