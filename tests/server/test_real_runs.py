"""The API on runs submitted for real (Experiment.submit of a ScriptRunConfig, run by the local target)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from nbml import Experiment, ScriptRunConfig, Workspace

from .conftest import get_json

TRAIN = """\
import os, sys, time
from nbml import Run

run = Run.get_context()
os.makedirs("outputs", exist_ok=True)
os.makedirs("logs", exist_ok=True)
with open("outputs/model.txt", "w") as fh:
    fh.write("weights")
with open("logs/train.log", "w") as fh:
    fh.write("epoch 1\\n")
for i in range(int(sys.argv[1])):
    run.log("loss", 1.0 / (i + 1))
    time.sleep(0.2)
print("finished training")
"""


def submit(workspace_dir: Path, tmp_path: Path, steps: int) -> str:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(TRAIN)
    ws = Workspace(path=workspace_dir)
    run = Experiment(ws, "real").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                        arguments=[str(steps)]))
    return str(run.id)


async def wait_status(jp_fetch: Any, run_id: str, statuses: set[str], timeout: float = 60.0) -> dict[str, Any]:
    """Poll the API (the server runs in this event loop, so never block it)."""
    deadline = time.monotonic() + timeout
    while True:
        run = await get_json(jp_fetch, "nbml", "api", "runs", run_id)
        if run["status"] in statuses or time.monotonic() > deadline:
            return run  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)


async def test_a_submitted_run_shows_its_metrics_logs_and_outputs(jp_fetch: Any, workspace_dir: Path,
                                                                  tmp_path: Path) -> None:
    run_id = submit(workspace_dir, tmp_path, steps=3)
    run = await wait_status(jp_fetch, run_id, {"Completed", "Failed", "Canceled"})
    assert run["status"] == "Completed", run.get("error")
    assert run["metrics"]["loss"] == [1.0, 0.5, 1.0 / 3]
    assert run["primary_metric"]["name"] == "loss"
    assert run["duration_seconds"] > 0
    logs = {f["path"] for f in run["log_files"]}
    assert {"logs/train.log", "nbml-logs/driver_log.txt"} <= logs
    driver = await get_json(jp_fetch, "nbml", "api", "runs", run_id, "logs", "nbml-logs/driver_log.txt")
    assert "finished training" in driver["content"]
    assert [f["path"] for f in run["output_files"]] == ["model.txt"]
    download = await jp_fetch("nbml", "api", "runs", run_id, "outputs", "model.txt")
    assert download.body == b"weights"
    listed = await get_json(jp_fetch, "nbml", "api", "experiments")
    assert [r["run_id"] for r in listed["experiments"][0]["latest_runs"]] == [run_id]


async def test_cancel_stops_a_running_run(jp_fetch: Any, workspace_dir: Path, tmp_path: Path) -> None:
    run_id = submit(workspace_dir, tmp_path, steps=1000)
    assert (await wait_status(jp_fetch, run_id, {"Running"}))["status"] == "Running"
    answer = await jp_fetch("nbml", "api", "runs", run_id, "cancel", method="POST", body="")
    assert json.loads(answer.body)["flagged"] == [run_id]
    run = await wait_status(jp_fetch, run_id, {"Canceled", "Completed", "Failed"})
    assert run["status"] == "Canceled"
