"""Materialise a JobSpec's files in a job folder on a filesystem this process can write."""

from __future__ import annotations

import os
import shutil
import stat
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


def job_file(root: Path, rel: str) -> Path | None:
    """`root/rel` if it is a regular file inside the job folder reached without any symbolic link, else None.

    A job can plant links in its folder (``os.symlink('/etc/passwd', 'outputs/x')``, or a linked folder);
    reading through them would copy files of this machine into the run. Such paths are skipped.
    """
    real_root = os.path.realpath(root)
    path = os.path.normpath(os.path.join(real_root, rel))
    if not path.startswith(real_root + os.sep) or os.path.realpath(path) != path:
        return None  # outside the folder (.. in rel), or a link somewhere on the way
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return Path(path) if stat.S_ISREG(st.st_mode) else None


def _open_inside(root: Path, rel: str) -> int | None:
    path = job_file(root, rel)
    if path is None:
        return None
    try:  # O_NOFOLLOW: a link swapped in after the check is refused, not followed
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None


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
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(fd, "rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def list_tree(root: Path, prefix: str) -> list[tuple[str, int]]:
    """(path relative to `root`, size) of the regular files under `prefix`; symbolic links are never followed
    or listed (neither links to files nor linked folders, nor a `prefix` that is itself a link)."""
    real_root = os.path.realpath(root)
    base = os.path.normpath(os.path.join(real_root, prefix.strip("/")))
    if not (base + os.sep).startswith(real_root + os.sep) or os.path.realpath(base) != base or not os.path.isdir(base):
        return []
    out = []
    for dirpath, _dirs, files in os.walk(base):  # os.walk never descends into linked folders
        for name in files:
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out.append((os.path.relpath(full, real_root).replace(os.sep, "/"), st.st_size))
    return sorted(out)
