"""Datastores, datasets and data references (the SDK's ``azureml.data`` and ``azureml.core.Dataset/Datastore``).

Names load lazily, so ``import nbml.data`` in a training script stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Datastore": "nbml.data.datastore",
    "Dataset": "nbml.data.dataset",
    "DataReference": "nbml.data.data_reference",
    "DataReferenceConfiguration": "nbml.data.data_reference",
    "DataPath": "nbml.data.datapath",
    "DataPathComputeBinding": "nbml.data.datapath",
    "TabularDataset": "nbml.data.tabular_dataset",
    "FileDataset": "nbml.data.file_dataset",
    "TabularDatasetFactory": "nbml.data.dataset_factory",
    "FileDatasetFactory": "nbml.data.dataset_factory",
    "DatasetConsumptionConfig": "nbml.data.consumption",
    "DatastoreError": "nbml.data._fs",
    "DatasetError": "nbml.data.abstract_dataset",
}

__all__ = sorted(_EXPORTS)
__version__ = __import__("nbml").__version__  # nbml's (notebooks print azureml.data.__version__)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbml.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
