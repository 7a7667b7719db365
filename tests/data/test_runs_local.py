"""Data references in runs on the local target: a folder datastore is read in place, nothing is copied."""

from __future__ import annotations

import json
from pathlib import Path

from data_helpers import SCRIPT
from waiting import wait_status

from nbml import Experiment, ScriptRunConfig
from nbml.data import DataReferenceConfiguration, Dataset, Datastore


def _seen(ws, run) -> dict:  # type: ignore[no-untyped-def]
    assert wait_status(run, {"Completed", "Failed"}, 60) == "Completed", run.get_details().get("error")
    return json.loads((ws.run_dir(run.id) / "outputs" / "seen.json").read_text())


def test_mounted_folder_of_a_local_datastore_is_the_folder_itself(ws, project, data_folder: Path):
    src = project(**{"train.py": SCRIPT})
    store = Datastore.register_local(ws, "mydata", data_folder)
    tab = Dataset.Tabular.from_delimited_files(path=[(store, "tabular/*.csv")])
    config = ScriptRunConfig(source_directory=str(src), script="train.py",
                             arguments=["--data", store.path("raw").as_mount(), "--n", 3,
                                        tab.as_named_input("iris")])
    config.run_config.data_references = {"whole": DataReferenceConfiguration("mydata", path_on_datastore="tabular")}
    seen = _seen(ws, Experiment(ws, "data-local").submit(config))
    assert seen["args"][:3] == ["--data", str(data_folder / "raw"), "--n"]
    assert seen["contents"][str(data_folder / "raw")] == ["x.bin"]
    assert seen["env"]["AZUREML_DATAREFERENCE_whole"] == str(data_folder / "tabular")
    assert seen["inputs"]["iris"]["label"][:4] == [0, 1, 2, 0]


def test_download_mode_copies_into_the_job_folder_at_path_on_compute(ws, project, data_folder: Path):
    src = project(**{"train.py": SCRIPT})
    store = ws.get_default_datastore()
    store.upload(str(data_folder), target_path="up", show_progress=False)
    files = Dataset.File.from_files(path=[(store, "up/raw/")])
    config = ScriptRunConfig(source_directory=str(src), script="train.py",
                             arguments=[store.path("up/tabular/iris.csv").as_download(),
                                        files.as_named_input("raw").as_mount("tmp/dataset")])
    seen = _seen(ws, Experiment(ws, "data-local").submit(config))
    first, second = seen["args"]
    assert first.startswith(seen["cwd"]) and first.endswith("/iris.csv")
    assert seen["contents"][first].startswith("a,b,label\n0,0.0,0\n")
    assert second == f"{seen['cwd']}/tmp/dataset"
    assert seen["contents"][second] == ["x.bin"]
    assert seen["inputs"]["raw"] == second


def test_a_missing_datastore_fails_the_submit_and_records_nothing(ws, project):
    import pytest

    from nbml.data import DatastoreError

    src = project(**{"train.py": SCRIPT})
    config = ScriptRunConfig(source_directory=str(src), script="train.py")
    config.run_config.data_references = {"gone": DataReferenceConfiguration("nosuchstore")}
    with pytest.raises(DatastoreError, match="No datastore 'nosuchstore'"):
        Experiment(ws, "data-bad").submit(config)
    assert ws.store.list_runs(limit=10) == []


def test_estimator_script_params_and_inputs_as_the_2019_notebooks_write_them(ws, project, data_folder: Path):
    from nbml import Estimator

    src = project(**{"train.py": SCRIPT})
    ds = ws.get_default_datastore()
    ds.upload(str(data_folder), target_path="nb", show_progress=False)
    titanic = Dataset.Tabular.from_delimited_files(path=[(ds, "nb/tabular/iris.csv")])
    est = Estimator(source_directory=str(src), entry_script="train.py",
                    script_params={"--data-folder": ds.path("nb/raw").as_mount(), "--regularization": 0.8},
                    inputs=[titanic.as_named_input("titanic")], user_managed=True)
    seen = _seen(ws, Experiment(ws, "data-estimator").submit(est))
    assert seen["args"] == ["--data-folder", str(ws.path / "datastores" / "workspaceblobstore" / "nb" / "raw"),
                            "--regularization", "0.8"]
    assert len(seen["inputs"]["titanic"]["a"]) == 30
