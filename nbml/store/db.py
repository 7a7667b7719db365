"""SQLite connection handling and schema migrations for the workspace store."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nbml.errors import WorkspaceError

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE experiments (
        name TEXT PRIMARY KEY,
        created_at REAL NOT NULL
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        experiment TEXT NOT NULL REFERENCES experiments(name),
        parent_id TEXT REFERENCES runs(run_id),
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        compute_target TEXT NOT NULL,
        display_name TEXT,
        iteration INTEGER,
        config_json TEXT NOT NULL DEFAULT '{}',
        snapshot_id TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        heartbeat_at REAL,
        supervisor_pid INTEGER,
        supervisor_host TEXT,
        handle_json TEXT,
        events_offset INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE INDEX runs_by_experiment ON runs(experiment, created_at);
    CREATE INDEX runs_by_parent ON runs(parent_id, iteration);
    CREATE INDEX runs_by_status ON runs(status);
    CREATE TABLE status_history (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        status TEXT NOT NULL,
        at REAL NOT NULL,
        detail TEXT
    );
    CREATE INDEX status_by_run ON status_history(run_id, at);
    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        value_json TEXT NOT NULL,
        step INTEGER,
        logged_at REAL NOT NULL,
        source_key TEXT
    );
    CREATE INDEX metrics_by_run ON metrics(run_id, name, id);
    CREATE UNIQUE INDEX metrics_idempotent ON metrics(run_id, source_key);
    CREATE TABLE tags (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        key TEXT NOT NULL,
        value TEXT,
        PRIMARY KEY (run_id, key)
    );
    CREATE TABLE properties (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        key TEXT NOT NULL,
        value TEXT,
        PRIMARY KEY (run_id, key)
    );
    CREATE TABLE compute_targets (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        config_json TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'Succeeded',
        created_at REAL NOT NULL
    );
    CREATE TABLE environments (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        hash TEXT NOT NULL,
        spec_json TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE models (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        run_id TEXT,
        path TEXT NOT NULL,
        description TEXT,
        framework TEXT,
        framework_version TEXT,
        tags_json TEXT NOT NULL DEFAULT '{}',
        properties_json TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE snapshot_cache (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );
    """,
    # 2: local web services (Model.deploy)
    """
    CREATE TABLE services (
        name TEXT PRIMARY KEY,
        models_json TEXT NOT NULL,
        config_json TEXT NOT NULL,
        state TEXT NOT NULL,
        port INTEGER,
        pid INTEGER,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 3: datastores (named fsspec locations, no secrets) and versioned dataset definitions (nbml.data)
    """
    CREATE TABLE datastores (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        config_json TEXT NOT NULL DEFAULT '{}',
        is_default INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE datasets (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        definition_json TEXT NOT NULL,
        description TEXT,
        tags_json TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        PRIMARY KEY (name, version)
    );
    """,
    # 4: run recovery: a supervisor (or an interactive run's holder) is its pid AND its start time; adoptions
    # counts the supervisors started to take a run over, so a run whose supervisor can't start ends Failed.
    """
    ALTER TABLE runs ADD COLUMN supervisor_started REAL;
    ALTER TABLE runs ADD COLUMN adoptions INTEGER NOT NULL DEFAULT 0;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to SCHEMA_VERSION; refuse a store written by a newer nbml."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":  # pragma: no cover - only on filesystems without shared memory
        conn.execute("PRAGMA journal_mode = DELETE")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise WorkspaceError(
            f"This workspace was written by a newer nbml (schema {version}, this nbml knows {SCHEMA_VERSION}). "
            "Upgrade nbml with `pip install -U nbml`."
        )
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current == version:
                for statement in _split(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = conn.execute("PRAGMA user_version").fetchone()[0]


def _split(script: str) -> Iterator[str]:
    for part in script.split(";"):
        if part.strip():
            yield part


class Database:
    """One connection per thread to the workspace's nbml.db, with retrying write transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        conn = _connect(path)
        try:
            migrate(conn)
        finally:
            conn.close()

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (BEGIN IMMEDIATE) so that writers queue instead of deadlocking."""
        conn = self.conn
        for attempt in range(200):
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:  # busy beyond busy_timeout: back off and retry
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(min(0.05 * (attempt + 1), 1.0))
        else:  # pragma: no cover
            raise WorkspaceError(f"The workspace database {self.path} stayed locked; is another process stuck?")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
