"""Materialise a JobSpec's files in a job folder on a filesystem this process can write."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from nbml.compute.base import JobSpec
from nbml.snapshot import blob_path

JOB_SUBDIRS = ("outputs", "logs", "nbml-logs", ".nbml")


def stage_local(job: JobSpec, dest: Path) -> Path:
    """Copy the snapshot files and extra files of `job` into `dest` (created), with the job subfolders.

    Files are copied, not linked: a job that rewrites one of its files must not alter the snapshot.
    """
    dest = Path(dest)
    for sub in JOB_SUBDIRS:
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for rel, entry in job.files.items():
        target = _inside(dest, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blob_path(job.blob_dir, entry.sha256), target)
        os.chmod(target, (entry.mode & 0o7777) | 0o600)
    for rel, data in job.extra_files.items():
        target = _inside(dest, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dest


def _inside(root: Path, rel: str) -> Path:
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"job file {rel!r} points outside the job folder")
    return target


def read_bytes(path: Path, offset: int, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(limit)
    except (FileNotFoundError, IsADirectoryError):
        return b""


def list_tree(root: Path, prefix: str) -> list[tuple[str, int]]:
    base = root / prefix
    if not base.is_dir():
        return []
    out = []
    for p in sorted(base.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out.append((p.relative_to(root).as_posix(), p.stat().st_size))
    return out
