"""Recovery on every remote target: kill -9 the supervisor mid-run and a new one adopts the job from its
stored handle, from a process that never talked to that job (real sshd, real Docker engine, real Dask).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from nbml import Experiment, Run, ScriptRunConfig, Workspace
from nbml._proc import process_alive

REMOTE_KINDS = [
    pytest.param("ssh", id="ssh", marks=pytest.mark.ssh),
    pytest.param("docker", id="docker", marks=pytest.mark.docker),
    pytest.param("dask", id="dask", marks=pytest.mark.dask),
]

LOGGER = """
import os, time
from nbml import Run
run = Run.get_context()
os.makedirs("outputs", exist_ok=True)
for i in range(150):
    run.log("step", i)
    print("step", i, flush=True)
    time.sleep(0.04)
with open("outputs/model.txt", "w") as f:
    f.write("trained on 150 steps")
print("finished", flush=True)
"""


@pytest.fixture(params=REMOTE_KINDS)
def remote(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"target_{request.param}"))


def _kill_supervisor_mid_run(ws: Workspace, run_id: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rec = ws.store.get_run(run_id)
        if rec["handle_json"] and len(ws.store.get_metrics(run_id).get("step") or []) >= 5:
            break
        assert rec["status"] not in ("Completed", "Failed", "Canceled"), rec["error"]
        time.sleep(0.05)
    else:
        raise AssertionError(f"{run_id} never started logging")
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    while process_alive(rec["supervisor_pid"], rec["supervisor_started"]):
        time.sleep(0.05)
    assert len(ws.store.get_metrics(run_id)["step"]) < 150, "the job ended before the supervisor was killed"
    return rec  # type: ignore[no-any-return]


@pytest.mark.parametrize("reader", ["Run.get", pytest.param("Workspace open", marks=pytest.mark.slow)])
def test_killing_the_supervisor_mid_run_completes_with_everything(ws, project, remote, reader):
    project(**{"train.py": LOGGER})
    submitted = Experiment(ws, "recover").submit(ScriptRunConfig(".", "train.py", compute_target=remote))
    old = _kill_supervisor_mid_run(ws, submitted.id)
    if reader == "Workspace open":  # after a reboot: the first nbml process that opens the workspace
        Workspace(path=ws.path)
    run = Run.get(ws, submitted.id)
    run.wait_for_completion(timeout_seconds=120)
    assert run.get_status() == "Completed"
    assert run.get_metrics()["step"] == list(range(150))
    assert (run.run_dir / "outputs" / "model.txt").read_text() == "trained on 150 steps"
    log = (run.run_dir / "nbml-logs" / "driver_log.txt").read_text()
    assert "step 0\n" in log and "step 149\n" in log and "finished" in log and log.count("step 90\n") == 1
    rec = ws.store.get_run(run.id)
    assert rec["supervisor_pid"] != old["supervisor_pid"] and rec["adoptions"] == 1
    assert json.loads(rec["handle_json"]) == json.loads(old["handle_json"])  # the same job, adopted
