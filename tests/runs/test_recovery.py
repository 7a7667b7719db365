"""Runs that cannot be lost: kill -9 the supervisor (or every nbml process) and the run still completes.

Real processes throughout: the supervisors and jobs are the ones `Experiment.submit` starts, killed with
SIGKILL as a crash or a power cut would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from waiting import wait_until as _wait

from nbml import Experiment, Run, ScriptRunConfig, Workspace
from nbml._proc import process_alive
from nbml.runs import recovery
from nbml.store import Store

LOGGER = """
import os, time
from nbml import Run
run = Run.get_context()
os.makedirs("outputs", exist_ok=True)
for i in range(150):
    run.log("step", i)
    print("step", i, flush=True)
    time.sleep(0.03)
with open("outputs/model.txt", "w") as f:
    f.write("trained on 150 steps")
print("finished", flush=True)
"""


def _kill_when_logging(ws: Workspace, run_id: str, at_least: int = 10) -> dict:  # type: ignore[type-arg]
    """Wait until the job has logged some metrics, then SIGKILL the run's supervisor; returns the record."""
    store = ws.store

    def logging() -> bool:
        rec = store.get_run(run_id)
        return bool(rec and rec["handle_json"] and len(store.get_metrics(run_id).get("step") or []) >= at_least)

    _wait(logging, 60, "the job to log metrics")
    rec = store.get_run(run_id)
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    _wait(lambda: not process_alive(rec["supervisor_pid"], rec["supervisor_started"]), 10, "the supervisor to die")
    return rec  # type: ignore[no-any-return]


def _assert_complete(ws: Workspace, run: Run) -> None:
    assert run.get_status() == "Completed", run.get_details().get("error")
    assert run.get_metrics()["step"] == list(range(150))  # every metric the script logged, once
    assert (run.run_dir / "outputs" / "model.txt").read_text() == "trained on 150 steps"
    log = (run.run_dir / "nbml-logs" / "driver_log.txt").read_text()
    assert "step 0\n" in log and "step 149\n" in log and "finished" in log
    assert log.count("step 77\n") == 1  # the log was resumed, not copied twice
    # The job folder is removed right after the terminal status is recorded (in that order, so a supervisor
    # that dies in between leaves a run that is ended, not one whose job can't be found).
    _wait(lambda: not (ws.path / "jobs" / run.id).exists(), 10, "the job folder to be cleaned up")


def test_killing_the_supervisor_mid_run_loses_nothing(ws, project):
    project(**{"train.py": LOGGER})
    submitted = Experiment(ws, "recover").submit(ScriptRunConfig(".", "train.py"))
    old = _kill_when_logging(ws, submitted.id)
    run = Run.get(ws, submitted.id)  # a reader notices and starts a new supervisor
    run.wait_for_completion(timeout_seconds=60)
    _assert_complete(ws, run)
    rec = ws.store.get_run(run.id)
    assert rec["supervisor_pid"] != old["supervisor_pid"] and rec["adoptions"] == 1
    log = (run.run_dir / "nbml-logs" / "supervisor_log.txt").read_text()
    assert "adopting the job" in log


def test_simulated_reboot_every_nbml_process_killed_then_the_workspace_is_opened(ws, project):
    project(**{"train.py": LOGGER})
    code = textwrap.dedent(f"""
        from nbml import Workspace, Experiment, ScriptRunConfig
        ws = Workspace(path={str(ws.path)!r})
        for _ in range(2):
            print(Experiment(ws, "reboot").submit(ScriptRunConfig(".", "train.py")).id, flush=True)
        import time; time.sleep(600)
        """)
    submitter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        ids = [submitter.stdout.readline().strip() for _ in range(2)]  # type: ignore[union-attr]
        for run_id in ids:
            _kill_when_logging(ws, run_id, at_least=5)
    finally:
        submitter.kill()  # the notebook that submitted them dies too
        submitter.wait()
    Workspace(path=ws.path)  # the first nbml process to open the workspace adopts both runs
    for run_id in ids:
        run = Run.get(ws, run_id)
        run.wait_for_completion(timeout_seconds=60)
        _assert_complete(ws, run)


def test_a_job_that_died_with_its_supervisor_ends_failed_saying_what_was_found(ws, project):
    project(**{"train.py": LOGGER})
    run = Experiment(ws, "lost").submit(ScriptRunConfig(".", "train.py"))
    rec = _kill_when_logging(ws, run.id)
    os.killpg(json.loads(rec["handle_json"])["data"]["pgid"], signal.SIGKILL)  # as a reboot would
    run.wait_for_completion(raise_on_error=False, timeout_seconds=60)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert "lost" in error and "without recording an exit code" in error and "took the run over" in error
    assert len(run.get_metrics()["step"]) >= 10  # what it logged before it died is kept


def test_concurrent_readers_start_exactly_one_new_supervisor(ws, project):
    project(**{"train.py": LOGGER})
    run = Experiment(ws, "race").submit(ScriptRunConfig(".", "train.py"))
    old = _kill_when_logging(ws, run.id)
    barrier = threading.Barrier(8)
    actions: list[str | None] = []

    def reader() -> None:
        store = Store(ws.path)  # each reader its own connection, as separate processes would have
        barrier.wait()
        actions.append(recovery.ensure_supervised(store, dict(old)))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert actions.count("adopted") == 1 and actions.count(None) == 7
    run.wait_for_completion(timeout_seconds=60)
    _assert_complete(ws, run)
    assert ws.store.get_run(run.id)["adoptions"] == 1


def test_a_reader_that_finds_a_live_supervisor_changes_nothing(ws, project):
    project(**{"train.py": LOGGER})
    run = Experiment(ws, "live").submit(ScriptRunConfig(".", "train.py"))
    _wait(lambda: ws.store.get_run(run.id)["handle_json"], 60, "the job to start")
    ignore = {"heartbeat_at", "events_offset", "status", "started_at"}  # what the live supervisor itself moves
    before = {k: v for k, v in ws.store.get_run(run.id).items() if k not in ignore}
    assert recovery.ensure_supervised(ws.store, ws.store.get_run(run.id)) is None
    assert recovery.recover_all(ws.store) == []
    Run.get(ws, run.id).get_status()
    out = subprocess.run([sys.executable, "-m", "nbml.cli", "-w", str(ws.path), "runs", "recover"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": _checkout()})
    assert "nothing to recover" in out.stdout, out.stderr
    after = {k: v for k, v in ws.store.get_run(run.id).items() if k not in ignore}
    assert after == before
    # A supervisor started for a run someone holds exits at once and touches nothing.
    from nbml.runs.supervisor import start_supervisor

    pid = start_supervisor(ws.path, run.id)
    _wait(lambda: not _running(pid), 30, "the extra supervisor to exit")
    assert {k: v for k, v in ws.store.get_run(run.id).items() if k not in ignore} == before
    assert "already held" in (run.run_dir / "nbml-logs" / "supervisor_log.txt").read_text()
    run.wait_for_completion(timeout_seconds=60)
    _assert_complete(ws, run)
    assert ws.store.get_run(run.id)["adoptions"] == 0


def test_cancel_of_a_run_whose_supervisor_died_goes_through_a_new_supervisor(ws, project):
    project(**{"train.py": LOGGER.replace("0.03", "0.2")})
    run = Experiment(ws, "cancel").submit(ScriptRunConfig(".", "train.py"))
    rec = _kill_when_logging(ws, run.id, at_least=3)
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False, timeout_seconds=30)["status"] == "Canceled"
    pid = json.loads(rec["handle_json"])["data"]["pid"]
    _wait(lambda: not _running(pid), 10, "the job to stop")


# -- interactive runs ----------------------------------------------------------------------------
def test_an_interactive_run_kept_open_past_the_heartbeat_timeout_stays_running_and_completes(ws, project,
                                                                                          monkeypatch):
    project()
    monkeypatch.setattr(recovery, "HEARTBEAT_TIMEOUT", 1.5)
    run = Experiment(ws, "notebook").start_logging()
    assert Path("outputs").is_dir()  # created for the user, as the SDK does
    run.log("acc", 0.5)
    time.sleep(3)  # a long pause between cells
    assert run.get_status() == "Running"
    out = subprocess.run([sys.executable, "-m", "nbml.cli", "-w", str(ws.path), "runs", "list"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": _checkout(), "NBML_HEARTBEAT_TIMEOUT": "1.5"})
    assert "Running" in out.stdout, out.stdout + out.stderr  # another process's reader leaves it alone
    Path("outputs/note.txt").write_text("kept")
    run.complete()
    assert run.get_status() == "Completed"
    assert run.get_metrics()["acc"] == 0.5 and "outputs/note.txt" in run.get_file_names()


def test_an_interactive_run_whose_process_died_ends_failed_saying_so(ws, project):
    project()
    code = textwrap.dedent(f"""
        import os
        from nbml import Workspace, Experiment
        run = Experiment(Workspace(path={str(ws.path)!r}), "notebook").start_logging()
        run.log("acc", 0.9)
        print(run.id, flush=True)
        os.kill(os.getpid(), 9)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": _checkout()})
    run_id = out.stdout.strip()
    run = Run.get(ws, run_id)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert "process that started this interactive run is gone" in error and "complete()" in error
    assert run.get_metrics()["acc"] == 0.9


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _checkout() -> str:
    root = str(Path(__file__).resolve().parents[2])
    return root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")


@pytest.fixture(autouse=True)
def _no_supervisor_left(ws):  # type: ignore[no-untyped-def]
    yield
    # Stop what a failing test left going and wait until it ended, so no process outlives the test.
    from nbml.runs.status import ACTIVE

    for rec in ws.store.list_runs(status=list(ACTIVE), limit=1000):
        Run.get(ws, rec["run_id"]).cancel()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ws.store.list_runs(status=list(ACTIVE)):
        time.sleep(0.1)


# -- a supervisor that died before the job had a handle ------------------------------------------
def _orphaned_before_start(ws: Workspace, monkeypatch, status: str, starting: bool) -> str:  # type: ignore[no-untyped-def]
    """A run left as a supervisor killed in `status` leaves it (before the job's handle was stored).

    The state is written directly (a fault that can't be hit reliably from outside: the window between
    stage and start is microseconds); the dead holder is a real process that ran and ended.
    """
    import nbml.runs.submit as submit
    from nbml._proc import start_time

    monkeypatch.setattr(submit, "start_supervisor", lambda *_a: 0)  # record the run, start nothing
    run = Experiment(ws, "orphan").submit(ScriptRunConfig(".", "train.py"))
    dead = subprocess.Popen(["sleep", "30"])
    started = start_time(dead.pid)
    dead.kill()
    dead.wait()
    with ws.store.db.tx() as c:
        c.execute("UPDATE runs SET status = ?, supervisor_pid = ?, supervisor_started = ?, supervisor_host = ?, "
                  "heartbeat_at = ? WHERE run_id = ?", (status, dead.pid, started, __import__("socket").gethostname(),
                                                        time.time(), run.id))
    if starting:
        ws.store.add_properties(run.id, {"nbml.job_starting": "2026-01-01 00:00:00"})
    return run.id


def test_a_run_whose_supervisor_died_while_preparing_starts_again_from_prepare(ws, project, monkeypatch):
    project(**{"train.py": LOGGER.replace("0.03", "0.001")})
    run_id = _orphaned_before_start(ws, monkeypatch, "Preparing", starting=False)
    run = Run.get(ws, run_id)
    run.wait_for_completion(timeout_seconds=60)
    _assert_complete(ws, run)


def test_a_run_whose_supervisor_died_while_starting_the_job_ends_failed_saying_why(ws, project, monkeypatch):
    project(**{"train.py": LOGGER})
    run_id = _orphaned_before_start(ws, monkeypatch, "Starting", starting=True)
    run = Run.get(ws, run_id)
    run.wait_for_completion(raise_on_error=False, timeout_seconds=60)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert "while it was starting the job" in error and "Submit the run again" in error


def test_nbml_runs_recover_adopts_and_says_so(ws, project):
    project(**{"train.py": LOGGER})
    run = Experiment(ws, "cli").submit(ScriptRunConfig(".", "train.py"))
    _kill_when_logging(ws, run.id)
    out = subprocess.run([sys.executable, "-m", "nbml.cli", "-w", str(ws.path), "runs", "recover"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": _checkout()})
    assert f"{run.id}: a new supervisor adopts it" in out.stdout, out.stdout + out.stderr
    run.wait_for_completion(timeout_seconds=60)
    _assert_complete(ws, run)


def test_liveness_is_pid_and_start_time_here_and_the_heartbeat_elsewhere():
    from nbml._proc import start_time

    now = time.time()
    me = {"supervisor_pid": os.getpid(), "supervisor_started": start_time(), "supervisor_host": os.uname().nodename,
          "heartbeat_at": now - 3600, "created_at": now - 3600}
    assert recovery.holder_alive(me, now)[0]  # a live process: an old heartbeat doesn't matter
    reused = {**me, "supervisor_started": me["supervisor_started"] - 100}
    alive, found = recovery.holder_alive(reused, now)
    assert not alive and f"process {os.getpid()}" in found  # same pid, another process: a reused pid
    elsewhere = {**me, "supervisor_host": "another-host", "heartbeat_at": now - 5}
    assert recovery.holder_alive(elsewhere, now)[0]
    stale = {**elsewhere, "heartbeat_at": now - recovery.HEARTBEAT_TIMEOUT - 1}
    alive, found = recovery.holder_alive(stale, now)
    assert not alive and "another-host" in found
    unclaimed = {**me, "supervisor_pid": None, "heartbeat_at": None, "created_at": now - 1}
    assert recovery.holder_alive(unclaimed, now)[0]  # a supervisor may still be starting
    assert not recovery.holder_alive({**unclaimed, "created_at": now - recovery.STARTUP_GRACE - 1}, now)[0]


@pytest.mark.parametrize("reader", ["server listing", "widget watcher"])
def test_the_server_and_the_widget_adopt_through_the_same_path(ws, project, reader):
    project(**{"train.py": LOGGER})
    run = Experiment(ws, "readers").submit(ScriptRunConfig(".", "train.py"))
    old = _kill_when_logging(ws, run.id)
    if reader == "server listing":
        import asyncio

        from nbml.server.manager import NbmlManager

        listing = asyncio.run(NbmlManager(ws).runs(experiment="readers", status=None, parent_id=None,
                                                   top_level=True, limit=10, offset=0))
        assert run.id in json.dumps(listing)
    else:
        from nbml.widgets._watch import RunWatcher

        RunWatcher(ws.store, run.id).poll()
    rec = ws.store.get_run(run.id)
    assert rec["adoptions"] == 1 and rec["supervisor_pid"] != old["supervisor_pid"]
    run.wait_for_completion(timeout_seconds=60)
    _assert_complete(ws, run)


@pytest.mark.slow  # 1,500 output files copied back twice: ~25 s on a loaded 2-CPU machine
def test_killing_the_supervisor_while_it_copies_outputs_back_still_completes_with_all_of_them(ws, project):
    project(**{"many.py": """
        import os
        from nbml import Run
        run = Run.get_context()
        os.makedirs("outputs/parts", exist_ok=True)
        for i in range(1500):
            with open(f"outputs/parts/{i}.txt", "w") as f:
                f.write(str(i))
        run.log("written", 1500)
        """})
    run = Experiment(ws, "finalize").submit(ScriptRunConfig(".", "many.py"))
    rec = _wait(lambda: (r := ws.store.get_run(run.id)) and r["status"] in ("Finalizing", "Completed") and r, 60,
                "finalization")
    if rec["status"] == "Completed":
        pytest.skip("finalization was over before it could be interrupted")
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    assert ws.store.get_run(run.id)["status"] == "Finalizing"
    run = Run.get(ws, run.id)
    run.wait_for_completion(timeout_seconds=60)
    assert run.get_status() == "Completed" and run.get_metrics()["written"] == 1500
    parts = run.run_dir / "outputs" / "parts"
    assert len(list(parts.iterdir())) == 1500 and (parts / "1499.txt").read_text() == "1499"
