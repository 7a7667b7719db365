"""Listing a datastore path's files, and bringing them into the workspace's content-addressed blob store.

The blob store is the snapshots' (``<workspace>/snapshots/blobs``): a data file shipped to a target is a blob
like any snapshot file, so a target that already holds it (the SSH host's cache) is sent nothing. Remote
files are fetched once per (URL, size, mtime); local files are hashed once per (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from nbml.compute.base import FileEntry
from nbml.data._fs import DatastoreError, Location
from nbml.snapshot import blob_path

GLOB_CHARS = "*?["


def _is_glob(path: str) -> bool:
    return any(c in path for c in GLOB_CHARS)


def list_files(loc: Location, path: str) -> list[tuple[str, str]]:
    """(full path in the filesystem, path relative to the reference's base) of every file `path` names.

    A folder gives the files under it (relative to it); a file gives itself (its name); a glob pattern gives
    its matches, relative to the folder before the first wildcard.
    """
    fs = loc.fs
    full = loc.join(path)
    if _is_glob(path):
        base = full[:min(full.find(c) for c in GLOB_CHARS if c in full)].rsplit("/", 1)[0]
        matches = sorted(m for m in fs.glob(full) if fs.isfile(m))
        return [(m, _rel(m, base)) for m in matches]
    if fs.isdir(full):
        found = sorted(fs.find(full))
        return [(m, _rel(m, full)) for m in found]
    if fs.isfile(full):
        return [(full, full.rstrip("/").rsplit("/", 1)[-1])]
    raise DatastoreError(f"{path!r} does not exist in {loc.url}.")


def _rel(full: str, base: str) -> str:
    full, base = _norm(full), _norm(base).rstrip("/")
    return full[len(base) + 1:] if full.startswith(base + "/") else full.rsplit("/", 1)[-1]


def _norm(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def is_dir(loc: Location, path: str) -> bool:
    return bool(_is_glob(path) or loc.fs.isdir(loc.join(path)))


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mtime_ns(info: dict[str, Any]) -> int:
    value = info.get("mtime", info.get("modified", info.get("created", 0)))
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * 1e9)
    try:
        return int(float(value or 0) * 1e9)
    except (TypeError, ValueError):
        return 0


def to_blobs(store: Any, blob_dir: Path, loc: Location, files: list[tuple[str, str]],
             log: Any = None) -> dict[str, FileEntry]:
    """{relative path: FileEntry} for `files` of `loc`, each stored in `blob_dir` (fetched only if unknown)."""
    keys = [f"{loc.url.rstrip('/')}#{full}" if not loc.local else full for full, _ in files]
    cache = store.cached_hashes(keys)
    out: dict[str, FileEntry] = {}
    fresh: list[tuple[str, int, int, str]] = []
    fetched = 0
    for (full, rel), key in zip(files, keys, strict=True):
        if loc.local:
            st = os.stat(full)
            size, mtime, mode = st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)
        else:
            info = loc.fs.info(full)
            size, mtime, mode = int(info.get("size") or 0), _mtime_ns(info), 0o644
        hit = cache.get(key)
        sha = hit[2] if hit is not None and hit[0] == size and hit[1] == mtime else None
        if sha is None or not blob_path(blob_dir, sha).exists():
            sha = _store_blob(loc, full, blob_dir)
            fresh.append((key, size, mtime, sha))
            fetched += 0 if loc.local else size
        out[rel] = FileEntry(sha256=sha, size=size, mode=mode | 0o400)
    store.put_hashes(fresh)
    if log is not None and not loc.local:
        log(f"Data from {loc.url}: {len(files)} files, fetched {fetched} bytes into the workspace cache")
    return out


def _store_blob(loc: Location, full: str, blob_dir: Path) -> str:
    blob_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=blob_dir, prefix=".data-")
    os.close(fd)
    try:
        if loc.local:
            shutil.copyfile(full, tmp)
        else:
            loc.fs.get_file(full, tmp)
        sha = _sha256(tmp)
        dest = blob_path(blob_dir, sha)
        if dest.exists():
            os.unlink(tmp)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
        return sha
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_blob(blob_dir: Path, path: Path) -> FileEntry:
    """Store one local file in the blob store; its FileEntry goes into a job's manifest (AutoML's data)."""
    from fsspec.implementations.local import LocalFileSystem

    sha = _store_blob(Location(LocalFileSystem(), "/", "file://", True), str(path), blob_dir)
    return FileEntry(sha256=sha, size=path.stat().st_size, mode=0o644)
