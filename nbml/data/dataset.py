"""``Dataset``: the entry point of the SDK's dataset API (``azureml.core.dataset.Dataset``)."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from nbml.data import registry
from nbml.data.abstract_dataset import AbstractDataset, DatasetError, from_record
from nbml.data.dataset_factory import FileDatasetFactory, TabularDatasetFactory

if TYPE_CHECKING:
    from nbml.workspace import Workspace


class Dataset(AbstractDataset):
    """``Dataset.Tabular.from_delimited_files(...)``, ``Dataset.File.from_files(...)``, ``Dataset.get_by_name``."""

    Tabular = TabularDatasetFactory
    File = FileDatasetFactory

    @staticmethod
    def get_by_name(workspace: Workspace, name: str, version: int | str = "latest") -> Any:
        ver = None if version in (None, "latest") else int(version)
        rec = registry.get_dataset(workspace.store, name, ver)
        if rec is None:
            versions = registry.dataset_versions(workspace.store, name)
            if versions:
                raise DatasetError(f"Dataset {name!r} has no version {version}; its versions: {versions}.")
            known = ", ".join(repr(r["name"]) for r in registry.list_datasets(workspace.store)) or "none"
            raise DatasetError(f"No dataset named {name!r} in workspace {workspace.name!r} (registered: {known}); "
                               "register one with dataset.register(ws, name).")
        return from_record(rec, workspace)

    @staticmethod
    def get_by_id(workspace: Workspace, id: str) -> Any:
        rec = registry.get_dataset_by_id(workspace.store, id)
        if rec is None:
            raise DatasetError(f"No dataset with id {id!r} in workspace {workspace.name!r}.")
        return from_record(rec, workspace)

    @staticmethod
    def get_all(workspace: Workspace) -> dict[str, Any]:
        return {r["name"]: from_record(r, workspace) for r in registry.list_datasets(workspace.store)}

    @staticmethod
    def list(workspace: Workspace) -> builtins.list[Any]:
        return list(Dataset.get_all(workspace).values())
