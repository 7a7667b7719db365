"""Datastore and dataset records in the workspace store (tables added by migration 3 of nbml.store.db).

Kept here rather than in nbml.store.records so that the data layer owns its queries; every write is one
BEGIN IMMEDIATE transaction, so two notebooks registering the same dataset name get distinct versions.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from nbml.store import Store


def add_datastore(store: Store, name: str, kind: str, url: str, config: dict[str, Any]) -> None:
    with store.db.tx() as c:
        c.execute("INSERT OR REPLACE INTO datastores(name, kind, url, config_json, is_default, created_at) VALUES "
                  "(?, ?, ?, ?, COALESCE((SELECT is_default FROM datastores WHERE name = ?), 0), ?)",
                  (name, kind, url, json.dumps(config), name, time.time()))


def get_datastore(store: Store, name: str) -> dict[str, Any] | None:
    row = store.db.one("SELECT * FROM datastores WHERE name = ?", (name,))
    return _datastore(row) if row is not None else None


def list_datastores(store: Store) -> list[dict[str, Any]]:
    return [_datastore(r) for r in store.db.query("SELECT * FROM datastores ORDER BY name")]


def delete_datastore(store: Store, name: str) -> None:
    with store.db.tx() as c:
        c.execute("DELETE FROM datastores WHERE name = ?", (name,))


def default_datastore_name(store: Store) -> str | None:
    row = store.db.one("SELECT name FROM datastores WHERE is_default = 1")
    return str(row["name"]) if row is not None else None


def set_default_datastore(store: Store, name: str | None) -> None:
    """Make `name` the default (None: back to the built-in workspace folder)."""
    with store.db.tx() as c:
        c.execute("UPDATE datastores SET is_default = 0")
        if name is not None:
            c.execute("UPDATE datastores SET is_default = 1 WHERE name = ?", (name,))


def _datastore(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["config"] = json.loads(out.pop("config_json") or "{}")
    return out


def add_dataset(store: Store, name: str, kind: str, definition: dict[str, Any], description: str | None,
                tags: dict[str, Any] | None, new_version: bool) -> dict[str, Any]:
    """Record a dataset version; an identical definition under the same name is returned, not duplicated."""
    text = json.dumps(definition, sort_keys=True)
    with store.db.tx() as c:
        rows = c.execute("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC", (name,)).fetchall()
        if rows and not new_version:
            latest = dict(rows[0])
            if latest["definition_json"] != text:
                raise ValueError("exists")
            return _dataset(latest)
        for row in rows:
            if row["definition_json"] == text:
                return _dataset(dict(row))
        version = (rows[0]["version"] + 1) if rows else 1
        ds_id = uuid.uuid4().hex
        c.execute("INSERT INTO datasets(name, version, id, kind, definition_json, description, tags_json, created_at)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (name, version, ds_id, kind, text, description, json.dumps(tags or {}), time.time()))
    return get_dataset(store, name, version) or {}


def get_dataset(store: Store, name: str, version: int | None = None) -> dict[str, Any] | None:
    if version is None:
        row = store.db.one("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", (name,))
    else:
        row = store.db.one("SELECT * FROM datasets WHERE name = ? AND version = ?", (name, int(version)))
    return _dataset(dict(row)) if row is not None else None


def get_dataset_by_id(store: Store, ds_id: str) -> dict[str, Any] | None:
    row = store.db.one("SELECT * FROM datasets WHERE id = ?", (ds_id,))
    return _dataset(dict(row)) if row is not None else None


def list_datasets(store: Store) -> list[dict[str, Any]]:
    rows = store.db.query("SELECT * FROM datasets d WHERE version = (SELECT MAX(version) FROM datasets "
                          "WHERE name = d.name) ORDER BY name")
    return [_dataset(dict(r)) for r in rows]


def dataset_versions(store: Store, name: str) -> list[int]:
    return [int(r["version"]) for r in store.db.query("SELECT version FROM datasets WHERE name = ? ORDER BY version",
                                                        (name,))]


def _dataset(row: dict[str, Any]) -> dict[str, Any]:
    row["definition"] = json.loads(row.pop("definition_json"))
    row["tags"] = json.loads(row.pop("tags_json") or "{}")
    return row
