"""Data references on Docker and Dask targets: the path the script gets holds the data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_factories import dask_target, docker_target, stop_dask_targets
from data_helpers import SCRIPT
from waiting import wait_status

from nbml import Experiment, ScriptRunConfig
from nbml.data import Datastore

PLAIN_SCRIPT = '''
import json, os, sys
seen = {"args": sys.argv[1:], "cwd": os.getcwd(),
        "contents": {a: sorted(os.listdir(a)) for a in sys.argv[1:] if os.path.isdir(a)}}
os.makedirs("outputs", exist_ok=True)
json.dump(seen, open("outputs/seen.json", "w"))
'''


def _run(ws, src: Path, target: str, store: Datastore) -> dict:  # type: ignore[no-untyped-def]
    config = ScriptRunConfig(source_directory=str(src), script="train.py", compute_target=target,
                             arguments=[store.path("raw").as_mount(), store.path("tabular").as_download()])
    run = Experiment(ws, f"data-{target}").submit(config)
    assert wait_status(run, {"Completed", "Failed"}, 180) == "Completed", run.get_details().get("error")
    return json.loads((ws.run_dir(run.id) / "outputs" / "seen.json").read_text())


@pytest.mark.docker
def test_docker_job_sees_the_data_inside_its_container(ws, project, data_folder: Path):
    target = docker_target(ws).name
    src = project(**{"train.py": PLAIN_SCRIPT})
    seen = _run(ws, src, target, Datastore.register_local(ws, "mydata", data_folder))
    raw, tab = seen["args"]
    assert raw.startswith(seen["cwd"] + "/.nbml/data/") and seen["cwd"].startswith("/tmp/nbml_run/")
    assert seen["contents"] == {raw: ["x.bin"], tab: ["iris.csv"]}


@pytest.fixture
def cluster(ws) -> Iterator[str]:  # type: ignore[no-untyped-def]
    target = dask_target(ws, min_nodes=1, max_nodes=1)
    yield target.name
    stop_dask_targets(ws)


@pytest.mark.dask
def test_dask_job_reads_the_shared_folder_in_place(ws, project, data_folder: Path, cluster: str):
    src = project(**{"train.py": SCRIPT})
    seen = _run(ws, src, cluster, Datastore.register_local(ws, "mydata", data_folder))
    raw, tab = seen["args"]
    assert raw == str(data_folder / "raw")  # nbml's own cluster runs on this machine: no copy
    assert tab.startswith(seen["cwd"] + "/.nbml/data/")  # download mode copies into the job folder
    assert seen["contents"][tab] == ["iris.csv"]
