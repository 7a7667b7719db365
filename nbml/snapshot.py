"""Content-addressed snapshots of a source directory, honouring .amlignore, then .gitignore."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pathspec

from nbml._progress import Progress
from nbml.compute.base import FileEntry
from nbml.errors import SnapshotError

if TYPE_CHECKING:
    from nbml.workspace import Workspace

DEFAULT_MAX_MB = 300.0
ALWAYS_IGNORED = [".git/", ".nbml/", "__pycache__/", ".ipynb_checkpoints/", "*.pyc"]
_SECRET_NAMES = {".env", ".netrc", ".pypirc", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "credentials",
                 "credentials.json", ".git-credentials"}
_SECRET_SUFFIXES = (".pem", ".key", ".p12", ".pfx", ".ppk")


class SnapshotSecretWarning(UserWarning):
    """The source directory holds files that look like secrets; they will be copied with the run."""


@dataclass
class Snapshot:
    id: str
    files: dict[str, FileEntry]
    total_size: int
    ignore_file: str | None

    @property
    def file_count(self) -> int:
        return len(self.files)


def _ignore_spec(source: Path) -> tuple[pathspec.GitIgnoreSpec, str | None]:
    lines = list(ALWAYS_IGNORED)
    used = None
    for name in (".amlignore", ".gitignore"):
        f = source / name
        if f.is_file():
            lines += f.read_text(errors="replace").splitlines()
            used = name
            break
    return pathspec.GitIgnoreSpec.from_lines(lines), used


def scan(source: Path, exclude: Path | None = None) -> tuple[list[tuple[str, os.stat_result]], str | None]:
    """Every file to include, as (relative posix path, stat), pruning ignored folders as it walks.

    `exclude` (the workspace folder, when it lies inside the source) is never included.
    """
    spec, used = _ignore_spec(source)
    out: list[tuple[str, os.stat_result]] = []
    with Progress(f"Scanning {source.name or source}", unit="files") as progress:
        _walk(source, exclude, spec, out, progress)
    return out, used


def _walk(source: Path, exclude: Path | None, spec: pathspec.GitIgnoreSpec, out: list[tuple[str, os.stat_result]],
          progress: Progress) -> None:
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = os.path.relpath(dirpath, source)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirnames[:] = sorted(d for d in dirnames if not spec.match_file(rel_dir + d + "/")
                             and (exclude is None or Path(dirpath, d) != exclude))
        for fn in sorted(filenames):
            rel = rel_dir + fn
            if spec.match_file(rel):
                continue
            full = os.path.join(dirpath, fn)
            try:
                st = os.stat(full)
            except OSError:
                continue  # a dangling link or a file removed while we walk
            if stat.S_ISREG(st.st_mode):
                out.append((rel, st))
                progress.update(1, st.st_size)


def _looks_secret(rel: str, full: Path, size: int) -> bool:
    name = rel.rsplit("/", 1)[-1]
    if name in _SECRET_NAMES or name.endswith(_SECRET_SUFFIXES) or name.startswith(".env."):
        return True
    if size < 16384 and not name.endswith((".py", ".ipynb", ".md", ".txt", ".csv")):
        try:
            with open(full, "rb") as fh:
                head = fh.read(100)
        except OSError:
            return False
        return b"PRIVATE KEY-----" in head
    return False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def blob_path(blob_dir: Path, sha: str) -> Path:
    return blob_dir / sha[:2] / sha


def take_snapshot(ws: Workspace, source_directory: str | os.PathLike[str], max_mb: float | None = None) -> Snapshot:
    """Snapshot `source_directory` into the workspace's content-addressed store.

    Raises
    ------
    SnapshotError
        When the folder is missing, or bigger than `max_mb` (default $NBML_SNAPSHOT_MAX_MB or 300); the
        message names the biggest files and how to leave them out.
    """
    source = Path(source_directory).expanduser().resolve()
    if not source.is_dir():
        raise SnapshotError(f"source_directory {str(source)!r} doesn't exist or isn't a folder; pass the folder "
                            "that holds your training script.")
    limit_mb = max_mb if max_mb is not None else float(os.environ.get("NBML_SNAPSHOT_MAX_MB", DEFAULT_MAX_MB))
    entries, used = scan(source, exclude=ws.path.resolve())
    total = sum(st.st_size for _, st in entries)
    if total > limit_mb * 1024 * 1024:
        biggest = sorted(entries, key=lambda e: -e[1].st_size)[:5]
        listing = ", ".join(f"{rel} ({st.st_size / 1e6:.1f} MB)" for rel, st in biggest)
        raise SnapshotError(
            f"The snapshot of {source} would be {total / 1e6:.1f} MB, over the {limit_mb:g} MB limit. Biggest files: "
            f"{listing}. Leave data out with a .amlignore file (same syntax as .gitignore), or raise the limit with "
            "NBML_SNAPSHOT_MAX_MB."
        )
    secrets = [rel for rel, st in entries if _looks_secret(rel, source / rel, st.st_size)]
    if secrets:
        warnings.warn(
            f"These files look like secrets and will be copied with the run: {', '.join(secrets[:10])}. "
            "Add them to .amlignore (or .gitignore) to keep them out of snapshots.",
            SnapshotSecretWarning,
            stacklevel=3,
        )
    blob_dir = ws.path / "snapshots" / "blobs"
    keys = [str(source / rel) for rel, _ in entries]
    cache = ws.store.cached_hashes(keys)
    files: dict[str, FileEntry] = {}
    fresh: list[tuple[str, int, int, str]] = []
    with Progress(f"Snapshot of {source.name or source}", total=len(entries), unit="files", sizes=True) as progress:
        for (rel, st), key in zip(entries, keys, strict=True):
            files[rel] = _store_file(source, rel, st, cache.get(key), key, blob_dir, fresh)
            progress.update(1, st.st_size)
    ws.store.put_hashes(fresh)
    manifest = {rel: [e.sha256, e.size, e.mode] for rel, e in files.items()}
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    snap_id = hashlib.sha256(text.encode()).hexdigest()[:32]
    mpath = ws.path / "snapshots" / "manifests" / f"{snap_id}.json"
    if not mpath.exists():
        mpath.parent.mkdir(parents=True, exist_ok=True)
        tmp = mpath.with_name(mpath.name + f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, mpath)
    return Snapshot(id=snap_id, files=files, total_size=total, ignore_file=used)


def _store_file(source: Path, rel: str, st: os.stat_result, hit: tuple[int, int, str] | None, key: str,
                blob_dir: Path, fresh: list[tuple[str, int, int, str]]) -> FileEntry:
    """Hash one file (unless the cache knows it unchanged) and copy it into the blob store once."""
    if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
        sha = hit[2]
    else:
        sha = _sha256(source / rel)
        fresh.append((key, st.st_size, st.st_mtime_ns, sha))
    dest = blob_path(blob_dir, sha)
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        shutil.copyfile(source / rel, tmp)
        os.replace(tmp, dest)
    return FileEntry(sha256=sha, size=st.st_size, mode=stat.S_IMODE(st.st_mode))


def load_manifest(ws_root: Path, snapshot_id: str) -> dict[str, FileEntry]:
    data = json.loads((ws_root / "snapshots" / "manifests" / f"{snapshot_id}.json").read_text())
    return {rel: FileEntry(sha256=v[0], size=v[1], mode=v[2]) for rel, v in data.items()}


def restore(ws_root: Path, snapshot_id: str, dest: str | os.PathLike[str]) -> None:
    """Write a snapshot's files into `dest` (used by Run.restore_snapshot and targets that copy locally)."""
    out = Path(dest)
    for rel, entry in load_manifest(ws_root, snapshot_id).items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blob_path(ws_root / "snapshots" / "blobs", entry.sha256), target)
        os.chmod(target, entry.mode)
