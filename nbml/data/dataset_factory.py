"""``Dataset.Tabular`` and ``Dataset.File``: build datasets from datastore paths, URLs or local paths."""

from __future__ import annotations

from typing import Any

from nbml.data.abstract_dataset import DatasetError, sources_of
from nbml.data.file_dataset import FileDataset
from nbml.data.tabular_dataset import TabularDataset


def _check(ds: TabularDataset | FileDataset, validate: bool) -> None:
    """Read the first file now (as the SDK validates), so a wrong path fails here, not in a run."""
    if not validate:
        return
    urls = [s for s in ds._definition["sources"] if "url" in s]
    if urls and len(urls) == len(ds._definition["sources"]):
        return  # URLs are read when the data is used: they may be unreachable from here but not from the target
    ds._files()


class TabularDatasetFactory:
    @staticmethod
    def from_delimited_files(path: Any, validate: bool = True, include_path: bool = False,
                             infer_column_types: bool = True, set_column_types: Any = None, separator: str = ",",
                             header: Any = True, partition_format: str | None = None, encoding: str = "utf8",
                             **_: Any) -> TabularDataset:
        sources, ws = sources_of(path)
        header_flag = header if isinstance(header, bool) else str(header).lower() not in ("no_header", "0", "false")
        fmt = {"type": "delimited", "separator": separator, "header": header_flag, "include_path": include_path,
               "partition_format": partition_format, "encoding": "utf-8" if encoding in ("utf8", None) else encoding}
        ds = TabularDataset({"kind": "tabular", "sources": sources, "format": fmt, "steps": []}, ws)
        _check(ds, validate)
        return ds

    @staticmethod
    def from_parquet_files(path: Any, validate: bool = True, include_path: bool = False,
                           set_column_types: Any = None, partition_format: str | None = None,
                           **_: Any) -> TabularDataset:
        sources, ws = sources_of(path)
        fmt = {"type": "parquet", "include_path": include_path, "partition_format": partition_format}
        ds = TabularDataset({"kind": "tabular", "sources": sources, "format": fmt, "steps": []}, ws)
        _check(ds, validate)
        return ds

    @staticmethod
    def from_sql_query(*_: Any, **__: Any) -> TabularDataset:
        raise DatasetError("SQL datastores are Azure services nbml doesn't have; run the query with pandas "
                           "(pd.read_sql), save the result as CSV or Parquet in a datastore and read that.")

    @staticmethod
    def from_json_lines_files(*_: Any, **__: Any) -> TabularDataset:
        raise DatasetError("JSON-lines datasets are not supported; read them with pandas.read_json(lines=True).")


class FileDatasetFactory:
    @staticmethod
    def from_files(path: Any, validate: bool = True, **_: Any) -> FileDataset:
        sources, ws = sources_of(path)
        ds = FileDataset({"kind": "file", "sources": sources, "steps": []}, ws)
        _check(ds, validate)
        return ds
