"""A Spark host attached like HDInsight (nbml.compute.spark): a real pyspark + Java behind the loopback sshd.

The host is this machine reached through the test sshd; its Python is this interpreter, whose ``pip install
pyspark`` put spark-submit beside it. Attaching and its errors need no JVM and stay in the default tier; what
starts Spark (a JVM, slow on a loaded 2-core machine) is in test_spark_runs.py, slow tier.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from sshd import SshServer, ssh_attach_args

from nbml import ComputeTarget, ComputeTargetException, HDInsightCompute
from nbml.compute.spark import failure_reason, submit_argv
from nbml.runs.config import RunConfiguration, SparkConfiguration

pytestmark = pytest.mark.ssh


def spark_attach_args(sshd: SshServer, tmp_path: Path, **extra: object) -> dict[str, object]:
    """HDInsightCompute.attach_configuration keyword arguments for the test sshd's host in local[2] mode."""
    return ssh_attach_args(sshd, tmp_path, **{"python": sys.executable, "master": "local[2]", **extra})


def _nothing_attached(ws, name: str) -> None:  # type: ignore[no-untyped-def]
    assert name not in ws.compute_targets
    with pytest.raises(ComputeTargetException, match="No compute target named"):
        ComputeTarget(ws, name)


def test_attach_finds_spark_submit_and_java_and_stores_no_secret(ws, sshd: SshServer, tmp_path: Path):
    args = spark_attach_args(sshd, tmp_path, spark_conf={"spark.sql.shuffle.partitions": 2})
    config = HDInsightCompute.attach_configuration(args.pop("address"), args.pop("ssh_port"), args.pop("username"),
                                                   private_key_file=args.pop("private_key_file"), **args)
    target = ComputeTarget.attach(ws, "myhdi", config)
    assert isinstance(ComputeTarget(ws, "myhdi"), HDInsightCompute) and target.type == "HDInsight"
    stored = ComputeTarget(ws, "myhdi").config
    assert stored["master"] == "local[2]" and stored["spark_conf"] == {"spark.sql.shuffle.partitions": "2"}
    assert Path(stored["spark_submit"]) == Path(sys.executable).parent / "spark-submit"
    assert stored["java"] and not any("password" in k or "passphrase" in k for k in stored)
    status = target.get_status()
    assert status["state"] == "Succeeded" and status["master"] == "local[2]"
    target.detach()
    _nothing_attached(ws, "myhdi")


def test_a_host_without_spark_submit_is_refused_saying_how_to_point_at_spark(ws, sshd: SshServer, tmp_path: Path):
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None or (Path(python).parent / "spark-submit").exists() or shutil.which("spark-submit",
                                                                                         path="/usr/bin:/bin"):
        pytest.skip("the system Python here has spark-submit beside it")
    with pytest.raises(ComputeTargetException, match="spark-submit was not found on 127.0.0.1") as info:
        HDInsightCompute.attach(ws, "nospark", **spark_attach_args(sshd, tmp_path, python=python))
    assert "SPARK_HOME" in str(info.value) and "spark_home=" in str(info.value)
    _nothing_attached(ws, "nospark")
    with pytest.raises(ComputeTargetException, match="looked at: /opt/no-spark/bin/spark-submit"):
        HDInsightCompute.attach(ws, "nospark", **spark_attach_args(sshd, tmp_path, spark_home="/opt/no-spark"))
    _nothing_attached(ws, "nospark")


def test_a_host_without_java_is_refused_saying_what_to_install(ws, sshd: SshServer, tmp_path: Path):
    empty = tmp_path / "jdk"
    empty.mkdir()
    with pytest.raises(ComputeTargetException, match="Java was not found on 127.0.0.1") as info:
        HDInsightCompute.attach(ws, "nojava", **spark_attach_args(sshd, tmp_path, java_home=str(empty)))
    assert "openjdk-17-jre-headless" in str(info.value) and "java_home=" in str(info.value)
    _nothing_attached(ws, "nojava")


def test_a_mistyped_master_or_option_is_refused_before_connecting(ws, sshd: SshServer, tmp_path: Path):
    with pytest.raises(ComputeTargetException, match=r"'locl\[2\]' is not a Spark master; use yarn"):
        HDInsightCompute.attach(ws, "bad", **spark_attach_args(sshd, tmp_path, master="locl[2]"))
    with pytest.raises(ComputeTargetException, match="Unknown HDInsightCompute option.*sparkhome"):
        HDInsightCompute.attach_configuration("h", sparkhome="/opt/spark")
    _nothing_attached(ws, "bad")


def test_spark_submit_line_takes_the_run_settings_over_the_targets():
    run_config = RunConfiguration(framework="pyspark")
    assert isinstance(run_config.spark, SparkConfiguration)
    run_config.spark.configuration["spark.master"] = "local[1]"
    run_config.spark.configuration["spark.executor.memory"] = "1g"
    run_config.spark.packages = ["org.example:lib:1.0"]
    argv = submit_argv("/s/spark-submit", "/env/python", "/lib/main.py", ["train.py", "0.1"], master="yarn",
                       options=["--driver-memory", "2g"],
                       conf={"spark.executor.memory": "4g", "spark.ui.enabled": "false"},
                       settings=run_config.spark.to_dict(), user_managed=False)
    assert argv[:3] == ["/s/spark-submit", "--master", "local[1]"]
    assert argv[3:7] == ["--driver-memory", "2g", "--packages", "org.example:lib:1.0"]
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert "spark.executor.memory=1g" in confs and "spark.ui.enabled=false" in confs
    assert "spark.pyspark.driver.python=/env/python" in confs and "spark.pyspark.python=/env/python" in confs
    assert argv[-3:] == ["/lib/main.py", "train.py", "0.1"]
    on_yarn = submit_argv("/s/spark-submit", "/env/python", "/m.py", ["t.py"], master="yarn", options=[], conf={},
                          settings={}, user_managed=False)
    # a venv exists on the host only: executors on YARN nodes keep the cluster's Python
    assert not any(a.startswith("spark.pyspark.python=") for a in on_yarn)


def test_spark_submit_failures_are_named():
    yarn = ('Exception in thread "main" org.apache.spark.SparkException: When running with master \'yarn\' either '
            "HADOOP_CONF_DIR or YARN_CONF_DIR must be set in the environment.\n\tat org.apache.spark...\n")
    assert "HADOOP_CONF_DIR" in failure_reason(yarn, "yarn", "h1") and "master 'yarn'" in failure_reason(yarn, "yarn", "h1")
    standalone = "26/01/01 WARN StandaloneAppClient: All masters are unresponsive! Giving up.\n"
    reason = failure_reason(standalone, "spark://m:7077", "h1")
    assert reason and "'spark://m:7077' did not accept the application" in reason
    assert "Java was not found" in (failure_reason("/usr/bin/spark-class: line 71: /x/bin/java: No such file or "
                                                   "directory\n", None, "h1") or "")
    assert failure_reason("Traceback ...\nValueError: bad\n", "local[2]", "h1") is None


def test_ml_compute_attach_spark_magic(ws, sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    start_ipython()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbml")
    with pytest.raises(UsageError, match="are for Spark hosts"):
        shell.run_line_magic("ml_compute", "attach ssh box --address h --user u --master yarn")
    shell.run_line_magic("ml_compute", f"attach spark myhdi --address {sshd.host} --port {sshd.port} --user {sshd.user} "
                                       f"--key {sshd.client_key} --python {sys.executable} --master local[2] "
                                       "--trust-host-key --spark-option=--driver-memory --spark-option=1g")
    assert "as Spark host (master local[2]) 'myhdi'" in capsys.readouterr().out
    target = ComputeTarget(ws, "myhdi")
    assert isinstance(target, HDInsightCompute) and target.master == "local[2]"
    assert target.config["spark_submit_options"] == ["--driver-memory", "1g"]
    shell.run_line_magic("ml_compute", "list")
    row = next(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("myhdi"))
    assert row[:3] == ["myhdi", "spark", "Succeeded"] and "local[2]" in row
