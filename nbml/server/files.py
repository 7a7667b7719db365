"""A run's files in the workspace (logs and outputs), reached only through paths checked to stay inside.

Layout (see nbml.compute.base): ``runs/<run_id>/outputs/`` holds the outputs brought back; every other
file under ``runs/<run_id>/`` (``logs/``, ``nbml-logs/driver_log.txt``, ...) is a log file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

OUTPUTS = "outputs"
#: Files of the run folder that are bookkeeping, not logs.
_HIDDEN_PREFIXES = (".nbml/", "events.jsonl", "snapshot/")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$")


class UnsafePath(ValueError):
    """A requested path that would leave the run's folder (``..``, absolute, or a link pointing out)."""


def valid_run_id(run_id: str) -> bool:
    """Run ids become folder names: letters, digits and ``_.:@+-``, never ``.`` or ``..`` alone."""
    return bool(_RUN_ID.match(run_id)) and run_id not in (".", "..") and len(run_id) <= 256


def run_dir(workspace_root: Path, run_id: str) -> Path:
    """The run's folder as a real path: the workspace resolved, then ``runs/<run_id>`` taken literally, so a
    link anywhere below the workspace (the run folder or its outputs/ replaced by one) shows as a mismatch."""
    if not valid_run_id(run_id):
        raise UnsafePath(f"{run_id!r} is not a valid run id")
    return Path(workspace_root).resolve() / "runs" / run_id


def _is_real(base: Path) -> bool:
    """Whether `base` (absolute, built from a resolved root) is reached without following any link."""
    return base.resolve() == base


def resolve_inside(base: Path, relpath: str) -> Path:
    """`base / relpath`, refusing any path that escapes `base` (checked after following links); `base`
    itself must not be a link (a job can't turn ``outputs/`` into a door to another folder)."""
    pure = PurePosixPath(relpath.replace("\\", "/"))
    if not relpath or pure.is_absolute() or ".." in pure.parts or "\x00" in relpath:
        raise UnsafePath(f"{relpath!r} is not a relative path inside the run folder")
    if not _is_real(base):
        raise UnsafePath(f"{relpath!r} is not inside the run folder ({base.name} is a link)")
    candidate = (base / pure).resolve()
    if candidate != base and not candidate.is_relative_to(base):
        raise UnsafePath(f"{relpath!r} points outside the run folder")
    return candidate


def _walk(base: Path) -> list[tuple[str, int]]:
    if not base.is_dir() or not _is_real(base):
        return []
    root = base
    found: list[tuple[str, int]] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                real = path.resolve()
                if not real.is_relative_to(root) or not real.is_file():
                    continue  # links that leave the folder are neither listed nor served
                found.append((path.relative_to(base).as_posix(), real.stat().st_size))
            except OSError:
                continue
    return found


def log_files(workspace_root: Path, run_id: str) -> list[tuple[str, int]]:
    """(path relative to the run folder, size) of each log file."""
    files = _walk(run_dir(workspace_root, run_id))
    return [
        (p, s)
        for p, s in files
        if not p.startswith(OUTPUTS + "/") and not any(p.startswith(h) for h in _HIDDEN_PREFIXES)
    ]


def output_files(workspace_root: Path, run_id: str) -> list[tuple[str, int]]:
    """(path relative to outputs/, size) of each output file."""
    return _walk(run_dir(workspace_root, run_id) / OUTPUTS)


def log_path(workspace_root: Path, run_id: str, relpath: str) -> Path:
    """The file of a log, refusing outputs/, bookkeeping files and anything outside the run folder."""
    path = resolve_inside(run_dir(workspace_root, run_id), relpath)
    rel = PurePosixPath(relpath).as_posix()
    if rel.startswith(OUTPUTS + "/") or any(rel.startswith(h) for h in _HIDDEN_PREFIXES):
        raise UnsafePath(f"{relpath!r} is not a log file; outputs are under /outputs/")
    return path


def output_path(workspace_root: Path, run_id: str, relpath: str) -> Path:
    return resolve_inside(run_dir(workspace_root, run_id) / OUTPUTS, relpath)


def read_chunk(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    """Up to `limit` bytes from `offset`, and the file's size."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(min(offset, size))
        return fh.read(limit), size


def run_file(workspace_root: Path, run_id: str, relpath: str) -> Path:
    """A file of the run by its path in the run folder: ``outputs/...`` or a log file (never bookkeeping)."""
    rel = relpath.replace("\\", "/")
    if rel.startswith(OUTPUTS + "/"):
        return output_path(workspace_root, run_id, rel[len(OUTPUTS) + 1:])
    return log_path(workspace_root, run_id, rel)


#: What a preview reads of a file, and how many CSV rows it shows.
PREVIEW_BYTES = 64 * 1024
PREVIEW_ROWS = 20
#: Images a browser shows inline (never SVG: it can hold scripts).
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".bmp": "image/bmp"}
_CSV = {".csv": ",", ".tsv": "\t"}


def preview(path: Path, relpath: str) -> dict[str, Any]:
    """What the file tree shows of a file: an image (by URL), a CSV's head as rows, the start of a text file,
    or nothing for binary files (they are downloaded)."""
    import csv
    import io

    size = path.stat().st_size
    suffix = path.suffix.lower()
    out: dict[str, Any] = {"path": relpath, "size": size, "kind": "binary", "truncated": False}
    if suffix in IMAGE_TYPES:
        out["kind"] = "image"
        return out
    data, _ = read_chunk(path, 0, PREVIEW_BYTES)
    if b"\x00" in data:
        return out
    text = data.decode("utf-8", errors="replace")
    truncated = size > len(data)
    if truncated and "\n" in text:
        text = text[: text.rfind("\n") + 1]  # whole lines only
    if suffix in _CSV:
        rows = list(csv.reader(io.StringIO(text), delimiter=_CSV[suffix]))
        head = rows[: PREVIEW_ROWS + 1]
        out.update(kind="csv", columns=head[0] if head else [], rows=head[1:],
                   truncated=truncated or len(rows) > PREVIEW_ROWS + 1)
        return out
    out.update(kind="text", content=text, truncated=truncated)
    return out
