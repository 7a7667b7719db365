"""What Tabular and File datasets share: a JSON definition (sources + steps), registration and versions.

A definition is data, not code, so it is stored as is in the workspace (``Dataset.register``), shipped in a
run's config, and read again inside the job::

    {"kind": "tabular" | "file",
     "sources": [{"datastore": NAME, "path": PATTERN} | {"url": URL} | {"local": PATH} | {"job": RELPATH}],
     "format": {"type": "delimited", "separator": ",", "header": true, ...} | {"type": "parquet"},
     "steps": [{"op": "take", "n": 5}, {"op": "drop_columns", "columns": [...]}, ...]}

Datasets are lazy: every operation returns a new dataset with one more step; data is read only by
``to_pandas_dataframe`` / ``download`` / ``to_path``.
"""

from __future__ import annotations

import copy
import os
import re
from typing import TYPE_CHECKING, Any

from nbml.data import registry
from nbml.data._fs import DatastoreError, Location

if TYPE_CHECKING:
    from nbml.data.consumption import DatasetConsumptionConfig
    from nbml.workspace import Workspace


class DatasetError(DatastoreError):
    """A dataset can't be built, read or found; the message says why and what to do."""


def source_of(path: Any, ws: Workspace | None) -> tuple[dict[str, Any], Workspace | None]:
    """One dataset source from what the SDK accepts: (datastore, path), DataPath, DataReference, URL, local path."""
    from nbml.data.data_reference import DataReference
    from nbml.data.datapath import DataPath
    from nbml.data.datastore import Datastore

    if isinstance(path, tuple) and len(path) == 2 and isinstance(path[0], Datastore):
        return {"datastore": path[0].name, "path": str(path[1] or "")}, path[0].workspace
    if isinstance(path, DataPath):
        return {"datastore": path.datastore.name, "path": path.path_on_datastore}, path.datastore.workspace
    if isinstance(path, DataReference):
        return {"datastore": path.datastore.name, "path": path.path_on_datastore or ""}, path.datastore.workspace
    if isinstance(path, Datastore):
        return {"datastore": path.name, "path": ""}, path.workspace
    if isinstance(path, str | os.PathLike):
        text = str(path)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) and not text.startswith("file://"):
            return {"url": text}, ws
        text = text.removeprefix("file://")
        return {"local": os.path.abspath(os.path.expanduser(text))}, ws
    raise DatasetError(f"Can't read data from {path!r}: give (datastore, 'path/*.csv'), a DataPath, a URL or a "
                       "local path (or a list of them).")


def sources_of(path: Any) -> tuple[list[dict[str, Any]], Workspace | None]:
    items = path if isinstance(path, list) else [path]
    if not items:
        raise DatasetError("path is empty: give at least one (datastore, 'path') or URL.")
    ws = None
    out = []
    for item in items:
        src, found = source_of(item, ws)
        ws = ws or found
        out.append(src)
    return out, ws


def resolve_source(src: dict[str, Any], ws: Workspace | None) -> tuple[Location, list[tuple[str, str]]]:
    """The filesystem location of a source and its files (full path, path relative to the source's base)."""
    from fsspec.implementations.local import LocalFileSystem

    from nbml.data._files import list_files

    if "datastore" in src:
        if ws is None:
            from nbml.workspace import Workspace

            ws = Workspace.from_config()
        from nbml.data._fs import location
        from nbml.data.datastore import datastore_record

        loc = location(datastore_record(ws, src["datastore"]))
        return loc, list_files(loc, src["path"])
    if "local" in src or "job" in src:
        path = src.get("local") or os.path.join(os.environ.get("NBML_JOB_DIR") or os.getcwd(), src["job"])
        loc = Location(LocalFileSystem(), "/", "file://", True)
        return loc, list_files(loc, path)
    url = src["url"]
    try:
        import fsspec

        fs, root = fsspec.core.url_to_fs(url)
        loc = Location(fs, "", url, False)
        if fs.isfile(root):
            return loc, [(root, root.rstrip("/").rsplit("/", 1)[-1])]
        return loc, list_files(Location(fs, root, url, False), "")
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(
            f"Can't read {url}: {type(exc).__name__}: {exc}. nbml reads URLs through fsspec; when this machine "
            "can't reach it (no internet, or no fsspec driver), download the file where you can, then "
            "ws.get_default_datastore().upload_files([...]) it and read (datastore, 'path') instead."
        ) from None


class AbstractDataset:
    """Base of TabularDataset and FileDataset."""

    _kind = ""

    def __init__(self, definition: dict[str, Any], workspace: Workspace | None = None,
                 registration: dict[str, Any] | None = None) -> None:
        self._definition = definition
        self._workspace = workspace
        self._registration = registration or {}

    # -- identity ----------------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        return self._registration.get("name")

    @property
    def version(self) -> int | None:
        return self._registration.get("version")

    @property
    def id(self) -> str | None:
        return self._registration.get("id")

    @property
    def description(self) -> str | None:
        return self._registration.get("description")

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self._registration.get("tags") or {})

    @property
    def definition(self) -> dict[str, Any]:
        return copy.deepcopy(self._definition)

    def _with_step(self, step: dict[str, Any]) -> Any:
        definition = self.definition
        definition.setdefault("steps", []).append(step)
        return type(self)(definition, self._workspace)

    # -- registry ------------------------------------------------------------------------------------
    def register(self, workspace: Workspace, name: str, description: str | None = None,
                 tags: dict[str, Any] | None = None, create_new_version: bool = False) -> Any:
        """Save this definition under `name` (a new version if it differs and `create_new_version`)."""
        if not name or not isinstance(name, str):
            raise DatasetError("register needs name= (any text, e.g. 'diabetes dataset').")
        try:
            rec = registry.add_dataset(workspace.store, name, self._kind, self._definition, description, tags,
                                       create_new_version)
        except ValueError:
            raise DatasetError(f"A different dataset is already registered as {name!r}; pass "
                               "create_new_version=True to add it as a new version.") from None
        return from_record(rec, workspace)

    def unregister_all_versions(self) -> None:
        if self._workspace is not None and self.name:
            with self._workspace.store.db.tx() as c:
                c.execute("DELETE FROM datasets WHERE name = ?", (self.name,))

    # -- runs ----------------------------------------------------------------------------------------
    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        from nbml.data.consumption import DatasetConsumptionConfig

        return DatasetConsumptionConfig(name, self)

    def _files(self) -> list[tuple[Location, str, str]]:
        out = []
        for src in self._definition["sources"]:
            loc, files = resolve_source(src, self._workspace)
            out += [(loc, full, rel) for full, rel in files]
        if not out:
            raise DatasetError(f"The dataset's path matches no file: {self._definition['sources']}.")
        return out

    def __repr__(self) -> str:
        reg = f", name={self.name!r}, version={self.version}" if self.name else ""
        return f"{type(self).__name__}(sources={self._definition['sources']}{reg})"


def from_record(rec: dict[str, Any], ws: Workspace) -> Any:
    from nbml.data.file_dataset import FileDataset
    from nbml.data.tabular_dataset import TabularDataset

    cls = TabularDataset if rec["kind"] == "tabular" else FileDataset
    return cls(rec["definition"], ws, {k: rec[k] for k in ("name", "version", "id", "description", "tags")})


def from_definition(definition: dict[str, Any], ws: Workspace | None = None) -> Any:
    from nbml.data.file_dataset import FileDataset
    from nbml.data.tabular_dataset import TabularDataset

    cls = TabularDataset if definition.get("kind") == "tabular" else FileDataset
    return cls(definition, ws)
