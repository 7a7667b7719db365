"""Runs on a Spark host (slow tier: each starts a JVM): the seed's PySpark iris script, cancel, a cut link, a
master that refuses the application. Real pyspark and Java, reached through the loopback sshd, master local[2].
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from sshd import SshServer
from test_spark import spark_attach_args
from waiting import wait_status

from nbml import Experiment, HDInsightCompute, ScriptRunConfig
from nbml.runs.config import RunConfiguration

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

#: Spark settings that keep a tiny job quick on a small machine: 2 shuffle partitions (200 by default), and a
#: driver JVM that compiles with C1 only and collects with the serial GC (about 40% less CPU for the iris run).
QUICK = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2", "spark.ui.showConsoleProgress": "false",
         "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}


def _seed_folder() -> Path:
    for parent in Path(__file__).resolve().parents:
        folder = parent / "shared" / "azure-samples" / "training" / "train-in-spark"
        if folder.is_dir():
            return folder
    pytest.skip("no ../shared/azure-samples/training/train-in-spark next to the repository")


@pytest.fixture
def myhdi(ws, sshd: SshServer, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    HDInsightCompute.attach(ws, "myhdi", **spark_attach_args(sshd, tmp_path, spark_conf=QUICK))
    return "myhdi"


def _job_processes(job_dir: Path) -> list[int]:
    """Processes (spark-submit's JVM, the driver, local executors' Python workers) working in the job folder."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd").startswith(str(job_dir)):
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def test_the_seed_iris_script_logs_metrics_writes_outputs_and_survives_a_cut_link(ws, project, myhdi,
                                                                                  sshd: SshServer):
    seed = _seed_folder()
    script = (seed / "train-spark.py").read_text().replace("from azureml.core.run import Run", "from nbml import Run")
    # ...plus what a training script keeps: a file in ./outputs (the seed's script writes none)
    script += "\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/accuracy.txt', 'w').write(str(accuracy))\n"
    folder = project(**{"train-spark.py": script})
    (folder / "iris.csv").write_bytes((seed / "iris.csv").read_bytes())
    run_config = RunConfiguration(framework="pyspark")
    run_config.target = myhdi
    run = Experiment(ws, "train-on-spark").submit(ScriptRunConfig(".", "train-spark.py", run_config=run_config))
    deadline = time.monotonic() + 240
    while "spark_application_id" not in run.get_properties() and time.monotonic() < deadline:
        assert run.get_status() not in ("Failed", "Canceled"), run.get_details().get("error")
        time.sleep(0.2)
    props = run.get_properties()
    assert re.fullmatch(r"local-\d+", props["spark_application_id"])
    assert re.fullmatch(r"http://[\w.:-]+:\d+", props["spark_ui_url"])
    assert sshd.kill_connections() > 0  # the supervisor's link drops while Spark runs
    run.wait_for_completion(raise_on_error=True)
    metrics = run.get_metrics()
    assert metrics["Regularization Rate"] == 0.01 and 0.5 <= metrics["Accuracy"] <= 1.0
    assert float((run.run_dir / "outputs" / "accuracy.txt").read_text()) == metrics["Accuracy"]
    log = (run.run_dir / "nbml-logs" / "driver_log.txt").read_text()
    assert "Spark version: " in log and "First 10 rows of Iris dataset:" in log and "Accuracy is" in log
    assert f"Spark application {props['spark_application_id']}" in log
    assert "reconnect" in (run.run_dir / "nbml-logs" / "prepare_log.txt").read_text()


CANCEL = """
import time
import pyspark
from nbml import Run
run = Run.get_context()
spark = pyspark.sql.SparkSession.builder.appName("cancel").getOrCreate()
run.log("started", 1)
def slow(x):
    import time
    time.sleep(600)
    return x
spark.sparkContext.parallelize(range(2), 2).map(slow).collect()
"""


def test_cancel_stops_the_spark_application_and_its_processes(ws, project, myhdi, tmp_path: Path):
    project(**{"cancel.py": CANCEL})
    run = Experiment(ws, "spark-cancel").submit(ScriptRunConfig(".", "cancel.py", compute_target=myhdi))
    deadline = time.monotonic() + 180
    while "started" not in run.get_metrics() and time.monotonic() < deadline:
        assert run.get_status() not in ("Failed", "Completed"), run.get_details().get("error")
        time.sleep(0.2)
    job_dir = tmp_path / "remote-runs" / run.id
    assert _job_processes(job_dir)  # the JVM and the driver work there
    assert run.get_properties()["spark_application_id"].startswith("local-")
    run.cancel()
    assert wait_status(run, {"Canceled", "Failed", "Completed"}, 60) == "Canceled"
    deadline = time.monotonic() + 20
    while _job_processes(job_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _job_processes(job_dir)


def test_a_master_that_refuses_the_application_fails_the_run_saying_why(ws, project, myhdi):
    project(**{"t.py": "print('never')\n"})
    run_config = RunConfiguration(framework="pyspark")
    run_config.spark.configuration["spark.master"] = "yarn"  # no HADOOP_CONF_DIR on this host
    run = Experiment(ws, "spark-refused").submit(ScriptRunConfig(".", "t.py", compute_target=myhdi,
                                                                 run_config=run_config))
    assert wait_status(run, {"Failed", "Completed", "Canceled"}, 180) == "Failed"
    message = run.get_details()["error"]["error"]["message"]
    assert "The master 'yarn' can't take the application on 127.0.0.1" in message and "HADOOP_CONF_DIR" in message
