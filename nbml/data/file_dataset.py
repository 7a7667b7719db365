"""FileDataset: a set of files in datastores or URLs (``azureml.data.file_dataset``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.data.abstract_dataset import AbstractDataset, DatasetError

if TYPE_CHECKING:
    from nbml.data.consumption import DatasetConsumptionConfig


class FileDataset(AbstractDataset):
    """Files to download, or to hand to a run (``as_mount`` / ``as_download`` / ``as_named_input``)."""

    _kind = "file"

    def to_path(self) -> list[str]:
        """Each file's path relative to its source (``/folder/name.csv``), as the SDK lists them."""
        return [self._shown(rel) for _loc, _full, rel in self._selected()]

    def _selected(self) -> list[tuple[Any, str, str]]:
        files = self._files()
        for step in self._definition.get("steps", []):
            if step["op"] == "take":
                files = files[:step["n"]]
            elif step["op"] == "skip":
                files = files[step["n"]:]
        return files

    @staticmethod
    def _shown(rel: str) -> str:
        return "/" + rel.lstrip("/")

    def take(self, count: int) -> FileDataset:
        return self._with_step({"op": "take", "n": int(count)})

    def skip(self, count: int) -> FileDataset:
        return self._with_step({"op": "skip", "n": int(count)})

    def download(self, target_path: str | os.PathLike[str] | None = None, overwrite: bool = False) -> list[str]:
        """Copy the files into `target_path` (default: a new temporary folder); returns their local paths."""
        target = Path(target_path) if target_path is not None else Path(tempfile.mkdtemp(prefix="nbml-dataset-"))
        out = []
        for loc, full, rel in self._selected():
            dest = target / rel
            if dest.exists() and not overwrite:
                raise DatasetError(f"{dest} exists; pass overwrite=True to replace it.")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if loc.local:
                shutil.copyfile(full, dest)
            else:
                loc.fs.get_file(full, str(dest))
            out.append(str(dest))
        return out

    @contextlib.contextmanager
    def mount(self, mount_point: str | os.PathLike[str] | None = None, **_: Any) -> Iterator[_Mounted]:
        """A context whose ``mount_point`` holds the files (downloaded: nbml has no network filesystem)."""
        folder = Path(mount_point) if mount_point else Path(tempfile.mkdtemp(prefix="nbml-mount-"))
        self.download(folder, overwrite=True)
        try:
            yield _Mounted(str(folder))
        finally:
            if mount_point is None:
                shutil.rmtree(folder, ignore_errors=True)

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return self.as_named_input(self._input_name()).as_mount(path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return self.as_named_input(self._input_name()).as_download(path_on_compute)

    def _input_name(self) -> str:
        import hashlib
        import json

        if self.name:
            return "".join(c if c.isalnum() else "_" for c in self.name)
        digest = hashlib.sha256(json.dumps(self._definition, sort_keys=True).encode()).hexdigest()[:8]
        return f"input_{digest}"


class _Mounted:
    def __init__(self, mount_point: str) -> None:
        self.mount_point = mount_point

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
