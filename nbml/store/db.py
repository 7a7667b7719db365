"""SQLite connection handling and schema migrations for the workspace store."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

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
    # 5: typed metric records: a numeric column (so "best child by metric" is a query), values kept in a file
    # of the run when too big for a row, rows by id for incremental reads, and the latest value of each name
    # (kept current by MetricsMixin after each write, per name and batch rather than by a per-row trigger).
    """
    ALTER TABLE metrics ADD COLUMN value_num REAL;
    ALTER TABLE metrics ADD COLUMN value_file TEXT;
    UPDATE metrics SET value_num = CASE
        WHEN kind <> 'scalar' THEN NULL
        WHEN value_json = 'Infinity' THEN 9e999
        WHEN value_json = '-Infinity' THEN -9e999
        WHEN value_json GLOB '[0-9]*' OR value_json GLOB '-[0-9]*' THEN CAST(value_json AS REAL)
    END;
    CREATE INDEX metrics_by_run_id ON metrics(run_id, id);
    CREATE TABLE metric_latest (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        value_num REAL,
        min_num REAL,
        max_num REAL,
        count INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    CREATE INDEX metric_latest_by_name ON metric_latest(name, value_num);
    INSERT INTO metric_latest(run_id, name, kind, min_num, max_num, count, last_id)
        SELECT run_id, name, CASE WHEN COUNT(DISTINCT kind) > 1 THEN 'mixed' ELSE MIN(kind) END,
               MIN(value_num), MAX(value_num), COUNT(*), MAX(id)
        FROM metrics GROUP BY run_id, name;
    UPDATE metric_latest SET value_num = (SELECT value_num FROM metrics WHERE metrics.id = metric_latest.last_id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

#: Seconds a caller waits in all for a lock held by another connection (env NBML_DB_LOCK_TIMEOUT).
DEFAULT_LOCK_TIMEOUT = 30.0
#: SQLite's own wait per attempt; short, so that the deadline above is what bounds a caller.
BUSY_SLICE = 0.25

T = TypeVar("T")


def lock_timeout() -> float:
    """The total lock wait from NBML_DB_LOCK_TIMEOUT (seconds), else DEFAULT_LOCK_TIMEOUT."""
    raw = os.environ.get("NBML_DB_LOCK_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise WorkspaceError(f"NBML_DB_LOCK_TIMEOUT={raw!r} must be a positive number of seconds, e.g. 30.")
    return value


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _connect(path: Path, slice_seconds: float = BUSY_SLICE) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=slice_seconds, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {max(1, int(slice_seconds * 1000))}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def within_deadline(path: Path, timeout: float, fn: Callable[[], T]) -> T:
    """`fn()` retried while the database is busy, for at most `timeout` seconds in all.

    Each attempt waits at most one busy slice inside SQLite, so no caller waits past the deadline by more
    than a slice; past it, the error names the database and what to look for.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if time.monotonic() >= deadline:
                raise WorkspaceError(
                    f"The workspace database {path} stayed locked for {timeout:g} s: another process holds a "
                    "write transaction on it and did not finish. Check for a stuck or stopped nbml process "
                    "(`ps -ef | grep nbml`) or a program that has nbml.db open (an sqlite3 shell, a database "
                    "browser) and end it; keep the workspace on a local disk, not a network file system. "
                    "Set NBML_DB_LOCK_TIMEOUT (seconds) to wait longer."
                ) from None
            time.sleep(0.01)


def migrate(conn: sqlite3.Connection, path: Path | None = None, timeout: float | None = None) -> None:
    """Bring the schema up to SCHEMA_VERSION; refuse a store written by a newer nbml."""
    wait = lock_timeout() if timeout is None else timeout
    where = path or Path("nbml.db")
    mode = within_deadline(where, wait, lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    if str(mode).lower() != "wal":  # pragma: no cover - only on filesystems without shared memory
        conn.execute("PRAGMA journal_mode = DELETE")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise WorkspaceError(
            f"This workspace was written by a newer nbml (schema {version}, this nbml knows {SCHEMA_VERSION}). "
            "Upgrade nbml with `pip install -U nbml`."
        )
    while version < SCHEMA_VERSION:
        within_deadline(where, wait, lambda: conn.execute("BEGIN IMMEDIATE"))
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
    """The statements of a migration; a trigger's body (BEGIN ... END) stays one statement."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        yield pending


class Database:
    """One connection per thread to the workspace's nbml.db.

    Every wait for a lock held by another connection (taking a write transaction, committing, reading while
    a rollback-journal writer holds the file) is bounded by one total deadline, `lock_timeout` seconds
    (NBML_DB_LOCK_TIMEOUT, default 30): SQLite waits in short slices and this class retries them until the
    deadline, then raises a WorkspaceError that names the database. A caller is never stuck beyond it.
    """

    def __init__(self, path: Path, lock_timeout_s: float | None = None) -> None:
        self.path = path
        self.lock_timeout = lock_timeout() if lock_timeout_s is None else lock_timeout_s
        self._slice = min(BUSY_SLICE, self.lock_timeout)
        self._local = threading.local()
        conn = _connect(path, self._slice)
        try:
            migrate(conn, path, self.lock_timeout)
        finally:
            conn.close()

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self._slice)
            self._local.conn = conn
        return conn

    def _bounded(self, fn: Callable[[], T]) -> T:
        return within_deadline(self.path, self.lock_timeout, fn)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (BEGIN IMMEDIATE) so that writers queue instead of deadlocking."""
        conn = self.conn
        self._bounded(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            self._bounded(lambda: conn.execute("COMMIT"))
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self._bounded(lambda: self.conn.execute(sql, params).fetchall())

    def tuples(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        """Rows as plain tuples: the cheapest form for reads of many thousands of rows."""

        def fetch() -> list[tuple]:
            cur = self.conn.cursor()
            cur.row_factory = None
            return cur.execute(sql, params).fetchall()

        return self._bounded(fetch)

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self._bounded(lambda: self.conn.execute(sql, params).fetchone())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
