"""Tabular and file datasets: reading, lazy operations, versioned registration."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from data_helpers import make_csv

from nbml.data import DataPath, Dataset, DatasetError, DatastoreError, FileDataset, TabularDataset


@pytest.fixture
def store(ws, tmp_path: Path):  # type: ignore[no-untyped-def]
    ds = ws.get_default_datastore()
    make_csv(tmp_path / "csv", "part1.csv", rows=30)
    (tmp_path / "csv" / "part2.csv").write_text("a,b,label\n100,50.0,1\n101,50.5,2\n")
    ds.upload(str(tmp_path / "csv"), target_path="tab", show_progress=False)
    return ds


def test_from_delimited_files_reads_every_match_and_the_operations_are_lazy(store):
    ds = Dataset.Tabular.from_delimited_files(path=[(store, "tab/*.csv")])
    assert isinstance(ds, TabularDataset)
    df = ds.to_pandas_dataframe()
    assert len(df) == 32 and list(df.columns) == ["a", "b", "label"]
    assert ds.take(3).to_pandas_dataframe()["a"].tolist() == [0, 1, 2]
    assert ds.skip(30).to_pandas_dataframe()["a"].tolist() == [100, 101]
    assert list(ds.drop_columns(["b"]).to_pandas_dataframe().columns) == ["a", "label"]
    assert list(ds.keep_columns("label").to_pandas_dataframe().columns) == ["label"]
    assert len(ds.filter("a >= 100").to_pandas_dataframe()) == 2
    with_path = Dataset.Tabular.from_delimited_files(DataPath(store, "tab/part2.csv"), include_path=True)
    assert with_path.to_pandas_dataframe()["Path"].tolist() == ["/part2.csv", "/part2.csv"]


def test_random_split_is_disjoint_complete_and_repeatable(store):
    ds = Dataset.Tabular.from_delimited_files(path=[(store, "tab/*.csv")])
    train, test = ds.random_split(percentage=0.75, seed=123)
    a, b = train.to_pandas_dataframe(), test.to_pandas_dataframe()
    assert len(a) == 24 and len(b) == 8
    assert sorted(a["a"].tolist() + b["a"].tolist()) == sorted(ds.to_pandas_dataframe()["a"].tolist())
    assert ds.random_split(0.75, seed=123)[0].to_pandas_dataframe().equals(a)
    with pytest.raises(DatasetError, match="between 0 and 1"):
        ds.random_split(1.5)


def test_register_versions_and_lookup(ws, store):
    ds = Dataset.Tabular.from_delimited_files(path=[(store, "tab/part1.csv")])
    one = ds.register(ws, "iris", description="first", tags={"k": "v"})
    assert (one.name, one.version, one.description, one.tags) == ("iris", 1, "first", {"k": "v"})
    assert ds.register(ws, "iris").version == 1  # the same definition again: no new version
    with pytest.raises(DatasetError, match="create_new_version=True"):
        ds.take(5).register(ws, "iris")
    two = ds.take(5).register(ws, "iris", create_new_version=True)
    assert two.version == 2
    assert len(Dataset.get_by_name(ws, "iris").to_pandas_dataframe()) == 5
    assert len(Dataset.get_by_name(ws, "iris", version=1).to_pandas_dataframe()) == 30
    assert Dataset.get_by_id(ws, one.id).version == 1
    assert set(Dataset.get_all(ws)) == {"iris"}
    with pytest.raises(DatasetError, match=r"versions: \[1, 2\]"):
        Dataset.get_by_name(ws, "iris", version=7)
    with pytest.raises(DatasetError, match="No dataset named 'nope'.*'iris'"):
        Dataset.get_by_name(ws, "nope")


def test_file_dataset_lists_downloads_and_mounts(store, tmp_path: Path):
    files = Dataset.File.from_files(path=[(store, "tab/")])
    assert isinstance(files, FileDataset)
    assert files.to_path() == ["/part1.csv", "/part2.csv"]
    got = files.download(target_path=str(tmp_path / "dl"))
    assert sorted(Path(p).name for p in got) == ["part1.csv", "part2.csv"]
    with pytest.raises(DatasetError, match="overwrite=True"):
        files.download(target_path=str(tmp_path / "dl"))
    with files.mount() as mounted:
        assert sorted(p.name for p in Path(mounted.mount_point).iterdir()) == ["part1.csv", "part2.csv"]
    assert not Path(mounted.mount_point).exists()
    assert files.as_mount().mode == "mount" and files.as_download("here").path_on_compute == "here"
    with pytest.raises(DatasetError, match="for FileDatasets"):
        Dataset.Tabular.from_delimited_files(path=[(store, "tab/")]).as_named_input("t").as_mount()


def test_a_wrong_path_fails_at_creation_and_a_url_fails_at_read_with_what_to_do(store):
    with pytest.raises(DatastoreError, match="'nope/x.csv' does not exist in file://"):
        Dataset.Tabular.from_delimited_files(path=[(store, "nope/x.csv")])
    web = Dataset.Tabular.from_delimited_files("http://127.0.0.1:9/demo/crime0-random.csv")
    with pytest.raises(DatasetError, match=r"Can't read http://127.0.0.1:9/.*upload_files"):
        web.take(5).to_pandas_dataframe()


def test_parquet_with_partition_format_and_time_filters(ws, tmp_path: Path):
    pytest.importorskip("pyarrow")
    ds = ws.get_default_datastore()
    for month in (1, 2, 3):
        folder = tmp_path / "weather" / "2019" / f"{month:02d}"
        folder.mkdir(parents=True)
        days = pd.date_range(datetime(2019, month, 1), periods=10, freq="D")
        pd.DataFrame({"datetime": days, "temp": range(10)}).to_parquet(folder / "data.parquet")
    ds.upload(str(tmp_path / "weather"), target_path="weather", show_progress=False)
    tab = Dataset.Tabular.from_parquet_files(path=[(ds, "weather/*/*/data.parquet")],
                                             partition_format="weather/{coarse_time:yyyy/MM}/data.parquet")
    df = tab.to_pandas_dataframe()
    assert len(df) == 30 and df["coarse_time"].iloc[-1] == datetime(2019, 3, 1)
    tsd = tab.with_timestamp_columns(fine_grain_timestamp="datetime")
    assert len(tsd.time_before(datetime(2019, 1, 5)).to_pandas_dataframe()) == 5
    assert len(tsd.time_between(datetime(2019, 2, 1), datetime(2019, 2, 3)).to_pandas_dataframe()) == 3
    assert len(tsd.time_recent(timedelta(days=2)).to_pandas_dataframe()) == 3
    with pytest.raises(DatasetError, match="timestamp"):
        tsd.drop_columns(["datetime"])
    with pytest.raises(DatasetError, match="must keep the timestamp"):
        tsd.keep_columns(["temp"])
    with pytest.raises(DatasetError, match="coarse_grain_timestamp needs"):
        tsd.with_timestamp_columns(fine_grain_timestamp=None, coarse_grain_timestamp="coarse_time")
    assert tsd.timestamp_columns == ("datetime", None)
    assert tsd.with_timestamp_columns(None, None).drop_columns("datetime").to_pandas_dataframe().shape == (30, 2)
