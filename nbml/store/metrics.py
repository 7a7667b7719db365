"""Metric records and event-log ingestion: batched, idempotent by the event's byte offset.

Each row keeps the value as JSON (or, when bigger than MAX_INLINE_BYTES, in a file of the run that the row
names), a numeric copy for SQL (`value_num`, NULL when the value is not a number), and every write keeps
`metric_latest` (run, name -> latest number, min, max, count, kind) current in the same transaction, so
"best child by metric" and the latest values of many runs are single queries. Whatever inserts into
`metrics` must call `_update_latest` in its transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.store.metric_values import (
    MAX_INLINE_BYTES,
    METRIC_KINDS,
    aggregate,
    dumps,
    numeric,
    read_value,
    valid_value_file,
    write_value_file,
)

if TYPE_CHECKING:
    from nbml.store.db import Database

__all__ = ["METRIC_KINDS", "MetricsMixin", "aggregate"]

_GOALS = {"maximize": "DESC", "max": "DESC", "minimize": "ASC", "min": "ASC"}

# Fold the rows of one (run, name) written since metric_latest last saw it (by id, so rows that an
# idempotent re-ingest skipped are not counted twice) into its latest-value record.
_FOLD_NEW_ROWS = """
INSERT INTO metric_latest(run_id, name, kind, min_num, max_num, count, last_id)
SELECT run_id, name, CASE WHEN COUNT(DISTINCT kind) > 1 THEN 'mixed' ELSE MIN(kind) END,
       MIN(value_num), MAX(value_num), COUNT(*), MAX(id)
FROM metrics WHERE run_id = ?1 AND name = ?2
     AND id > COALESCE((SELECT last_id FROM metric_latest WHERE run_id = ?1 AND name = ?2), 0)
GROUP BY run_id, name
ON CONFLICT(run_id, name) DO UPDATE SET
    kind = CASE WHEN metric_latest.kind = excluded.kind THEN metric_latest.kind ELSE 'mixed' END,
    min_num = CASE WHEN excluded.min_num IS NULL THEN metric_latest.min_num
                   WHEN metric_latest.min_num IS NULL OR excluded.min_num < metric_latest.min_num
                   THEN excluded.min_num ELSE metric_latest.min_num END,
    max_num = CASE WHEN excluded.max_num IS NULL THEN metric_latest.max_num
                   WHEN metric_latest.max_num IS NULL OR excluded.max_num > metric_latest.max_num
                   THEN excluded.max_num ELSE metric_latest.max_num END,
    count = metric_latest.count + excluded.count,
    last_id = excluded.last_id
"""
_LATEST_VALUE = """
UPDATE metric_latest SET value_num = (SELECT value_num FROM metrics WHERE metrics.id = metric_latest.last_id)
WHERE run_id = ?1 AND name = ?2
"""


def _update_latest(c: Any, pairs: Iterable[tuple[str, str]]) -> None:
    """Bring metric_latest up to date for these (run id, name) pairs; two indexed statements per pair."""
    for pair in dict.fromkeys(pairs):
        c.execute(_FOLD_NEW_ROWS, pair)
        c.execute(_LATEST_VALUE, pair)
_ROW_COLUMNS = "id, name, kind, value_json, value_file, step, logged_at"


class MetricsMixin:
    db: Database
    root: Path

    def _encode(self, run_id: str, name: str, value: Any) -> tuple[str, str | None]:
        """(value_json, value_file): a value too big for a row is written to a file of the run."""
        text = dumps(value)
        if len(text) <= MAX_INLINE_BYTES:
            return text, None
        return "null", write_value_file(self.root, run_id, name, text)

    def _values(self, rows: Sequence[tuple[Any, ...]], at: int) -> list[Any]:
        """Values of rows whose value_json and value_file are at indexes `at`, `at + 1`, decoded in one parse.

        One json.loads over all the rows' text (joined as an array) costs a fraction of one call per row,
        which is what keeps a 100,000-metric run's full read well under a second.
        """
        try:
            values = json.loads("[" + ",".join(r[at] if r[at] is not None else "null" for r in rows) + "]")
        except ValueError:  # a row that isn't JSON (written by hand): decode one by one, each read as best it can
            values = [read_value(self.root, r[at], None) for r in rows]
        for i, r in enumerate(rows):
            if r[at + 1]:
                values[i] = read_value(self.root, None, r[at + 1])
        return values  # type: ignore[no-any-return]

    def log_metric(self, run_id: str, name: str, kind: str, value: Any, step: int | None = None) -> None:
        if kind not in METRIC_KINDS:
            raise ValueError(f"unknown metric kind {kind!r}; use one of {', '.join(METRIC_KINDS)}")
        value_json, value_file = self._encode(run_id, name, value)
        with self.db.tx() as c:
            c.execute(
                """INSERT INTO metrics(run_id, name, kind, value_json, value_num, value_file, step, logged_at)
                   VALUES (?,?,?,?,?,?,?,?)""",
                (run_id, name, kind, value_json, numeric(kind, value), value_file, step, time.time()),
            )
            _update_latest(c, [(run_id, name)])

    def _metric_record(self, owner: str, offset: int, ev: dict[str, Any], now: float) -> tuple[Any, ...] | None:
        """The row for a metric event of `owner`'s log, or None for an event without a name."""
        name, kind = ev.get("name"), ev.get("kind", "scalar")
        if not isinstance(name, str) or not isinstance(kind, str):
            return None
        target = ev.get("run") or owner
        rel = ev.get("value_file")
        if rel is not None:
            # Logged as a file of the job (copied back under the owner's run folder): the row points at it.
            value_json, value_file, number = "null", (f"runs/{owner}/{rel}" if valid_value_file(rel) else None), None
            if value_file is None:
                value_json = dumps(f"<refused file reference {rel!r}: not under metrics/>")
        else:
            value = ev.get("value")
            value_json, value_file = self._encode(target, name, value)
            number = numeric(kind, value)
        step = ev.get("step") if isinstance(ev.get("step"), int) else None
        t = ev.get("t") if isinstance(ev.get("t"), (int, float)) else now
        return (target, name, kind, value_json, number, value_file, step, t, f"{owner}@{offset}")

    def ingest(self, owner_run_id: str, events: Sequence[tuple[int, dict[str, Any]]], new_offset: int) -> None:
        """Write a batch of events read from `owner_run_id`'s event log and advance its offset, atomically.

        Each event's byte offset is its identity, so reading the same bytes twice (after a reconnect or a
        supervisor restart) writes nothing twice.
        """
        now = time.time()
        metrics, tags, props, removed = [], [], [], []
        children = []
        for offset, ev in events:
            target = ev.get("run") or owner_run_id
            etype = ev.get("type")
            if etype == "metric":
                record = self._metric_record(owner_run_id, offset, ev, now)
                if record is not None:
                    metrics.append(record)
            elif etype == "tags":
                tags += [(target, k, None if v is None else str(v)) for k, v in (ev.get("tags") or {}).items()]
            elif etype == "remove_tags":
                removed += [(target, k) for k in ev.get("keys") or []]
            elif etype == "properties":
                props += [
                    (target, k, v if isinstance(v, str) else json.dumps(v)) for k, v in (ev.get("props") or {}).items()
                ]
            elif etype == "child" and isinstance(ev.get("run"), str):
                children.append(ev)
        with self.db.tx() as c:
            for ev in children:
                parent = c.execute("SELECT experiment, compute_target FROM runs WHERE run_id = ?", (owner_run_id,)).fetchone()
                if parent is None:
                    continue
                c.execute(
                    """INSERT OR IGNORE INTO runs(run_id, experiment, parent_id, kind, status, compute_target,
                       display_name, created_at, started_at) VALUES (?,?,?,?,?,?,?,?,?)""",
                    (ev["run"], parent["experiment"], ev.get("parent") or owner_run_id, "child", "Running",
                     parent["compute_target"], ev.get("name"), ev.get("t", now), ev.get("t", now)),
                )
            for _offset, end in events:
                if end.get("type") == "child_end" and isinstance(end.get("run"), str):
                    c.execute(
                        "UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ? AND status = 'Running'",
                        (end.get("status", "Completed"), end.get("t", now), end["run"]),
                    )
            c.executemany(
                """INSERT OR IGNORE INTO metrics(run_id, name, kind, value_json, value_num, value_file, step,
                   logged_at, source_key) VALUES (?,?,?,?,?,?,?,?,?)""",
                metrics,
            )
            _update_latest(c, ((m[0], m[1]) for m in metrics))
            c.executemany("INSERT OR REPLACE INTO tags(run_id, key, value) VALUES (?,?,?)", tags)
            c.executemany("DELETE FROM tags WHERE run_id = ? AND key = ?", removed)
            c.executemany("INSERT OR REPLACE INTO properties(run_id, key, value) VALUES (?,?,?)", props)
            c.execute("UPDATE runs SET events_offset = ? WHERE run_id = ? AND events_offset < ?",
                      (new_offset, owner_run_id, new_offset))

    def metric_rows(self, run_id: str, name: str | None = None, after_id: int = 0) -> list[dict[str, Any]]:
        """Raw metric rows in logging order, from `after_id` on (for views that patch only what changed)."""
        sql = f"SELECT {_ROW_COLUMNS} FROM metrics WHERE run_id = ? AND id > ?"
        params: list[Any] = [run_id, after_id]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        rows = self.db.tuples(sql + " ORDER BY id", tuple(params))
        values = self._values(rows, 3)
        return [{"id": r[0], "name": r[1], "kind": r[2], "value": v, "step": r[5], "logged_at": r[6]}
                for r, v in zip(rows, values, strict=True)]

    def metric_records(self, run_id: str, after_id: int = 0) -> list[tuple[int, str, str, str, Any, Any]]:
        """(id, name, kind, value as JSON text, step, logged_at) of rows after `after_id`, in logging order.

        The JSON text is the stored one (a file's for a value kept in a file), not decoded: a reader that
        answers in JSON (the REST route) splices it as is instead of decoding and re-encoding 100,000 values.
        """
        rows = self.db.tuples(f"SELECT {_ROW_COLUMNS} FROM metrics WHERE run_id = ? AND id > ? ORDER BY id",
                              (run_id, after_id))
        return [(r[0], r[1], r[2], r[3] if not r[4] else dumps(read_value(self.root, None, r[4])), r[5], r[6])
                for r in rows]

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        sql = "SELECT name, kind, value_json, value_file FROM metrics WHERE run_id = ?"
        params: tuple[Any, ...] = (run_id,)
        if name is not None:
            sql += " AND name = ?"
            params = (run_id, name)
        rows = self.db.tuples(sql + " ORDER BY id", params)
        return aggregate((r[0], r[1], v) for r, v in zip(rows, self._values(rows, 2), strict=True))

    def metrics_for_runs(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Metrics of many runs in one query (the AutoML table reads every child at once)."""
        out: dict[str, list[tuple[str, str, Any]]] = {r: [] for r in run_ids}
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start : start + 500])
            rows = self.db.tuples(
                "SELECT name, kind, value_json, value_file, run_id FROM metrics"
                f" WHERE run_id IN ({','.join('?' * len(chunk))}) ORDER BY id",
                tuple(chunk),
            )
            for r, v in zip(rows, self._values(rows, 2), strict=True):
                out[r[4]].append((r[0], r[1], v))
        return {rid: aggregate(rows) for rid, rows in out.items()}

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """{run id: {name: {"value", "min", "max", "count", "kind", "last_id"}}} from the latest-value table.

        `value` is the latest logged value when it is a number (None when it is not: a string, a list, a row,
        NaN); `kind` is the kind logged, or "mixed" when one name was logged with several kinds. One indexed
        read however many metrics each run holds: what listings need (a primary metric per run).
        """
        out: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in run_ids}
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start : start + 500])
            rows = self.db.query(
                "SELECT run_id, name, kind, value_num, min_num, max_num, count, last_id FROM metric_latest"
                f" WHERE run_id IN ({','.join('?' * len(chunk))}) ORDER BY last_id",
                tuple(chunk),
            )
            for r in rows:
                out[r["run_id"]][r["name"]] = {"value": r["value_num"], "min": r["min_num"], "max": r["max_num"],
                                               "count": r["count"], "kind": r["kind"], "last_id": r["last_id"]}
        return out

    def best_child(self, parent_id: str, metric: str, goal: str = "maximize", *, value: str = "latest",
                   statuses: Sequence[str] | None = None) -> dict[str, Any] | None:
        """The child run of `parent_id` with the best numeric `metric`, as its run record plus `metric_value`.

        `goal` is "maximize" or "minimize" (any case); `value="latest"` judges each child by the last value it
        logged (AutoML's one score, HyperDrive's final report), `value="best"` by its best value ever.
        `statuses` keeps only children in those states (e.g. ["Completed"]). None when no child logged a
        number under that name. Ties go to the child created first.
        """
        order = _GOALS.get(goal.lower())
        if order is None:
            raise ValueError(f"goal={goal!r} is not a goal; use 'maximize' or 'minimize'")
        if value not in ("latest", "best"):
            raise ValueError(f"value={value!r}: use 'latest' (the last value logged) or 'best' (the best ever)")
        column = "l.value_num" if value == "latest" else ("l.max_num" if order == "DESC" else "l.min_num")
        sql = (f"SELECT r.*, {column} AS metric_value FROM runs r JOIN metric_latest l"
               f" ON l.run_id = r.run_id AND l.name = ? WHERE r.parent_id = ? AND {column} IS NOT NULL")
        params: list[Any] = [metric, parent_id]
        if statuses is not None:
            sql += f" AND r.status IN ({','.join('?' * len(statuses))})"
            params += list(statuses)
        row = self.db.one(sql + f" ORDER BY {column} {order}, r.created_at, r.run_id LIMIT 1", tuple(params))
        return dict(row) if row is not None else None

    # -- snapshot hash cache -------------------------------------------------------------------
    def cached_hashes(self, paths: Sequence[str]) -> dict[str, tuple[int, int, str]]:
        out: dict[str, tuple[int, int, str]] = {}
        for start in range(0, len(paths), 500):
            chunk = list(paths[start : start + 500])
            rows = self.db.query(
                f"SELECT path, size, mtime_ns, sha256 FROM snapshot_cache WHERE path IN ({','.join('?' * len(chunk))})",
                tuple(chunk),
            )
            out.update({r["path"]: (r["size"], r["mtime_ns"], r["sha256"]) for r in rows})
        return out

    def put_hashes(self, entries: Sequence[tuple[str, int, int, str]]) -> None:
        if entries:
            with self.db.tx() as c:
                c.executemany(
                    "INSERT OR REPLACE INTO snapshot_cache(path, size, mtime_ns, sha256) VALUES (?,?,?,?)", entries
                )
