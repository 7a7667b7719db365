"""The store: schema versioning, metric folding, idempotent ingestion."""

from __future__ import annotations

import math
import sqlite3
import threading
import time

import pytest

from nbml.errors import WorkspaceError
from nbml.runs import events
from nbml.store import SCHEMA_VERSION, Store
from nbml.store.db import MIGRATIONS, _split
from nbml.store.metrics import aggregate


def test_new_store_is_at_current_schema_in_wal_mode(tmp_path):
    Store(tmp_path)
    conn = sqlite3.connect(tmp_path / "nbml.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_from_a_newer_nbml_is_refused(tmp_path):
    Store(tmp_path)
    conn = sqlite3.connect(tmp_path / "nbml.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(WorkspaceError, match="newer nbml"):
        Store(tmp_path)


def test_metrics_fold_like_the_sdk():
    rows = [("acc", "scalar", 0.5), ("lr", "scalar", 0.1), ("acc", "scalar", 0.7), ("acc", "scalar", 0.9),
            ("l", "list", [1, 2]), ("l", "list", [3]), ("t", "row", {"a": 1, "b": 2}), ("t", "row", {"a": 3, "b": 4}),
            ("img", "image", "images/x.png")]
    assert aggregate(rows) == {"acc": [0.5, 0.7, 0.9], "lr": 0.1, "l": [1, 2, 3], "t": {"a": [1, 3], "b": [2, 4]},
                               "img": "images/x.png"}


def test_ingesting_the_same_bytes_twice_writes_nothing_twice(tmp_path):
    store = Store(tmp_path)
    store.insert_run("r1", "exp", "script", "local", {})
    log = tmp_path / "events.jsonl"
    w = events.EventWriter(str(log))
    for i in range(5):
        w.write({"type": "metric", "name": "m", "kind": "scalar", "value": i})
    w.write({"type": "tags", "tags": {"k": "v"}})
    data = log.read_bytes()
    batch, used = events.parse(data, 0)
    store.ingest("r1", batch, used)
    store.ingest("r1", batch, used)  # a reconnect re-reads the same bytes
    partial, _ = events.parse(data[:40], 0)
    store.ingest("r1", partial, 40)
    assert store.get_metrics("r1") == {"m": [0, 1, 2, 3, 4]}
    assert store.get_tags("r1") == {"k": "v"}
    assert store.get_run("r1")["events_offset"] == used


def test_parse_leaves_a_partial_line_for_the_next_read():
    data = b'{"type":"metric","name":"a","value":1}\n{"type":"met'
    batch, used = events.parse(data, 100)
    assert [off for off, _ in batch] == [100]
    assert used == data.index(b"\n") + 1


def test_terminal_status_is_final(tmp_path):
    store = Store(tmp_path)
    store.insert_run("r1", "exp", "script", "local", {})
    assert store.set_status("r1", "Running")
    assert store.set_status("r1", "Completed")
    assert not store.set_status("r1", "Failed")
    rec = store.get_run("r1")
    assert rec["status"] == "Completed" and rec["started_at"] <= rec["ended_at"]
    assert [h["status"] for h in store.status_history("r1")] == ["NotStarted", "Running", "Completed"]


def test_numpy_values_are_logged_as_plain_json():
    np = pytest.importorskip("numpy")
    assert events.jsonable({"a": np.float32(0.5), "b": np.arange(3), "c": np.int64(7)}) == {
        "a": 0.5, "b": [0, 1, 2], "c": 7}


# -- lock waits have one total deadline ------------------------------------------------------------
def _hold_write_lock(path):
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_write_waits_at_most_the_lock_deadline_then_names_the_database(tmp_path, monkeypatch):
    monkeypatch.setenv("NBML_DB_LOCK_TIMEOUT", "1")
    store = Store(tmp_path)
    store.insert_run("r1", "exp", "script", "local", {})
    other = _hold_write_lock(tmp_path / "nbml.db")  # a real second connection, as a stuck process would hold it
    try:
        started = time.monotonic()
        with pytest.raises(WorkspaceError, match=r"nbml\.db stayed locked for 1 s.*NBML_DB_LOCK_TIMEOUT"):
            store.set_tags("r1", {"k": "v"})
        assert 1.0 <= time.monotonic() - started < 2.0
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.set_tags("r1", {"k": "v"})  # nothing was left half-done: the next write goes through
    assert store.get_tags("r1") == {"k": "v"}


def test_a_lock_released_within_the_deadline_is_waited_for(tmp_path, monkeypatch):
    monkeypatch.setenv("NBML_DB_LOCK_TIMEOUT", "10")
    store = Store(tmp_path)
    store.insert_run("r1", "exp", "script", "local", {})
    other = _hold_write_lock(tmp_path / "nbml.db")
    release = threading.Timer(0.6, lambda: other.execute("COMMIT"))
    release.start()
    try:
        started = time.monotonic()
        store.set_tags("r1", {"k": "v"})
        assert 0.5 <= time.monotonic() - started < 3.0
    finally:
        release.join()
        other.close()
    assert store.get_tags("r1") == {"k": "v"}


def test_a_bad_lock_timeout_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("NBML_DB_LOCK_TIMEOUT", "soon")
    with pytest.raises(WorkspaceError, match="NBML_DB_LOCK_TIMEOUT='soon' must be a positive number"):
        Store(tmp_path)


# -- typed metric records ---------------------------------------------------------------------------
def test_a_version_2_store_is_migrated_with_numbers_and_latest_values(tmp_path):
    conn = sqlite3.connect(tmp_path / "nbml.db", isolation_level=None)
    for script in MIGRATIONS[:2]:
        for statement in _split(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO experiments VALUES ('e', 0)")
    conn.execute("INSERT INTO runs(run_id, experiment, kind, status, compute_target, created_at) "
                 "VALUES ('r', 'e', 'script', 'Completed', 'local', 0)")
    old = [("acc", "scalar", "0.5"), ("acc", "scalar", "0.9"), ("acc", "scalar", "0.7"), ("n", "scalar", "-3"),
           ("nan", "scalar", "NaN"), ("inf", "scalar", "Infinity"), ("s", "scalar", '"0.5"'),
           ("b", "scalar", "true"), ("l", "list", "[1, 2]"), ("mixed", "scalar", "1"),
           ("mixed", "row", '{"a": 1}')]
    conn.executemany("INSERT INTO metrics(run_id, name, kind, value_json, logged_at) VALUES ('r', ?, ?, ?, 0)", old)
    conn.close()

    store = Store(tmp_path)
    latest = store.latest_metrics(["r"])["r"]
    assert latest["acc"] == {"value": 0.7, "min": 0.5, "max": 0.9, "count": 3, "kind": "scalar",
                             "last_id": latest["acc"]["last_id"]}
    assert latest["n"]["value"] == -3.0 and latest["inf"]["value"] == math.inf
    assert [latest[k]["value"] for k in ("nan", "s", "b", "l", "mixed")] == [None] * 5
    assert latest["mixed"]["kind"] == "mixed" and latest["mixed"]["count"] == 2
    assert store.get_metrics("r")["mixed"] == [1, {"a": 1}]
    store.log_metric("r", "acc", "scalar", 0.95)  # new rows keep the table current
    assert store.latest_metrics(["r"])["r"]["acc"]["value"] == 0.95


def test_best_child_is_one_query_over_the_latest_values(tmp_path):
    store = Store(tmp_path)
    store.insert_run("p", "exp", "hyperdrive", "local", {})
    scores = {"c1": [0.2, 0.9, 0.5], "c2": [0.6], "c3": [float("nan")], "c4": ["n/a"], "c5": [0.7]}
    for child, values in scores.items():
        store.insert_run(child, "exp", "script", "local", {}, parent_id="p")
        for v in values:
            store.log_metric(child, "acc", "scalar", v)
        store.set_status(child, "Failed" if child == "c5" else "Completed")
    store.log_metric("c2", "loss", "row", {"epoch": 1})
    assert store.best_child("p", "acc", "MAXIMIZE")["run_id"] == "c5"
    assert store.best_child("p", "acc", "maximize", statuses=["Completed"])["metric_value"] == 0.6
    assert store.best_child("p", "acc", "maximize", value="best")["run_id"] == "c1"
    assert store.best_child("p", "acc", "minimize")["run_id"] == "c1"  # its latest, 0.5
    assert store.best_child("p", "loss", "minimize") is None  # no child logged a number under that name
    with pytest.raises(ValueError, match="'maximize' or 'minimize'"):
        store.best_child("p", "acc", "up")


def test_values_of_every_kind_round_trip_including_nan_and_big_ones(tmp_path):
    store = Store(tmp_path)
    store.insert_run("r", "exp", "script", "local", {})
    for v in (float("nan"), float("inf"), float("-inf")):
        store.log_metric("r", "special", "scalar", v)
    big = list(range(100_000))
    store.log_metric("r", "big", "list", big)  # an interactive run's big value is a file of the run too
    out = store.get_metrics("r")
    assert math.isnan(out["special"][0]) and out["special"][1:] == [math.inf, -math.inf]
    assert out["big"] == big and len(list((tmp_path / "runs" / "r" / "metrics").rglob("*.json"))) == 1
    assert [r["value"] for r in store.metric_rows("r", name="big")] == [big]
    assert store.metric_rows("r", after_id=store.metric_rows("r")[-1]["id"]) == []


def test_ingest_refuses_a_value_file_outside_the_run_and_skips_nameless_metrics(tmp_path):
    store = Store(tmp_path)
    store.insert_run("r", "exp", "script", "local", {})
    store.ingest("r", [(0, {"type": "metric", "name": "x", "value_file": "../../../etc/passwd"}),
                       (10, {"type": "metric", "value": 1}),
                       (20, {"type": "metric", "name": "y", "kind": "list", "value_file": "metrics/y/a.json"})], 30)
    out = store.get_metrics("r")
    assert out["x"].startswith("<refused file reference") and list(out) == ["x", "y"]
    assert out["y"] == ["<value kept in runs/r/metrics/y/a.json, not readable yet: FileNotFoundError>"]
    (tmp_path / "runs" / "r" / "metrics" / "y").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "metrics" / "y" / "a.json").write_text("[1, NaN]")
    assert store.get_metrics("r")["y"][0] == 1  # readable once copied back


def test_mixed_kinds_fold_without_raising():
    rows = [("m", "scalar", 0.5), ("m", "row", {"a": 1}), ("t", "table", {"a": 1}), ("t", "row", {"a": 2}),
            ("odd", "row", [1, 2]), ("u", "weird", 3)]
    assert aggregate(rows) == {"m": [0.5, {"a": 1}], "t": {"a": [1, 2]}, "odd": [[1, 2]], "u": 3}
