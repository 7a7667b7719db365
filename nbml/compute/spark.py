"""The Spark backend (kind ``spark``): script runs go to ``spark-submit`` on a host reached over SSH.

It is the SSH backend (nbml.compute.ssh) with another way to start a job. The host is a machine with
``spark-submit`` and Java: a YARN edge node or HDInsight head node, a standalone master, or one machine
running Spark in local mode. Everything else is the SSH backend's: staging into ``/tmp/nbml_run/<run_id>/``,
the job running detached under the wrapper that writes ``.nbml/exit_code`` (so a dropped link is resumed),
events and logs read by offset, outputs copied back.

A script run starts as::

    spark-submit [--master M] [target options] [--packages ...] --conf spark.pyspark.driver.python=PY
        [--conf k=v ...] <nbml on the host>/nbml/compute/_spark_main.py SCRIPT ARGS...

in the job folder (client deploy mode: the driver runs on the host, so its output is the run's driver log and
its ``Run.get_context()`` writes the job folder's ``events.jsonl``). ``_spark_main`` runs the script and
records the application id and Spark UI address as run properties. The master and the ``--conf`` settings
come from the run (``run_config.spark.configuration``, ``spark.master`` there) over the target's
(``master=``, ``spark_conf=``), else the host's own defaults (its ``spark-defaults.conf``, else ``local[*]``).

Python: the driver uses the run's prepared interpreter (the host's Python for a user-managed environment, a
venv on the host for pip packages). Executors get the same interpreter in local mode, and for a user-managed
environment on any master (an interpreter path the cluster's nodes share); on other masters a venv exists on
the host only, so executors keep the cluster's Python unless ``spark.pyspark.python`` is set.

Cancel asks YARN to kill the application (when the id is a YARN one and ``yarn`` is on the host), then stops
the job's process group as for any SSH job: spark-submit, its JVM, the driver and local executors.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from nbml.compute import _spark_remote
from nbml.compute._ssh_conn import SshSession
from nbml.compute.base import (
    DRIVER_LOG,
    SPARK_SETTINGS,
    EnvSpec,
    JobHandle,
    JobSpec,
    JobState,
    LogFn,
    job_argv,
    job_environ,
    wrapper_script,
)
from nbml.compute.ssh import SSHBackend
from nbml.errors import ComputeTargetException

SPARK_HELPER_SOURCE = Path(_spark_remote.__file__).read_text()
MAIN = "nbml/compute/_spark_main.py"
#: Masters spark-submit knows; checked when attaching so a typo fails there, not in a run.
MASTER_RE = re.compile(r"^(yarn|local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]|(spark|k8s|mesos)://\S+)$")
MASTER_HELP = "yarn, spark://HOST:7077, k8s://https://HOST:443, local or local[N]"


def check_master(master: str | None) -> str | None:
    if master is None or master == "":
        return None
    if not isinstance(master, str) or not MASTER_RE.match(master):
        raise ComputeTargetException(f"master={master!r} is not a Spark master; use {MASTER_HELP} (or leave it out "
                                     "for the host's default).")
    return master


def is_local(master: str | None) -> bool:
    return bool(master) and str(master).startswith("local")


def missing_spark_message(address: str, answer: dict[str, Any]) -> str:
    looked = "; ".join(answer.get("looked") or []) or "nowhere"
    return (f"spark-submit was not found on {address} (looked at: {looked}). Install Spark there (or `pip install "
            "pyspark` into the host's Python for local mode), then set SPARK_HOME in the host's environment, pass "
            "spark_home='/path/to/spark' to HDInsightCompute.attach_configuration, or put spark-submit on the PATH.")


def missing_java_message(address: str, answer: dict[str, Any]) -> str:
    where = (f"JAVA_HOME={answer['java_home']} has no bin/java" if answer.get("java_home")
             else "no JAVA_HOME, and no java on the PATH")
    return (f"Java was not found on {address} ({where}); spark-submit needs a Java runtime. Install one there "
            "(e.g. apt-get install openjdk-17-jre-headless) or pass java_home='/usr/lib/jvm/...' to "
            "HDInsightCompute.attach_configuration.")


def checked(address: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The host's check answer, or a clear error when spark-submit or Java is missing."""
    if not answer.get("spark_submit"):
        raise ComputeTargetException(missing_spark_message(address, answer))
    if not answer.get("java"):
        raise ComputeTargetException(missing_java_message(address, answer))
    return answer


# What spark-submit prints when it can't run the application, and what to tell the user.
_FAILURES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"JAVA_HOME is not set|java: (command )?not found|Unable to locate a Java Runtime|"
                r"/bin/java: No such file or directory"),
     "Java was not found when spark-submit ran on {host}: install a Java runtime there (openjdk-17-jre-headless) "
     "or pass java_home= when attaching."),
    (re.compile(r"Could not find valid SPARK_HOME[^\n]*"),
     "spark-submit on {host} could not find its Spark installation: {line} Set SPARK_HOME there or pass "
     "spark_home= when attaching."),
    (re.compile(r"Master must (either )?be yarn or start with[^\n]*"),
     "Spark refused the master {master!r}: {line}. Use " + MASTER_HELP + " (master= when attaching, or "
     "run_config.spark.configuration['spark.master'])."),
    (re.compile(r"When running with master 'yarn' either HADOOP_CONF_DIR or YARN_CONF_DIR must be set[^\n]*"),
     "The master 'yarn' can't take the application on {host}: {line} Set HADOOP_CONF_DIR in the host's "
     "environment (spark-env.sh), or choose another master."),
    (re.compile(r"All masters are unresponsive[^\n]*|Failed to connect to master[^\n]*|"
                r"Application has been killed\. Reason: [^\n]*"),
     "The Spark master {master!r} did not accept the application: {line}. Check that the master runs and is "
     "reachable from {host}."),
    (re.compile(r"Application (application_\S+) failed[^\n]*|Yarn application has already ended[^\n]*|"
                r"finished with failed status[^\n]*|Application \S+ submitted by user \S+ to unknown queue[^\n]*"),
     "YARN did not run the application: {line} (see `yarn logs -applicationId ...` on {host})."),
    (re.compile(r"Exception in thread \"main\" [^\n]*"), "spark-submit failed on {host}: {line}"),
]


def failure_reason(log_tail: str, master: str | None, host: str) -> str | None:
    """A sentence naming why spark-submit failed, from the end of its output; None when nothing matches."""
    for pattern, message in _FAILURES:
        found = list(pattern.finditer(log_tail))
        if found:
            line = found[-1].group(0).strip().removeprefix('Exception in thread "main" ')
            return message.format(master=master or "the host's default", line=line[:500], host=host)
    return None


def submit_argv(spark_submit: str, python: str, main: str, argv: list[str], *, master: str | None,
                options: list[str], conf: dict[str, str], settings: dict[str, Any], user_managed: bool) -> list[str]:
    """The spark-submit command line of one script run (see the module docstring for the precedence)."""
    conf = {**conf, **(settings.get("configuration") or {})}
    master = conf.pop("spark.master", None) or master
    args = [spark_submit]
    if master:
        args += ["--master", master]
    args += list(options)
    if settings.get("packages"):
        args += ["--packages", ",".join(settings["packages"])]
    if settings.get("repositories"):
        args += ["--repositories", ",".join(settings["repositories"])]
    conf.setdefault("spark.pyspark.driver.python", python)
    if is_local(master) or user_managed:
        conf.setdefault("spark.pyspark.python", python)
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return [*args, main, *argv]


class SparkBackend(SSHBackend):
    """Runs script jobs with spark-submit on a host reached over SSH (see the module docstring)."""

    kind = "spark"

    def __init__(self, name: str, config: dict[str, Any], workspace_root: Path) -> None:
        super().__init__(name, config, workspace_root)
        self.master = check_master(config.get("master"))
        self.spark_home = config.get("spark_home")
        self.java_home = config.get("java_home")
        self.submit_options = [str(o) for o in config.get("spark_submit_options") or []]
        self.spark_conf = {str(k): str(v) for k, v in (config.get("spark_conf") or {}).items()}
        self._found: dict[str, Any] | None = None

    async def _spark_helper(self, op: str, *args: str, payload: Any = None) -> Any:
        cmd = " ".join([shlex.quote(self.helper_python), "-S", "-c", shlex.quote(SPARK_HELPER_SOURCE), op,
                        *(shlex.quote(a) for a in args)])
        data = None if payload is None else json.dumps(payload).encode()

        async def go(session: SshSession) -> Any:
            conn = await session.connection()
            result = await conn.run(cmd, input=data, encoding=None, check=False)
            return self._answer(op, result.exit_status, result.stdout, result.stderr, None)

        return await self.session.call(go)

    async def spark_check(self) -> dict[str, Any]:
        """Where spark-submit and Java are on the host; a clear error when either is missing."""
        answer = await self._spark_helper("check", payload={"spark_home": self.spark_home, "java_home": self.java_home,
                                                            "python": self.helper_python})
        self._found = checked(self.settings.address, answer)
        return self._found

    async def prepare(self, env: EnvSpec, log: LogFn) -> str:
        found = await self.spark_check()
        log(f"spark-submit on {self.settings.address}: {found['spark_submit']} (Java: {found['java']}); master: "
            f"{self.master or 'the host default'}")
        python = await super().prepare(env, log)
        if not env.user_managed and env.pip and not is_local(self.master):
            log("Note: the environment's pip packages are in a virtualenv on this host, which the driver uses; "
                "executors on other nodes keep the cluster's Python (set spark.pyspark.python to change that).")
        return python

    async def start(self, job: JobSpec, python: str, job_dir: str) -> JobHandle:
        if job.argv[:1] == ["-m"]:  # a module job (AutoML iteration): a plain Python process, as on SSH
            return await super().start(job, python, job_dir)
        found = self._found or await self.spark_check()
        lib_dir = await self._ensure_lib()
        home = str(found.get("home") or "~")
        main = f"{lib_dir}/{MAIN}"
        if main.startswith("~/"):
            main = home + main[1:]
        settings = json.loads(job.extra_files.get(SPARK_SETTINGS, b"{}") or b"{}")
        master = (settings.get("configuration") or {}).get("spark.master") or self.master
        argv = submit_argv(str(found["spark_submit"]), python, main, job_argv(job, job_dir), master=self.master,
                           options=self.submit_options, conf=self.spark_conf, settings=settings,
                           user_managed=job.env.user_managed or not job.env.pip)
        environ = job_environ(job, job_dir, lib_dir)
        if self.java_home:
            environ["JAVA_HOME"] = str(self.java_home)
        if found.get("spark_home"):
            environ["SPARK_HOME"] = str(found["spark_home"])
        cmd = ["/bin/sh", "-c", wrapper_script(job_dir), "nbml-job", *argv]
        answer = await self._helper("start", job_dir, payload={"cmd": cmd, "env": environ})
        return JobHandle(target=self.name, job_dir=job_dir, data={
            "pid": answer["pid"], "start": answer["start"], "host": self.settings.address, "spark": True,
            "spark_master": master or ""})

    async def poll(self, handle: JobHandle) -> JobState:
        state = await super().poll(handle)
        if handle.data.get("spark") and state.state == "exited" and state.exit_code not in (0, None):
            tail = await self._log_tail(handle)
            reason = failure_reason(tail, handle.data.get("spark_master") or None, self.settings.address)
            if reason:
                state.reason = f"{state.reason}\n{reason}" if state.reason else reason
        return state

    async def _log_tail(self, handle: JobHandle, size: int = 64 << 10) -> str:
        sizes = dict(await self.list_files(handle, "nbml-logs"))
        total = int(sizes.get(DRIVER_LOG, 0))
        data = await self.read(handle, DRIVER_LOG, max(0, total - size), size)
        return data.decode(errors="replace")

    async def cancel(self, handle: JobHandle, grace_seconds: float = 3.0) -> None:
        if handle.data.get("spark"):
            try:  # a YARN application runs on the cluster's nodes: stopping spark-submit alone may leave it
                answer = await self._spark_helper("kill", handle.job_dir)
                if answer.get("killed") and self.log is not None:
                    self.log(f"Asked YARN to kill {answer['killed']}: {answer.get('output', '').strip()[-300:]}")
            except Exception as exc:  # the process group is stopped below either way
                if self.log is not None:
                    self.log(f"Could not ask YARN to kill the application: {exc}")
        await super().cancel(handle, grace_seconds)

    async def status(self) -> dict[str, Any]:
        status = await super().status()
        if status.get("state") != "Succeeded":
            return status
        try:
            found = await self.spark_check()
        except ComputeTargetException as exc:
            return {"state": "Failed", "error": str(exc)}
        return {**status, "spark_submit": found["spark_submit"], "master": self.master or "host default"}
