"""The event log a training process writes and the supervisor ingests.

One JSON object per line, appended with a single write(2) on an O_APPEND descriptor, so several processes
of one job can log at once without interleaving lines. A line's byte offset is its identity: ingestion
resumes from an offset and never writes an event twice.

Event types: ``metric`` (name, kind, value, step), ``tags``, ``remove_tags``, ``properties``, ``child``
and ``child_end`` (child runs created inside a script). An optional ``run`` field names the run an event
belongs to when it isn't the job's own run.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


def jsonable(value: Any) -> Any:
    """Make numpy/pandas scalars and arrays JSON-friendly without importing either."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    for attr in ("tolist", "item"):
        fn = getattr(value, attr, None)
        if callable(fn):
            try:
                return jsonable(fn())
            except (TypeError, ValueError):
                pass
    return str(value)


def _default(value: Any) -> Any:
    return jsonable(value)


class EventWriter:
    """Appends events to a job's events.jsonl."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event: dict[str, Any]) -> None:
        event.setdefault("t", time.time())
        line = json.dumps(event, default=_default, separators=(",", ":"), allow_nan=True) + "\n"
        data = line.encode()
        written = os.write(self._fd, data)
        while written < len(data):  # pragma: no cover - only on exotic filesystems
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def parse(data: bytes, base_offset: int) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Complete lines of `data` (read at `base_offset`) as (offset, event); returns them and bytes consumed.

    A trailing partial line is left for the next read. A line that isn't valid JSON is skipped (it can only
    come from a process killed mid-write, which the O_APPEND single write makes all but impossible).
    """
    events: list[tuple[int, dict[str, Any]]] = []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl]
        if line.strip():
            try:
                ev = json.loads(line)
                if isinstance(ev, dict):
                    events.append((base_offset + pos, ev))
            except ValueError:
                pass
        pos = nl + 1
    return events, pos
