"""Metric values: how they are folded for readers, typed for queries, and kept in files when big.

Nothing a script logged may make a reader fail, so the fold below accepts any mix of kinds and shapes;
nothing it logged may be lost, so a value too big for a row lives in a file of the run that readers load.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

METRIC_KINDS = ("scalar", "list", "row", "table", "image")

#: A value whose JSON is longer than this is kept in a file of the run, not in its row (nor in one event line).
MAX_INLINE_BYTES = 256 << 10

#: Kinds that fold together: scalars and lists make one series, rows and tables one table.
_FAMILY = {"scalar": "series", "list": "series", "row": "table", "table": "table", "image": "image"}


_ENCODER = json.JSONEncoder(allow_nan=True, separators=(",", ":"), default=str)


def dumps(value: Any) -> str:
    """JSON of a value; NaN and infinities are written as NaN/Infinity so they read back as floats.

    One shared encoder: json.dumps() with options builds a new one per call, which ingestion feels.
    """
    return _ENCODER.encode(value)


def numeric(kind: str, value: Any) -> float | None:
    """The number a scalar metric holds (for SQL ordering), or None: not a number, a bool, NaN or not a scalar."""
    if kind != "scalar" or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def safe_part(name: str) -> str:
    """A metric name as one file-name component (no separators, bounded length)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80].strip(".") or "metric"


def value_file_name(name: str) -> str:
    """Where a big value is kept, relative to its run's folder (and to a job's .nbml/uploads/)."""
    return f"metrics/{safe_part(name)}/{uuid.uuid4().hex[:16]}.json"


def valid_value_file(rel: Any) -> bool:
    """A reference from an event log is trusted only when it names a file under metrics/ of the run."""
    if not isinstance(rel, str) or not rel.startswith("metrics/") or "\\" in rel:
        return False
    parts = PurePosixPath(rel).parts
    return not PurePosixPath(rel).is_absolute() and ".." not in parts and len(parts) >= 2


def write_value_file(root: Path, run_id: str, name: str, text: str) -> str:
    """Keep a big value's JSON as a file of the run; returns its path relative to the workspace root."""
    rel = f"runs/{run_id}/{value_file_name(name)}"
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dest)
    return rel


def read_value(root: Path, value_json: str | None, value_file: str | None) -> Any:
    """A row's value: decoded from its column, or loaded from its file; never raises.

    A file not readable (yet: it is copied back while the run is going) reads as a short note saying where
    the value is, so a reader shows something instead of failing.
    """
    if value_file:
        path = (root / value_file).resolve()
        runs = (root / "runs").resolve()
        if runs not in path.parents:
            return f"<value refused: {value_file!r} is outside the workspace's runs folder>"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"<value kept in {value_file}, not readable yet: {type(exc).__name__}>"
    try:
        return json.loads(value_json) if value_json is not None else None
    except ValueError:
        return value_json


def _series(entries: list[tuple[str, Any]]) -> Any:
    if len(entries) == 1 and entries[0][0] == "scalar":
        return entries[0][1]
    out: list[Any] = []
    for kind, value in entries:
        if kind == "list" and isinstance(value, list):
            out.extend(value)
        else:
            out.append(value)
    return out


def _table(entries: list[tuple[str, Any]]) -> dict[str, list[Any]] | None:
    table: dict[str, list[Any]] = {}
    for kind, value in entries:
        if not isinstance(value, dict):
            return None
        for col, vals in value.items():
            column = table.setdefault(str(col), [])
            if kind == "table" and isinstance(vals, list):
                column.extend(vals)
            else:
                column.append(vals)
    return table


def fold(entries: list[tuple[str, Any]]) -> Any:
    """The value readers show for one name, from its (kind, value) entries in logging order.

    One kind family folds the way the Azure ML SDK's get_metrics() shows it: a scalar logged once is a value,
    again a list (lists extend it); rows and tables become a dict of columns; an image is the path of its
    (latest) file. A name logged with kinds of different families (a scalar, then a row) becomes the list of
    every value as logged, so nothing is dropped and no reader has to guess.
    """
    families = {_FAMILY.get(kind, kind) for kind, _ in entries}
    if len(families) == 1:
        family = next(iter(families))
        if family == "series":
            return _series(entries)
        if family == "table":
            table = _table(entries)
            if table is not None:
                return table
        elif family == "image" or len(entries) == 1:
            return entries[-1][1]
    return [value for _, value in entries]


def aggregate(rows: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """Fold metric rows (name, kind, value) by name, names in the order first logged (see `fold`)."""
    by_name: dict[str, list[tuple[str, Any]]] = {}
    for name, kind, value in rows:
        by_name.setdefault(name, []).append((kind, value))
    return {name: fold(entries) for name, entries in by_name.items()}
