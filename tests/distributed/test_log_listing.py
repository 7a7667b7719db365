"""The supervisor lists a job's nbml-logs/ folder (each rank's output) only for distributed jobs.

A single-process job writes only driver_log.txt there, which is mirrored by name; listing the folder every 2 s
would be one more round trip per poll on an SSH or Dask target for nothing. The job runs for real on the local
target, driven in this process by the executor the supervisor uses, with the backend's `list_files` recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nbml import Experiment, ScriptRunConfig
from nbml.core.runconfig import PyTorchConfiguration
from nbml.runs import executor as executor_mod
from nbml.runs import submit as submit_mod
from nbml.runs.context import SupervisorContext
from nbml.runs.executor import execute
from nbml.runs.script_driver import build_job

SCRIPT = """
import os, time
from nbml import Run
run = Run.get_context()
time.sleep(2.5)  # long enough for the mirror's 2 s listing to come round
run.log("rank", int(os.environ.get("NBML_RANK", "-1")))
print("done", flush=True)
"""


def _drive(ws: Any, run: Any) -> tuple[str, list[str]]:
    """Run a recorded (not started) run's job in this process; (final status, prefixes listed)."""
    ctx = SupervisorContext(ws.store, ws.path, run.id)
    rec = ctx.record
    job = build_job(ctx, run.id, ctx.config, rec["experiment"])
    backend = ctx.backend_for(rec["compute_target"], job.env)
    listed: list[str] = []
    real_list = backend.list_files

    async def recording(handle: Any, prefix: str) -> Any:
        listed.append(prefix)
        return await real_list(handle, prefix)

    backend.list_files = recording  # type: ignore[method-assign]
    # a backend whose job folders are local paths (local, Dask) is read by walking the folder in a file thread
    real_walk = executor_mod._staging.list_tree

    def walking(root: Any, prefix: str) -> Any:
        listed.append(prefix)
        return real_walk(root, prefix)

    executor_mod._staging.list_tree = walking  # type: ignore[assignment]

    async def go() -> str:
        try:
            return await execute(ctx, run.id, job, backend)
        finally:
            await backend.close()

    try:
        return asyncio.run(go()), listed
    finally:
        executor_mod._staging.list_tree = real_walk  # type: ignore[assignment]
        ctx.close()


@pytest.fixture
def recorded_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Submit records the run but starts no supervisor process: the test drives the job itself."""
    real = submit_mod.start_recorded_run

    def record(ws: Any, run_id: str, tags: Any, properties: dict[str, Any]) -> None:
        monkeypatch.setattr(submit_mod, "start_supervisor", lambda *_a: 0)
        real(ws, run_id, tags, properties)

    monkeypatch.setattr(submit_mod, "start_recorded_run", record)


def test_a_plain_script_run_never_lists_nbml_logs(ws, project, recorded_only) -> None:  # type: ignore[no-untyped-def]
    project(**{"train.py": SCRIPT})
    run = Experiment(ws, "listing").submit(ScriptRunConfig(".", "train.py"))
    final, listed = _drive(ws, run)
    assert final == "Completed"
    assert "logs" in listed  # the script's own logs/ folder is still watched
    assert "nbml-logs" not in listed
    assert "done" in (run.run_dir / "nbml-logs/driver_log.txt").read_text()


def test_a_distributed_run_lists_nbml_logs_for_its_ranks(ws, project, recorded_only) -> None:  # type: ignore[no-untyped-def]
    project(**{"train.py": SCRIPT})
    run = Experiment(ws, "listing").submit(ScriptRunConfig(
        ".", "train.py", distributed_job_config=PyTorchConfiguration(communication_backend="Gloo", process_count=2)))
    final, listed = _drive(ws, run)
    assert final == "Completed"
    assert "nbml-logs" in listed
    assert "done" in (run.run_dir / "nbml-logs/driver_log_1.txt").read_text()
