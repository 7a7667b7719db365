"""DataReference: a datastore path handed to a run (the SDK's ``azureml.data.data_reference``).

Placed in ScriptRunConfig ``arguments``, an Estimator's ``script_params`` or ``run_config.data_references``,
it becomes, when the job starts, the path of that data on the compute target (see nbml.data.binding).
"Mount" and "download" both make the files present in the job's folder before the script starts (nbml has
no network filesystem to mount); on the local target a folder datastore is read in place.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from nbml.data._fs import DatastoreError

if TYPE_CHECKING:
    from nbml.data.datastore import Datastore

MODES = ("mount", "download", "upload")


def _ref_name(name: str | None, path: str | None) -> str:
    if name:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise DatastoreError(f"data_reference_name {name!r} must be letters, digits, '_' or '-'.")
        return name
    base = re.sub(r"[^A-Za-z0-9_]+", "_", (path or "").strip("/"))[-40:].strip("_")
    return f"{base or 'root'}_{uuid.uuid4().hex[:6]}"


class DataReference:
    """A path in a datastore and how a run gets it: ``mount`` (default) or ``download``."""

    def __init__(self, datastore: Datastore, data_reference_name: str | None = None,
                 path_on_datastore: str | None = None, mode: str = "mount", path_on_compute: str | None = None,
                 overwrite: bool = False) -> None:
        if mode not in MODES:
            raise DatastoreError(f"mode {mode!r}: use 'mount' or 'download'.")
        self.datastore = datastore
        self.path_on_datastore = path_on_datastore
        self.data_reference_name = _ref_name(data_reference_name, path_on_datastore)
        self.mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite

    def as_mount(self) -> DataReference:
        return DataReference(self.datastore, self.data_reference_name, self.path_on_datastore, "mount",
                             self.path_on_compute, self.overwrite)

    def as_download(self, path_on_compute: str | None = None, overwrite: bool = False) -> DataReference:
        return DataReference(self.datastore, self.data_reference_name, self.path_on_datastore, "download",
                             path_on_compute, overwrite)

    def as_upload(self, path_on_compute: str | None = None, overwrite: bool = False) -> DataReference:
        raise DatastoreError("as_upload (copying a run's output into a datastore) is not supported: write the "
                             "files to ./outputs, then run.download_files() and datastore.upload() them.")

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        joined = "/".join(p.strip("/") for p in (self.path_on_datastore, path) if p and p.strip("/"))
        return DataReference(self.datastore, data_reference_name, joined or None, self.mode, self.path_on_compute,
                             self.overwrite)

    def to_config(self) -> DataReferenceConfiguration:
        return DataReferenceConfiguration(self.datastore.name, self.mode, self.path_on_datastore,
                                          self.path_on_compute, self.overwrite)

    def binding(self) -> dict[str, Any]:
        """The serialisable form stored in the run's config (see nbml.data.binding)."""
        return {"name": self.data_reference_name, "mode": self.mode, "path_on_compute": self.path_on_compute,
                "datastore": self.datastore.name, "path": self.path_on_datastore or ""}

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.data_reference_name}"

    def __repr__(self) -> str:
        return (f"DataReference(datastore={self.datastore.name!r}, path_on_datastore={self.path_on_datastore!r}, "
                f"mode={self.mode!r})")


class DataReferenceConfiguration:
    """``run_config.data_references[name] = DataReferenceConfiguration(datastore_name, mode, ...)``."""

    def __init__(self, datastore_name: str | None = None, mode: str = "mount", path_on_datastore: str | None = None,
                 path_on_compute: str | None = None, overwrite: bool = False) -> None:
        if mode not in MODES:
            raise DatastoreError(f"mode {mode!r}: use 'mount' or 'download'.")
        self.data_store_name = datastore_name
        self.mode = mode
        self.path_on_datastore = path_on_datastore
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite

    def binding(self, name: str) -> dict[str, Any]:
        if not self.data_store_name:
            raise DatastoreError(f"data_references[{name!r}] names no datastore; pass datastore_name=.")
        return {"name": name, "mode": self.mode, "path_on_compute": self.path_on_compute,
                "datastore": self.data_store_name, "path": self.path_on_datastore or ""}
