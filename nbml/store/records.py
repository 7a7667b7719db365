"""Typed reads and writes of the workspace records (runs, metrics, tags, compute, environments, models)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nbml.status import CANCEL_REQUESTED, RUNNING, TERMINAL
from nbml.store.db import Database
from nbml.store.metrics import MetricsMixin


def _row(row: Any) -> dict[str, Any] | None:
    return dict(row) if row is not None else None


class Store(MetricsMixin):
    """All record access goes through here; every process that shows runs reads the same file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = Database(root / "nbml.db")

    # -- experiments ---------------------------------------------------------------------------
    def ensure_experiment(self, name: str) -> None:
        with self.db.tx() as c:
            c.execute("INSERT OR IGNORE INTO experiments(name, created_at) VALUES (?, ?)", (name, time.time()))

    def list_experiments(self) -> list[dict[str, Any]]:
        rows = self.db.query(
            """SELECT e.name, e.created_at, COUNT(r.run_id) AS run_count, MAX(r.created_at) AS last_run_at
               FROM experiments e LEFT JOIN runs r ON r.experiment = e.name AND r.parent_id IS NULL
               GROUP BY e.name ORDER BY COALESCE(MAX(r.created_at), e.created_at) DESC"""
        )
        return [dict(r) for r in rows]

    # -- runs ----------------------------------------------------------------------------------
    def insert_run(
        self,
        run_id: str,
        experiment: str,
        kind: str,
        compute_target: str,
        config: dict[str, Any],
        *,
        snapshot_id: str | None = None,
        parent_id: str | None = None,
        iteration: int | None = None,
        display_name: str | None = None,
        status: str = "NotStarted",
    ) -> None:
        now = time.time()
        with self.db.tx() as c:
            c.execute("INSERT OR IGNORE INTO experiments(name, created_at) VALUES (?, ?)", (experiment, now))
            c.execute(
                """INSERT INTO runs(run_id, experiment, parent_id, kind, status, compute_target, display_name,
                   iteration, config_json, snapshot_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
                (run_id, experiment, parent_id, kind, status, compute_target, display_name, iteration,
                 json.dumps(config), snapshot_id, now),
            )
            c.execute("INSERT INTO status_history(run_id, status, at) VALUES (?,?,?)", (run_id, status, now))

    def delete_run(self, run_id: str) -> None:
        """Remove a run that never started (used to undo a submit that failed half-way)."""
        with self.db.tx() as c:
            for table in ("metric_latest", "metrics", "tags", "properties", "status_history"):
                c.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return _row(self.db.one("SELECT * FROM runs WHERE run_id = ?", (run_id,)))

    def list_runs(
        self,
        experiment: str | None = None,
        status: str | Sequence[str] | None = None,
        parent_id: str | None = None,
        top_level: bool = False,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        params: list[Any] = []
        if experiment is not None:
            where.append("experiment = ?")
            params.append(experiment)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        if parent_id is not None:
            where.append("parent_id = ?")
            params.append(parent_id)
        elif top_level:
            where.append("parent_id IS NULL")
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY created_at {order}, run_id {order} LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [dict(r) for r in self.db.query(sql, tuple(params))]

    def count_runs(self, experiment: str | None = None, parent_id: str | None = None) -> int:
        if parent_id is not None:
            row = self.db.one("SELECT COUNT(*) FROM runs WHERE parent_id = ?", (parent_id,))
        elif experiment is not None:
            row = self.db.one("SELECT COUNT(*) FROM runs WHERE experiment = ? AND parent_id IS NULL", (experiment,))
        else:
            row = self.db.one("SELECT COUNT(*) FROM runs WHERE parent_id IS NULL")
        return int(row[0]) if row else 0

    def children(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT * FROM runs WHERE parent_id = ? ORDER BY COALESCE(iteration, 1e18), created_at", (run_id,)
        )
        return [dict(r) for r in rows]

    def set_status(self, run_id: str, status: str, *, error: str | None = None, detail: str | None = None) -> bool:
        """Move a run to `status`; a run already in a terminal state stays there. Returns whether it moved."""
        now = time.time()
        with self.db.tx() as c:
            row = c.execute("SELECT status, started_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None or row["status"] in TERMINAL:
                return False
            sets: list[str] = ["status = ?"]
            params: list[Any] = [status]
            if status == RUNNING and row["started_at"] is None:
                sets.append("started_at = ?")
                params.append(now)
            if status in TERMINAL:
                sets.append("ended_at = ?")
                params.append(now)
                if row["started_at"] is None:
                    sets.append("started_at = ?")
                    params.append(now)
            if error is not None:
                sets.append("error = ?")
                params.append(error)
            c.execute(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?", (*params, run_id))
            c.execute(
                "INSERT INTO status_history(run_id, status, at, detail) VALUES (?,?,?,?)", (run_id, status, now, detail)
            )
            return True

    def status_history(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT status, at, detail FROM status_history WHERE run_id = ? ORDER BY at", (run_id,))
        return [dict(r) for r in rows]

    def heartbeat(self, run_ids: Iterable[str], pid: int | None = None) -> None:
        ids = list(run_ids)
        if not ids:
            return
        pid = os.getpid() if pid is None else pid
        with self.db.tx() as c:
            c.executemany(
                "UPDATE runs SET heartbeat_at = ?, supervisor_pid = ?, supervisor_host = ? WHERE run_id = ?",
                [(time.time(), pid, socket.gethostname(), r) for r in ids],
            )

    def set_handle(self, run_id: str, handle: dict[str, Any] | None) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE runs SET handle_json = ? WHERE run_id = ?", (json.dumps(handle), run_id))

    def update_config(self, run_id: str, config: dict[str, Any]) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE runs SET config_json = ? WHERE run_id = ?", (json.dumps(config), run_id))

    def request_cancel(self, run_id: str, *, recursive: bool = True) -> list[str]:
        """Flag a run (and its active children) for cancellation; returns the ids that were flagged."""
        flagged: list[str] = []
        with self.db.tx() as c:
            pending = [run_id]
            while pending:
                rid = pending.pop()
                row = c.execute("SELECT status FROM runs WHERE run_id = ?", (rid,)).fetchone()
                if row is None or row["status"] in TERMINAL:
                    continue
                c.execute("UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", (rid,))
                c.execute(
                    "INSERT INTO status_history(run_id, status, at) VALUES (?,?,?)", (rid, CANCEL_REQUESTED, time.time())
                )
                flagged.append(rid)
                if recursive:
                    pending += [r[0] for r in c.execute("SELECT run_id FROM runs WHERE parent_id = ?", (rid,))]
        return flagged

    def cancel_requested(self, run_id: str) -> bool:
        row = self.db.one("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,))
        return bool(row and row[0])

    # -- tags and properties -------------------------------------------------------------------
    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        with self.db.tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO tags(run_id, key, value) VALUES (?,?,?)",
                [(run_id, k, None if v is None else str(v)) for k, v in tags.items()],
            )

    def remove_tags(self, run_id: str, keys: Iterable[str]) -> None:
        with self.db.tx() as c:
            c.executemany("DELETE FROM tags WHERE run_id = ? AND key = ?", [(run_id, k) for k in keys])

    def get_tags(self, run_id: str) -> dict[str, str | None]:
        return {r["key"]: r["value"] for r in self.db.query("SELECT key, value FROM tags WHERE run_id = ?", (run_id,))}

    def add_properties(self, run_id: str, props: dict[str, Any]) -> None:
        with self.db.tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO properties(run_id, key, value) VALUES (?,?,?)",
                [(run_id, k, v if isinstance(v, str) else json.dumps(v)) for k, v in props.items()],
            )

    def get_properties(self, run_id: str) -> dict[str, str | None]:
        rows = self.db.query("SELECT key, value FROM properties WHERE run_id = ?", (run_id,))
        return {r["key"]: r["value"] for r in rows}

    # -- compute targets -----------------------------------------------------------------------
    def add_compute(self, name: str, kind: str, config: dict[str, Any], state: str = "Succeeded") -> None:
        with self.db.tx() as c:
            c.execute(
                "INSERT INTO compute_targets(name, kind, config_json, state, created_at) VALUES (?,?,?,?,?)",
                (name, kind, json.dumps(config), state, time.time()),
            )

    def update_compute(self, name: str, *, config: dict[str, Any] | None = None, state: str | None = None) -> None:
        with self.db.tx() as c:
            if config is not None:
                c.execute("UPDATE compute_targets SET config_json = ? WHERE name = ?", (json.dumps(config), name))
            if state is not None:
                c.execute("UPDATE compute_targets SET state = ? WHERE name = ?", (state, name))

    def get_compute(self, name: str) -> dict[str, Any] | None:
        row = _row(self.db.one("SELECT * FROM compute_targets WHERE name = ?", (name,)))
        if row is not None:
            row["config"] = json.loads(row.pop("config_json"))
        return row

    def list_compute(self) -> list[dict[str, Any]]:
        out = []
        for r in self.db.query("SELECT * FROM compute_targets ORDER BY name"):
            d = dict(r)
            d["config"] = json.loads(d.pop("config_json"))
            out.append(d)
        return out

    def delete_compute(self, name: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM compute_targets WHERE name = ?", (name,))

    # -- environments --------------------------------------------------------------------------
    def register_environment(self, name: str, env_hash: str, spec: dict[str, Any]) -> int:
        """Record a version of a named environment; the same spec registered again keeps its version."""
        with self.db.tx() as c:
            row = c.execute(
                "SELECT version, hash FROM environments WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
            if row is not None and row["hash"] == env_hash:
                return int(row["version"])
            version = 1 if row is None else int(row["version"]) + 1
            c.execute(
                "INSERT INTO environments(name, version, hash, spec_json, created_at) VALUES (?,?,?,?,?)",
                (name, version, env_hash, json.dumps(spec), time.time()),
            )
            return version

    def get_environment(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        if version is None:
            row = self.db.one("SELECT * FROM environments WHERE name = ? ORDER BY version DESC LIMIT 1", (name,))
        else:
            row = self.db.one("SELECT * FROM environments WHERE name = ? AND version = ?", (name, version))
        return _row(row)

    def list_environments(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM environments ORDER BY name, version")]

    # -- models --------------------------------------------------------------------------------
    def add_model(self, name: str, path: str, **fields: Any) -> int:
        with self.db.tx() as c:
            row = c.execute("SELECT MAX(version) FROM models WHERE name = ?", (name,)).fetchone()
            version = int(row[0] or 0) + 1
            c.execute(
                """INSERT INTO models(name, version, run_id, path, description, framework, framework_version,
                   tags_json, properties_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)""",
                (name, version, fields.get("run_id"), path.format(version=version), fields.get("description"),
                 fields.get("framework"), fields.get("framework_version"), json.dumps(fields.get("tags") or {}),
                 json.dumps(fields.get("properties") or {}), time.time()),
            )
            return version

    def get_model(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        if version is None:
            row = self.db.one("SELECT * FROM models WHERE name = ? ORDER BY version DESC LIMIT 1", (name,))
        else:
            row = self.db.one("SELECT * FROM models WHERE name = ? AND version = ?", (name, version))
        return _row(row)

    def list_models(self, name: str | None = None) -> list[dict[str, Any]]:
        if name is None:
            rows = self.db.query("SELECT * FROM models ORDER BY name, version DESC")
        else:
            rows = self.db.query("SELECT * FROM models WHERE name = ? ORDER BY version DESC", (name,))
        return [dict(r) for r in rows]

    def delete_model(self, name: str, version: int) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM models WHERE name = ? AND version = ?", (name, version))

    # -- web services --------------------------------------------------------------------------
    def put_service(self, name: str, models: list[str], config: dict[str, Any], state: str, **fields: Any) -> None:
        now = time.time()
        with self.db.tx() as c:
            c.execute(
                """INSERT INTO services(name, models_json, config_json, state, port, pid, error, created_at, updated_at)
                   VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET models_json = excluded.models_json,
                   config_json = excluded.config_json, state = excluded.state, port = excluded.port,
                   pid = excluded.pid, error = excluded.error, updated_at = excluded.updated_at""",
                (name, json.dumps(models), json.dumps(config), state, fields.get("port"), fields.get("pid"),
                 fields.get("error"), now, now),
            )

    def update_service(self, name: str, **fields: Any) -> None:
        allowed = {"state", "port", "pid", "error"}
        sets = [f"{k} = ?" for k in fields if k in allowed]
        with self.db.tx() as c:
            c.execute(f"UPDATE services SET {', '.join([*sets, 'updated_at = ?'])} WHERE name = ?",
                      (*[v for k, v in fields.items() if k in allowed], time.time(), name))

    def get_service(self, name: str) -> dict[str, Any] | None:
        return _row(self.db.one("SELECT * FROM services WHERE name = ?", (name,)))

    def list_services(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM services ORDER BY name")]

    def delete_service(self, name: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM services WHERE name = ?", (name,))
