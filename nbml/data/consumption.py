"""How a dataset reaches a run (``azureml.data.dataset_consumption_config``).

``dataset.as_named_input('train')`` names it: inside the script ``Run.get_context().input_datasets['train']``
is a path (a FileDataset mounted or downloaded) or a dataset whose files are on the compute (``direct``).
"""

from __future__ import annotations

import re
from typing import Any

from nbml.data.abstract_dataset import AbstractDataset, DatasetError


class DatasetConsumptionConfig:
    def __init__(self, name: str, dataset: AbstractDataset, mode: str = "direct",
                 path_on_compute: str | None = None) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
            raise DatasetError(f"Input name {name!r} must be a Python-style identifier (letters, digits, '_').")
        self.name = name
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        self._files_only("as_mount")
        return DatasetConsumptionConfig(self.name, self.dataset, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        self._files_only("as_download")
        return DatasetConsumptionConfig(self.name, self.dataset, "download", path_on_compute)

    def _files_only(self, what: str) -> None:
        if self.dataset._kind != "file":
            raise DatasetError(f"{what} is for FileDatasets; pass a TabularDataset with as_named_input(name) and "
                               "read it in the script with Run.get_context().input_datasets[name].")

    def binding(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "path_on_compute": self.path_on_compute,
                "dataset": self.dataset.definition, "registration": self.dataset._registration or None}

    def __repr__(self) -> str:
        return f"DatasetConsumptionConfig(name={self.name!r}, mode={self.mode!r})"
