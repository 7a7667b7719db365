"""The event log a training process writes and the supervisor ingests.

One JSON object per line, appended with a single write(2) on an O_APPEND descriptor, so several processes
of one job can log at once without interleaving lines. A line's byte offset is its identity: ingestion
resumes from an offset and never writes an event twice.

Event types: ``metric`` (name, kind, value, step), ``tags``, ``remove_tags``, ``properties``, ``child``
and ``child_end`` (child runs created inside a script). An optional ``run`` field names the run an event
belongs to when it isn't the job's own run.

No line is longer than MAX_EVENT_BYTES (far below the supervisor's 4 MiB read chunk): a metric value that
would make it longer is written as a file of the job (``.nbml/uploads/metrics/...``, copied back with the
run) and its event carries ``value_file`` instead of ``value``; any other event that long is refused at log
time with an error in the script's output.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from nbml.store.metric_values import MAX_INLINE_BYTES, valid_value_file

#: The longest event line a job writes; the supervisor reads the log in chunks of 4 MiB.
MAX_EVENT_BYTES = MAX_INLINE_BYTES


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


def encode(event: dict[str, Any]) -> bytes:
    """One event as its log line (NaN and infinities kept as NaN/Infinity, which json reads back)."""
    event.setdefault("t", time.time())
    return (json.dumps(event, default=_default, separators=(",", ":"), allow_nan=True) + "\n").encode()


class EventWriter:
    """Appends events to a job's events.jsonl."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event: dict[str, Any]) -> None:
        self.write_line(encode(event))

    def write_line(self, data: bytes) -> None:
        """Append one encoded line with a single write(2), so concurrent writers never interleave."""
        written = os.write(self._fd, data)
        while written < len(data):  # pragma: no cover - only on exotic filesystems
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def parse(data: bytes, base_offset: int, on_bad: Callable[[int, bytes], None] | None = None
          ) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Complete lines of `data` (read at `base_offset`) as (offset, event); returns them and bytes consumed.

    A trailing partial line is left for the next read. A line that isn't a JSON object (a process killed
    mid-write, or something else writing to the log) is not ingested; `on_bad(offset, line)` is told of it
    so the supervisor can say so in the run's log.
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
            except ValueError:
                ev = None
            if isinstance(ev, dict):
                events.append((base_offset + pos, ev))
            elif on_bad is not None:
                on_bad(base_offset + pos, bytes(line))
        pos = nl + 1
    return events, pos


def value_files(batch: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """The files (relative to the job's .nbml/uploads/) that big metric values of `batch` were written to."""
    return [e["value_file"] for _, e in batch if e.get("type") == "metric" and valid_value_file(e.get("value_file"))]
