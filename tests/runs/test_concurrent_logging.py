"""Many processes logging at once lose nothing."""

from __future__ import annotations

from nbml import Experiment, ScriptRunConfig

LOGGER = """
import sys
from nbml import Run
run = Run.get_context()
tag = sys.argv[1]
for i in range(10_000):
    run.log("m", i)
run.log("done", tag)
"""


def test_eight_processes_logging_ten_thousand_metrics_each_lose_nothing(ws, project):
    project(**{"logger.py": LOGGER})
    exp = Experiment(ws, "flood")
    runs = [exp.submit(ScriptRunConfig(".", "logger.py", arguments=[f"p{i}"])) for i in range(8)]
    for run in runs:
        run.wait_for_completion(timeout_seconds=240)
    for i, run in enumerate(runs):
        metrics = run.get_metrics()
        assert metrics["m"] == list(range(10_000)), f"{run.id} lost or reordered metrics"
        assert metrics["done"] == f"p{i}"


MULTIPROC = """
import multiprocessing as mp
from nbml import Run

def work(k):
    run = Run.get_context()
    for i in range(2_000):
        run.log(f"w{k}", i)

if __name__ == "__main__":
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(work, range(4))
"""


def test_processes_of_one_job_share_its_event_log_safely(ws, project):
    project(**{"mp.py": MULTIPROC})
    run = Experiment(ws, "mp").submit(ScriptRunConfig(".", "mp.py"))
    run.wait_for_completion(timeout_seconds=120)
    metrics = run.get_metrics()
    for k in range(4):
        assert sorted(metrics[f"w{k}"]) == list(range(2_000))
