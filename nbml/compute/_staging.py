"""Materialise a JobSpec's files in a job folder on a filesystem this process can write."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

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


def _open_inside(root: Path, rel: str) -> int | None:
    """A read-only descriptor of the regular file `rel` inside the job folder `root`, or None (missing, outside
    the folder, or reached through a symbolic link anywhere below `root`).

    It walks down from `root` one component at a time with ``O_NOFOLLOW`` relative to the folder already open,
    so no link below `root` is followed and one swapped in meanwhile is refused, not followed: a few system
    calls, where resolving the whole path would stat every component of it from ``/`` on each read.
    The last open is non-blocking, so a FIFO the job planted can't hang the reader; it is refused as not a
    regular file.
    """
    parts = rel.replace(os.sep, "/").split("/")
    if os.path.isabs(rel) or any(p in ("", ".", "..") for p in parts):
        return None
    nofollow = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    fd = -1
    try:
        for part in parts[:-1]:
            inner = os.open(part, nofollow | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(parts[-1], nofollow | os.O_NONBLOCK, dir_fd=folder)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        os.set_blocking(fd, True)
        return fd
    except OSError:
        if fd >= 0:
            os.close(fd)
        return None
    finally:
        os.close(folder)


def read_bytes(path: Path, offset: int, limit: int, root: Path | None = None) -> bytes:
    """Up to `limit` bytes of a job file from `offset`; b"" when it is missing or not a plain file inside `root`
    (the job folder; by default the file's own folder, so only the last component must not be a link)."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    fd = _open_inside(base, os.path.relpath(path, base))
    if fd is None:
        return b""
    with os.fdopen(fd, "rb") as f:
        f.seek(offset)
        return f.read(limit)


def copy_out(root: Path, rel: str, dest: Path) -> None:
    """Copy the job file `rel` to `dest`, refusing one reached through a symbolic link."""
    fd = _open_inside(root, rel)
    if fd is None:
        raise FileNotFoundError(f"{rel} is not a regular file inside the job folder {root} (missing, or a link)")
    with os.fdopen(fd, "rb") as src, open_creating(Path(dest)) as out:
        shutil.copyfileobj(src, out, 1 << 20)


def open_creating(dest: Path, mode: str = "wb") -> Any:
    """`open(dest, mode)`, making its folder first only when it is missing (a system call saved per file)."""
    try:
        return open(dest, mode)
    except FileNotFoundError:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return open(dest, mode)


def list_tree(root: Path, prefix: str) -> list[tuple[str, int]]:
    """(path relative to `root`, size) of the regular files under `prefix`; symbolic links are never followed
    or listed (neither links to files nor linked folders, nor a `prefix` that is itself a link).

    Walked with descriptors, as `_open_inside` reads: each folder is opened ``O_NOFOLLOW`` relative to its
    parent and `os.fwalk` never follows a link, so nothing outside the folder can be listed."""
    parts = [p for p in prefix.replace(os.sep, "/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        return []
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
    try:
        folder = os.open(root, flags)
    except OSError:
        return []
    try:
        for part in parts:
            inner = os.open(part, flags | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        out = []
        base = "/".join(parts)
        for dirpath, _dirs, files, dir_fd in os.fwalk(".", dir_fd=folder, follow_symlinks=False):
            sub = os.path.normpath(os.path.join(base, dirpath)).replace(os.sep, "/")
            for name in files:
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.append((name if sub == "." else f"{sub}/{name}", st.st_size))
        return sorted(out)
    except OSError:
        return []
    finally:
        os.close(folder)
