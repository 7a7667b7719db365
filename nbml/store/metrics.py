"""Metric records and event-log ingestion: batched, idempotent by the event's byte offset."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbml.store.db import Database

METRIC_KINDS = ("scalar", "list", "row", "table", "image")


def aggregate(rows: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """Fold metric rows (name, kind, value) the way the Azure ML SDK's get_metrics() shows them.

    A scalar logged once is a value, logged again it becomes a list; lists extend; rows and tables become
    a dict of columns; an image is the path of its file.
    """
    out: dict[str, Any] = {}
    seen_scalar: dict[str, int] = {}
    for name, kind, value in rows:
        if kind == "scalar":
            n = seen_scalar.get(name, 0)
            if n == 0:
                out[name] = value
            elif n == 1:
                out[name] = [out[name], value]
            else:
                out[name].append(value)
            seen_scalar[name] = n + 1
        elif kind == "list":
            out.setdefault(name, [])
            out[name].extend(value if isinstance(value, list) else [value])
        elif kind in ("row", "table"):
            table = out.setdefault(name, {})
            if kind == "row":
                value = {k: [v] for k, v in value.items()}
            for col, vals in value.items():
                table.setdefault(col, []).extend(vals)
        else:
            out[name] = value
    return out


class MetricsMixin:
    db: Database

    def log_metric(self, run_id: str, name: str, kind: str, value: Any, step: int | None = None) -> None:
        if kind not in METRIC_KINDS:
            raise ValueError(f"unknown metric kind {kind!r}")
        with self.db.tx() as c:
            c.execute(
                "INSERT INTO metrics(run_id, name, kind, value_json, step, logged_at) VALUES (?,?,?,?,?,?)",
                (run_id, name, kind, json.dumps(value), step, time.time()),
            )

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
                metrics.append(
                    (target, ev["name"], ev.get("kind", "scalar"), json.dumps(ev.get("value")), ev.get("step"),
                     ev.get("t", now), f"{owner_run_id}@{offset}")
                )
            elif etype == "tags":
                tags += [(target, k, None if v is None else str(v)) for k, v in (ev.get("tags") or {}).items()]
            elif etype == "remove_tags":
                removed += [(target, k) for k in ev.get("keys") or []]
            elif etype == "properties":
                props += [
                    (target, k, v if isinstance(v, str) else json.dumps(v)) for k, v in (ev.get("props") or {}).items()
                ]
            elif etype == "child":
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
                if end.get("type") == "child_end":
                    c.execute(
                        "UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ? AND status = 'Running'",
                        (end.get("status", "Completed"), end.get("t", now), end["run"]),
                    )
            c.executemany(
                """INSERT OR IGNORE INTO metrics(run_id, name, kind, value_json, step, logged_at, source_key)
                   VALUES (?,?,?,?,?,?,?)""",
                metrics,
            )
            c.executemany("INSERT OR REPLACE INTO tags(run_id, key, value) VALUES (?,?,?)", tags)
            c.executemany("DELETE FROM tags WHERE run_id = ? AND key = ?", removed)
            c.executemany("INSERT OR REPLACE INTO properties(run_id, key, value) VALUES (?,?,?)", props)
            c.execute("UPDATE runs SET events_offset = ? WHERE run_id = ? AND events_offset < ?",
                      (new_offset, owner_run_id, new_offset))

    def metric_rows(self, run_id: str, name: str | None = None, after_id: int = 0) -> list[dict[str, Any]]:
        """Raw metric rows in logging order, from `after_id` on (for views that patch only what changed)."""
        sql = "SELECT id, name, kind, value_json, step, logged_at FROM metrics WHERE run_id = ? AND id > ?"
        params: list[Any] = [run_id, after_id]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        rows = self.db.query(sql + " ORDER BY id", tuple(params))
        return [
            {"id": r["id"], "name": r["name"], "kind": r["kind"], "value": json.loads(r["value_json"]),
             "step": r["step"], "logged_at": r["logged_at"]}
            for r in rows
        ]

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        sql = "SELECT name, kind, value_json FROM metrics WHERE run_id = ?"
        params: tuple[Any, ...] = (run_id,)
        if name is not None:
            sql += " AND name = ?"
            params = (run_id, name)
        rows = self.db.query(sql + " ORDER BY id", params)
        return aggregate((r["name"], r["kind"], json.loads(r["value_json"])) for r in rows)

    def metrics_for_runs(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Metrics of many runs in one query (the AutoML table reads every child at once)."""
        out: dict[str, list[tuple[str, str, Any]]] = {r: [] for r in run_ids}
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start : start + 500])
            rows = self.db.query(
                f"SELECT run_id, name, kind, value_json FROM metrics WHERE run_id IN ({','.join('?' * len(chunk))})"
                " ORDER BY id",
                tuple(chunk),
            )
            for r in rows:
                out[r["run_id"]].append((r["name"], r["kind"], json.loads(r["value_json"])))
        return {rid: aggregate(rows) for rid, rows in out.items()}

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
