"""Script runs that opt in (run_config.warm_worker) share a warm worker that outlives the run that started it.

Real supervisors and workers throughout (the ones `Experiment.submit` starts); the script reports the worker
that forked it (its parent pid) and whether its top-level import was already done when it started.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from waiting import wait_until as _wait

from nbml import Experiment, Run, ScriptRunConfig, Workspace
from nbml._proc import process_alive
from nbml.errors import UserErrorException
from nbml.runs.warm_shared import REGISTRY, WORKER_PROPERTY, stop_workers

SCRIPT = """
import os, sys, time
preloaded = "numpy" in sys.modules  # before its import: a warm worker imported it already
import numpy
from nbml import Run
mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
run = Run.get_context()
os.makedirs("outputs", exist_ok=True)
with open("outputs/worker.txt", "w") as fh:
    fh.write(f"{os.getppid()} {preloaded}")
print(f"run {mode} in worker {os.getppid()}", flush=True)
for i in range(int(os.environ.get("STEPS", "3"))):
    run.log("step", i)
    print("step", i, flush=True)
    time.sleep(float(os.environ.get("STEP_SECONDS", "0")))
if mode == "fail":
    raise ValueError("failed on purpose")
if mode == "sleep":
    time.sleep(300)
if mode == "wait":
    while not os.path.exists(os.environ["GO_FILE"]):
        time.sleep(0.05)
print("finished", flush=True)
"""


@pytest.fixture
def warm_ws(ws: Workspace, project) -> Iterator[Workspace]:  # type: ignore[no-untyped-def]
    project(**{"train.py": SCRIPT})
    yield ws
    stop_workers(ws)  # none outlives its test


def _submit(ws: Workspace, *args: str, keep_alive: float = 60, timeout: float | None = None,
            environ: dict[str, str] | None = None) -> Run:
    cfg = ScriptRunConfig(".", "train.py", arguments=list(args))
    cfg.run_config.warm_worker = True
    cfg.run_config.warm_worker_keep_alive_seconds = keep_alive
    if timeout:
        cfg.run_config.max_run_duration_seconds = timeout
    cfg.environment.environment_variables.update(environ or {})
    return Experiment(ws, "warm-scripts").submit(cfg)


def _worker(run: Run) -> tuple[int, bool]:
    pid, preloaded = (run.run_dir / "outputs" / "worker.txt").read_text().split()
    return int(pid), preloaded == "True"


def _error(run: Run) -> str:
    error = run.get_details().get("error") or ""
    while isinstance(error, dict):  # {"error": {"message": ...}}, as the SDK's
        error = error.get("error") or error.get("message") or ""
    return str(error)


def _log(run: Run, name: str = "driver_log.txt") -> str:
    return (run.run_dir / "nbml-logs" / name).read_text()


def _running_in(run: Run) -> int:
    path = Path(run.experiment.workspace.path) / "jobs" / run.id / "outputs" / "worker.txt"
    return int(_wait(lambda: path.exists() and path.read_text(), 90, f"{run.id} to start").split()[0])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_consecutive_runs_reuse_one_worker_a_failure_ends_only_its_run_and_the_worker_leaves_when_idle(warm_ws):
    ws = warm_ws
    first = _submit(ws, "ok")
    first.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    failing = _submit(ws, "fail")
    failing.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    third = _submit(ws, "ok", keep_alive=2)  # the last run's keep-alive holds
    third.wait_for_completion(timeout_seconds=120, raise_on_error=False)

    assert first.get_status() == "Completed", first.get_details().get("error")
    assert third.get_status() == "Completed", third.get_details().get("error")
    pid, preloaded = _worker(first)
    assert _worker(third) == (pid, True) and preloaded  # one worker, its import done once before any run
    assert _worker(failing)[0] == pid
    ids = {r.get_properties()[WORKER_PROPERTY] for r in (first, failing, third)}
    assert len(ids) == 1
    worker_log = (ws.path / "jobs" / ids.pop() / "nbml-logs" / "driver_log.txt").read_text()
    assert worker_log.count("starting in") == 1  # it started once, for the first run
    assert "claimed the shared warm worker" in _log(third, "supervisor_log.txt")
    # each run is complete on its own: metrics, outputs, its own log only
    for run in (first, third):
        assert run.get_metrics()["step"] == [0, 1, 2]
        log = _log(run)
        assert "run ok in worker" in log and "finished" in log and "failed on purpose" not in log
    assert failing.get_status() == "Failed"
    error = _error(failing)
    assert "ValueError: failed on purpose" in error
    assert 'train.py", line' in error and "warm_worker" not in error  # the script's traceback, as a cold run's
    assert "run fail in worker" in _log(failing) and "finished" not in _log(failing)
    # idle past its keep-alive, the worker exits on its own and leaves the registry
    _wait(lambda: not _alive(pid), 60, "the idle worker to exit after its keep-alive")
    assert not list((ws.path / REGISTRY).glob("*.json"))
    assert (ws.path / REGISTRY).stat().st_mode & 0o777 == 0o700


def test_cancel_and_time_limit_end_only_their_run_and_the_worker_serves_the_next(warm_ws):
    ws = warm_ws
    sleeper = _submit(ws, "sleep")
    pid = _running_in(sleeper)
    sleeper.cancel()
    sleeper.wait_for_completion(timeout_seconds=60, raise_on_error=False)
    assert sleeper.get_status() == "Canceled"
    slow = _submit(ws, "sleep", timeout=3)
    slow.wait_for_completion(timeout_seconds=90, raise_on_error=False)
    assert slow.get_status() == "Failed" and "max_run_duration_seconds=3" in _error(slow)
    after = _submit(ws, "ok")
    after.wait_for_completion(timeout_seconds=90, raise_on_error=False)
    assert after.get_status() == "Completed", after.get_details().get("error")
    assert _worker(slow)[0] == pid and _worker(after) == (pid, True)
    assert _alive(pid)


def test_a_killed_worker_fails_only_its_run_and_is_replaced(warm_ws):
    ws = warm_ws
    first = _submit(ws, "ok")
    first.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    pid, _ = _worker(first)
    os.kill(pid, signal.SIGKILL)  # while idle
    second = _submit(ws, "sleep")
    new = _running_in(second)
    assert new != pid
    assert "is gone; removing it" in _log(second, "supervisor_log.txt")
    os.kill(new, signal.SIGKILL)  # while its run is in it
    second.wait_for_completion(timeout_seconds=60, raise_on_error=False)
    assert second.get_status() == "Failed"
    assert "ended before it did" in _error(second)
    third = _submit(ws, "ok")
    third.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    assert third.get_status() == "Completed", third.get_details().get("error")
    assert _worker(third)[0] not in (pid, new)


def test_a_run_whose_supervisor_was_killed_is_adopted_and_its_worker_serves_the_next(warm_ws):
    ws = warm_ws
    run = _submit(ws, "ok", environ={"STEPS": "100", "STEP_SECONDS": "0.05"})
    pid = _running_in(run)
    _wait(lambda: len(ws.store.get_metrics(run.id).get("step") or []) >= 5, 60, "the run to log")
    rec = ws.store.get_run(run.id)
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    _wait(lambda: not process_alive(rec["supervisor_pid"], rec["supervisor_started"]), 10, "the supervisor to die")
    adopted = Run.get(ws, run.id)  # a reader notices and starts a new supervisor
    adopted.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    assert adopted.get_status() == "Completed", adopted.get_details().get("error")
    assert adopted.get_metrics()["step"] == list(range(100))
    log = _log(adopted)
    assert log.count("step 50\n") == 1 and "finished" in log
    assert "adopting the job" in _log(adopted, "supervisor_log.txt")
    assert ws.store.get_run(run.id)["adoptions"] == 1
    following = _submit(ws, "ok", environ={"STEPS": "100", "STEP_SECONDS": "0.05"})
    following.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    assert following.get_status() == "Completed", following.get_details().get("error")
    assert _worker(following)[0] == pid  # the worker outlived both supervisors and was handed back


def test_two_runs_at_once_get_two_workers_and_both_are_reused(warm_ws, tmp_path):
    ws = warm_ws
    go = tmp_path / "go"
    a, b = (_submit(ws, "wait", environ={"GO_FILE": str(go)}) for _ in range(2))
    pa, pb = _running_in(a), _running_in(b)
    assert pa != pb
    go.touch()
    for r in (a, b):
        r.wait_for_completion(timeout_seconds=60, raise_on_error=False)
        assert r.get_status() == "Completed", r.get_details().get("error")
    c = _submit(ws, "wait", environ={"GO_FILE": str(go)})
    c.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    assert _worker(c)[0] in (pa, pb)
    entries = [json.loads(p.read_text()) for p in (ws.path / REGISTRY).glob("*.json")]
    assert len(entries) == 2 and all(p.stat().st_mode & 0o777 == 0o600 for p in (ws.path / REGISTRY).glob("*.json"))
    assert all("token" not in (ws.path / "jobs" / e["id"] / ".nbml" / "warm.json").read_text() for e in entries)


def test_a_bad_keep_alive_fails_the_submit_and_records_nothing(ws, project):
    project(**{"train.py": "print('hi')\n"})
    cfg = ScriptRunConfig(".", "train.py")
    cfg.run_config.warm_worker = True
    cfg.run_config.warm_worker_keep_alive_seconds = "five minutes"
    with pytest.raises(UserErrorException, match="warm_worker_keep_alive_seconds"):
        Experiment(ws, "warm-scripts").submit(cfg)
    assert ws.store.list_runs(limit=10) == []
