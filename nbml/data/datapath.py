"""DataPath: a path in a datastore, usable as a dataset source or a run input (``azureml.data.datapath``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbml.data.data_reference import DataReference
    from nbml.data.datastore import Datastore


class DataPath:
    """``DataPath(datastore, path_on_datastore)``; ``Dataset.File.from_files(DataPath(...))`` reads it."""

    def __init__(self, datastore: Datastore | None = None, path_on_datastore: str | None = None,
                 name: str | None = None) -> None:
        if datastore is None:
            raise ValueError("DataPath needs a datastore (e.g. ws.get_default_datastore()).")
        self.datastore = datastore
        self.path_on_datastore = path_on_datastore or ""
        self.name = name

    def create_data_reference(self, data_reference_name: str | None = None,
                              datapath_compute_binding: DataPathComputeBinding | None = None) -> DataReference:
        binding = datapath_compute_binding or DataPathComputeBinding()
        ref = self.datastore.path(self.path_on_datastore, data_reference_name or self.name)
        if binding.mode == "download":
            return ref.as_download(binding.path_on_compute, binding.overwrite)
        return ref.as_mount()

    def as_mount(self) -> DataReference:
        return self.create_data_reference()

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        return self.create_data_reference(None, DataPathComputeBinding("download", path_on_compute))

    def __repr__(self) -> str:
        return f"DataPath(datastore={self.datastore.name!r}, path_on_datastore={self.path_on_datastore!r})"


class DataPathComputeBinding:
    """How a DataPath reaches the compute: ``mount`` (default) or ``download``."""

    def __init__(self, mode: str = "mount", path_on_compute: str | None = None, overwrite: bool = False) -> None:
        self.mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite
