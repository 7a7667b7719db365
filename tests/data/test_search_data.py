"""Data references in a HyperDrive search: each child gets real paths, as a script run does; and HyperDrive
and AutoML on the ``containerinstance`` target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import SCRIPT
from waiting import wait_status

from nbml import Estimator, Experiment, ScriptRunConfig
from nbml.data import DataReferenceConfiguration, DatastoreError
from nbml.train.hyperdrive import GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice


def _search(run_config, values=(0.1, 0.2)) -> HyperDriveConfig:  # type: ignore[no-untyped-def]
    return HyperDriveConfig(run_config=run_config, hyperparameter_sampling=GridParameterSampling({"--lr": choice(*values)}),
                            primary_metric_name="acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                            max_total_runs=len(values), max_concurrent_runs=2)


def _children_seen(ws, run) -> list[dict]:  # type: ignore[no-untyped-def]
    assert wait_status(run, {"Completed", "Failed"}, 120) == "Completed", run.get_details().get("error")
    children = sorted(run.get_children(), key=lambda c: c.id)
    for child in children:
        assert child.get_status() == "Completed", child.get_details().get("error")
    return [json.loads((ws.run_dir(c.id) / "outputs" / "seen.json").read_text()) for c in children]


def test_hyperdrive_children_get_their_data_references_as_real_paths(ws, project, data_folder: Path):
    src = project(**{"train.py": SCRIPT})
    ds = ws.get_default_datastore()
    ds.upload(str(data_folder), target_path="hd", show_progress=False)
    est = Estimator(source_directory=str(src), entry_script="train.py", user_managed=True,
                    script_params={"--data-folder": ds.path("hd/raw").as_mount(),
                                   "--table": ds.path("hd/tabular/iris.csv").as_download(), "--lr": 1.0})
    est.run_config.data_references = {"whole": DataReferenceConfiguration(ds.name, path_on_datastore="hd/tabular")}
    seen = _children_seen(ws, Experiment(ws, "hd-data").submit(_search(est)))
    raw = str(ws.path / "datastores" / ds.name / "hd" / "raw")
    assert sorted(s["args"][-1] for s in seen) == ["0.1", "0.2"]
    for s in seen:
        args = s["args"]
        assert args[:2] == ["--data-folder", raw] and args.count("--lr") == 1  # the sampled value replaces 1.0
        assert s["contents"][raw] == ["x.bin"]
        table = args[args.index("--table") + 1]
        assert table.startswith(s["cwd"]) and s["contents"][table].startswith("a,b,label\n0,0.0,0\n")
        assert s["env"]["AZUREML_DATAREFERENCE_whole"] == str(ws.path / "datastores" / ds.name / "hd" / "tabular")


def test_a_search_naming_a_missing_datastore_fails_at_submit_and_records_nothing(ws, project):
    src = project(**{"train.py": SCRIPT})
    config = ScriptRunConfig(source_directory=str(src), script="train.py")
    config.run_config.data_references = {"gone": DataReferenceConfiguration("nosuchstore")}
    with pytest.raises(DatastoreError, match="No datastore 'nosuchstore'"):
        Experiment(ws, "hd-bad").submit(_search(config))
    assert ws.store.list_runs(limit=10) == []


def test_upload_of_a_folder_that_does_not_exist_says_so(ws, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatastoreError, match=r"there is no folder 'data' \(from '.*'\); create it"):
        ws.get_default_datastore().upload("data", "weather")
