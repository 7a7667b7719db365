"""The store: schema versioning, metric folding, idempotent ingestion."""

from __future__ import annotations

import sqlite3

import pytest

from nbml.errors import WorkspaceError
from nbml.runs import events
from nbml.store import SCHEMA_VERSION, Store
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
