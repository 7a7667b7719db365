"""Run lifecycle across processes: watch, reattach, cancel, survive the submitter, fail loudly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from waiting import wait_status

from nbml import ActivityFailedException, Experiment, Run, ScriptRunConfig

SLEEPER = """
import sys, time
from nbml import Run
run = Run.get_context()
for i in range(int(sys.argv[1])):
    run.log("tick", i)
    print("tick", i, flush=True)
    time.sleep(0.5)
"""


def _submit_in_subprocess(ws_root: Path, project: Path, script: str, args: list[str], wait: bool) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys
        from nbml import Workspace, Experiment, ScriptRunConfig
        ws = Workspace(path={str(ws_root)!r})
        run = Experiment(ws, "xproc").submit(ScriptRunConfig({str(project)!r}, {script!r}, arguments={args!r}))
        print(run.id, flush=True)
        if {wait!r}:
            run.wait_for_completion()
        """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """The process no longer runs (absent, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_run_started_in_one_process_is_watched_and_cancelled_from_another(ws, project):
    folder = project(**{"sleeper.py": SLEEPER})
    proc = _submit_in_subprocess(ws.path, folder, "sleeper.py", ["120"], wait=True)
    run_id = proc.stdout.readline().strip()
    run = Run.get(ws, run_id)
    wait_status(run, {"Running"}, 30)
    deadline = time.monotonic() + 20
    while "tick" not in run.get_metrics() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.get_metrics()["tick"] is not None  # metrics flow while it runs
    t0 = time.monotonic()
    run.cancel()
    assert wait_status(run, {"Canceled"}, 5) == "Canceled"
    assert time.monotonic() - t0 < 5
    proc.wait(timeout=10)  # the watching process saw the end too
    handle = run._refresh()["handle_json"]
    pid = __import__("json").loads(handle)["data"]["pid"]
    assert _gone(pid)  # the job itself is gone


def test_killing_the_submitting_process_does_not_stop_the_run(ws, project):
    folder = project(**{"sleeper.py": SLEEPER})
    proc = _submit_in_subprocess(ws.path, folder, "sleeper.py", ["4"], wait=True)
    run_id = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = Run.get(ws, run_id)
    assert wait_status(run, {"Completed", "Failed", "Canceled"}, 60) == "Completed"
    assert run.get_metrics()["tick"] == [0, 1, 2, 3]


def test_script_that_raises_ends_failed_with_its_traceback(ws, project):
    project(**{"boom.py": "def f():\n    raise ValueError('bad learning rate')\nprint('starting')\nf()\n"})
    run = Experiment(ws, "fails").submit(ScriptRunConfig(".", "boom.py"))
    with pytest.raises(ActivityFailedException, match="bad learning rate"):
        run.wait_for_completion()
    assert run.get_status() == "Failed"
    details = run.get_details()
    assert "ValueError: bad learning rate" in details["error"]["error"]["message"]
    log = (run.run_dir / "nbml-logs" / "driver_log.txt").read_text()
    assert "Traceback (most recent call last)" in log and "starting" in log


def test_max_run_duration_is_enforced(ws, project):
    project(**{"sleeper.py": SLEEPER})
    run = Experiment(ws, "slow").submit(ScriptRunConfig(".", "sleeper.py", arguments=[100],
                                                        max_run_duration_seconds=2))
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Failed"
    assert "max_run_duration_seconds=2" in run.get_details()["error"]["error"]["message"]


def test_outputs_and_logs_survive_a_failed_run(ws, project):
    project(**{"partial.py": "import os\nos.makedirs('outputs', exist_ok=True)\n"
                             "open('outputs/checkpoint.txt','w').write('epoch 3')\nraise SystemExit(3)\n"})
    run = Experiment(ws, "partial").submit(ScriptRunConfig(".", "partial.py"))
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Failed"
    assert "outputs/checkpoint.txt" in run.get_file_names()
    assert "exit code 3" in run.get_details()["error"]["error"]["message"]
