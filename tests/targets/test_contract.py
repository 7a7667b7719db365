"""What every compute target must do for a user, checked end to end through Experiment.submit.

Runs once per kind listed in conftest.KINDS, against the real engine behind it.
"""

from __future__ import annotations

import time

import pytest
from waiting import wait_status

from nbml import ActivityFailedException, Experiment, Run, ScriptRunConfig

TRAIN = """
import os, sys
from nbml import Run
run = Run.get_context()
lr = float(sys.argv[1])
for epoch in range(5):
    run.log("loss", 1.0 / (epoch + 1) * lr)
run.log("lr", lr)
run.tag("kind", os.environ.get("NBML_TEST_KIND", "?"))
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as f:
    f.write("weights %s" % lr)
os.makedirs("logs", exist_ok=True)
with open("logs/train.log", "w") as f:
    f.write("trained\\n")
from helpers.util import greet
print(greet(), flush=True)
"""

SLEEPER = """
import time
from nbml import Run
run = Run.get_context()
for i in range(600):
    run.log("tick", i)
    time.sleep(0.2)
"""


def test_script_run_completes_with_metrics_outputs_logs_and_stdout(ws, project, target):
    project(**{"train.py": TRAIN, "helpers__util.py": "def greet():\n    return 'hello from helpers'\n",
               "helpers____init__.py": ""})
    run = Experiment(ws, "contract").submit(ScriptRunConfig(".", "train.py", arguments=[0.5], compute_target=target))
    run.wait_for_completion(raise_on_error=True)
    assert run.get_status() == "Completed"
    metrics = run.get_metrics()
    assert metrics["loss"] == pytest.approx([0.5, 0.25, 0.5 / 3, 0.125, 0.1])
    assert metrics["lr"] == 0.5
    names = run.get_file_names()
    assert "outputs/model.txt" in names and "logs/train.log" in names
    assert (run.run_dir / "outputs" / "model.txt").read_text() == "weights 0.5"
    assert "hello from helpers" in (run.run_dir / "nbml-logs" / "driver_log.txt").read_text()


def test_failing_script_ends_failed_with_its_traceback(ws, project, target):
    project(**{"boom.py": "print('starting')\nraise ValueError('bad learning rate')\n"})
    run = Experiment(ws, "contract").submit(ScriptRunConfig(".", "boom.py", compute_target=target))
    with pytest.raises(ActivityFailedException, match="bad learning rate"):
        run.wait_for_completion()
    assert run.get_status() == "Failed"
    assert "ValueError: bad learning rate" in run.get_details()["error"]["error"]["message"]


def test_cancel_stops_the_job_and_its_metrics(ws, project, target):
    project(**{"sleeper.py": SLEEPER})
    run = Experiment(ws, "contract").submit(ScriptRunConfig(".", "sleeper.py", compute_target=target))
    wait_status(run, {"Running"}, 60)
    deadline = time.monotonic() + 30
    while "tick" not in run.get_metrics() and time.monotonic() < deadline:
        time.sleep(0.1)
    run.cancel()
    assert wait_status(run, {"Canceled"}, 20) == "Canceled"
    ticks = _count(run, "tick")
    time.sleep(1.0)
    assert _count(run, "tick") == ticks  # nothing logs any more: the job is gone


def _count(run: Run, name: str) -> int:
    value = run.get_metrics().get(name, [])
    return len(value) if isinstance(value, list) else 1
