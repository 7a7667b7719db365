"""What a submit stores for data references, and its errors (no run is started here)."""

from __future__ import annotations

import pytest

from nbml.data import DataReferenceConfiguration, Dataset, DatastoreError
from nbml.data.binding import TOKEN, extract


def test_references_become_tokens_and_bindings(ws, tmp_path):
    ds = ws.get_default_datastore()
    (tmp_path / "x.csv").write_text("a\n1\n")
    ds.upload_files([str(tmp_path / "x.csv")], target_path="d", show_progress=False)
    tab = Dataset.Tabular.from_delimited_files(path=[(ds, "d/x.csv")])
    ref = ds.path("d", data_reference_name="d1")
    args, bindings = extract(["--in", ref, "--lr", 0.1, "--cfg", f"{TOKEN}cfg"],
                             {"cfg": DataReferenceConfiguration("workspaceblobstore", "download", "d")},
                             [tab.as_named_input("tab")])
    assert args == ["--in", f"{TOKEN}d1", "--lr", "0.1", "--cfg", f"{TOKEN}cfg"]
    assert [b["name"] for b in bindings] == ["d1", "cfg", "tab"]
    assert bindings[2]["dataset"]["sources"] == [{"datastore": "workspaceblobstore", "path": "d/x.csv"}]


def test_mistakes_are_named_at_submit(ws, tmp_path):
    ds = ws.get_default_datastore()
    (tmp_path / "x.csv").write_text("a\n1\n")
    ds.upload_files([str(tmp_path / "x.csv")], target_path="d", show_progress=False)
    tab = Dataset.Tabular.from_delimited_files(path=[(ds, "d/x.csv")])
    with pytest.raises(DatastoreError, match="as_named_input"):
        extract([tab])
    with pytest.raises(DatastoreError, match=r"\$AZUREML_DATAREFERENCE_nope but no data reference"):
        extract([f"{TOKEN}nope"])
    with pytest.raises(DatastoreError, match="both named 'same'"):
        extract([ds.path("a", "same"), ds.path("b", "same")])
    with pytest.raises(DatastoreError, match="not str"):
        extract([], {"x": "some/path"})
