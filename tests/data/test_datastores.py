"""The datastore registry: the default datastore is a workspace folder; others are registered fsspec locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbml import Workspace
from nbml.data import DataPath, Datastore, DatastoreError


def test_default_datastore_is_a_folder_of_the_workspace_and_survives_a_new_process_view(ws, tmp_path: Path):
    ds = ws.get_default_datastore()
    assert ds.name == "workspaceblobstore" and ds.datastore_type == "LocalFolder"
    assert Datastore.get_default(ws) == ds == Datastore(ws, "workspaceblobstore")
    src = tmp_path / "train-dataset"
    src.mkdir()
    (src / "Titanic.csv").write_text("a,b\n1,2\n")
    (src / "sub").mkdir()
    (src / "sub" / "f.npy").write_bytes(b"\x93NUMPY")
    ref = ds.upload_files(files=[str(src / "Titanic.csv")], target_path="train-dataset/tabular/", overwrite=True,
                          show_progress=False)
    assert (ws.path / "datastores" / "workspaceblobstore" / "train-dataset" / "tabular" / "Titanic.csv").is_file()
    assert ref.path_on_datastore == "train-dataset/tabular/"
    ds.upload(str(src), target_path="all", show_progress=False)
    again = Workspace(path=ws.path)  # another process's view: the same store
    out = tmp_path / "down"
    assert again.get_default_datastore().download(str(out), prefix="all", show_progress=False) == 2
    assert (out / "all" / "sub" / "f.npy").read_bytes() == b"\x93NUMPY"


def test_upload_keeps_existing_files_unless_overwrite(ws, tmp_path: Path):
    ds = ws.get_default_datastore()
    f = tmp_path / "a.txt"
    f.write_text("one")
    ds.upload_files([str(f)], target_path="t", show_progress=False)
    f.write_text("two")
    ds.upload_files([str(f)], target_path="t", show_progress=False)
    stored = ws.path / "datastores" / "workspaceblobstore" / "t" / "a.txt"
    assert stored.read_text() == "one"
    ds.upload_files([str(f)], target_path="t", overwrite=True, show_progress=False)
    assert stored.read_text() == "two"


def test_register_local_set_default_list_and_unregister(ws, tmp_path: Path):
    folder = tmp_path / "shared-data"
    store = Datastore.register_local(ws, "shared", str(folder))
    assert folder.is_dir() and store.url == folder.as_uri()
    assert set(ws.datastores) == {"workspaceblobstore", "workspacefilestore", "shared"}
    store.set_as_default()
    assert ws.get_default_datastore().name == "shared"
    ws.set_default_datastore("workspaceblobstore")
    assert ws.get_default_datastore().name == "workspaceblobstore"
    store.unregister()
    with pytest.raises(DatastoreError, match="No datastore 'shared'.*register_local"):
        Datastore.get(ws, "shared")


def test_bad_names_and_azure_storage_get_errors_that_say_what_to_use(ws, tmp_path: Path):
    with pytest.raises(DatastoreError, match="letters, digits"):
        Datastore.register_local(ws, "bad name!", tmp_path)
    with pytest.raises(DatastoreError, match="built-in"):
        Datastore.register_local(ws, "workspaceblobstore", tmp_path)
    with pytest.raises(DatastoreError, match=r"register_local.*register_sftp"):
        Datastore.register_azure_blob_container(ws, datastore_name="blobs", container_name="c", account_name="a",
                                                account_key="k")
    with pytest.raises(DatastoreError, match="Azure storage"):
        Datastore.register_azure_file_share(ws, "files", "share", "acct")
    with pytest.raises(DatastoreError, match="password in the datastore URL"):
        Datastore.register_sftp(ws, "pw", "sftp://me:secret@host/data")
    with pytest.raises(DatastoreError, match="look like secrets"):
        Datastore.register_fsspec(ws, "mem", "memory://bucket", password="x")
    assert set(ws.datastores) == {"workspaceblobstore", "workspacefilestore"}


def test_any_fsspec_url_works_as_a_datastore(ws, tmp_path: Path):
    store = Datastore.register_fsspec(ws, "mem", "memory://nbml-test-bucket")
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    store.upload_files([str(f)], target_path="in", show_progress=False)
    assert store._location().fs.cat("/nbml-test-bucket/in/x.csv") == b"a\n1\n"


def test_references_name_their_datastore_path_and_mode(ws):
    ds = ws.get_default_datastore()
    mount = ds.path("mnist").as_mount()
    down = ds.path("mnist", data_reference_name="mn").as_download(path_on_compute="data/mnist")
    assert mount.binding()["mode"] == "mount" and mount.binding()["path"] == "mnist"
    assert down.binding() == {"name": "mn", "mode": "download", "path_on_compute": "data/mnist",
                              "datastore": "workspaceblobstore", "path": "mnist"}
    assert str(down) == "$AZUREML_DATAREFERENCE_mn"
    assert ds.as_mount().binding()["path"] == ""
    assert DataPath(ds, "a/b").as_download().binding()["mode"] == "download"
    with pytest.raises(DatastoreError, match="not supported"):
        ds.path("out").as_upload()
