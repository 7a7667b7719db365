# ruff: noqa: UP031 - %-formatting on purpose: this file runs on the host's Python, as old as 3.6
"""The helper the Spark backend runs on the host (``python3 -S -c SOURCE OP ARGS...``), beside the SSH one.

Standard library only, Python 3.6+, like nbml.compute._ssh_remote. It answers one JSON line on stdout.

Operations
----------
check                 {"spark_home", "java_home", "python"} -> {"spark_submit", "spark_home", "java",
                      "looked": [...], "yarn", "home"}: where spark-submit and java are (null when missing)
kill JOB_DIR          asks YARN to kill the job's application (read from JOB_DIR/.nbml/spark_app.json, which
                      the driver writes once its SparkContext runs): {"killed": app id or null, "output"}
"""

import json
import os
import shutil
import subprocess
import sys


def _out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _executable(path):
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def op_check():
    spec = json.load(sys.stdin)
    looked = []
    found = None
    home = spec.get("spark_home")
    if home:  # given when attaching: only that one counts
        home = os.path.expanduser(home)
        looked.append(os.path.join(home, "bin", "spark-submit"))
        found = _executable(looked[-1])
    else:
        if os.environ.get("SPARK_HOME"):
            looked.append(os.path.join(os.environ["SPARK_HOME"], "bin", "spark-submit"))
            found = _executable(looked[-1])
        if not found:
            looked.append("spark-submit on the PATH (%s)" % os.environ.get("PATH", ""))
            found = shutil.which("spark-submit")
        if not found and spec.get("python"):  # pip install pyspark puts spark-submit beside the interpreter
            looked.append(os.path.join(os.path.dirname(spec["python"]), "spark-submit"))
            found = _executable(looked[-1])
            if found:  # its SPARK_HOME is the package: spark-submit looks for it with whatever python3 is first
                home = _pyspark_home(spec["python"])
    java = None
    java_home = spec.get("java_home") or os.environ.get("JAVA_HOME")
    if java_home:
        java = _executable(os.path.join(os.path.expanduser(java_home), "bin", "java"))
    elif shutil.which("java"):
        java = shutil.which("java")
    _out({"spark_submit": found, "spark_home": home or os.environ.get("SPARK_HOME"), "java": java,
          "java_home": java_home, "looked": looked, "yarn": _yarn(), "home": os.path.expanduser("~")})


def _pyspark_home(python):
    try:
        out = subprocess.run([python, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    home = out.decode(errors="replace").strip()
    return home if home and os.path.isdir(home) else None


def _yarn():
    for var in ("HADOOP_YARN_HOME", "HADOOP_HOME"):
        if os.environ.get(var) and _executable(os.path.join(os.environ[var], "bin", "yarn")):
            return os.path.join(os.environ[var], "bin", "yarn")
    return shutil.which("yarn")


def op_kill(job_dir):
    try:
        with open(os.path.join(job_dir, ".nbml", "spark_app.json")) as f:
            app = json.load(f).get("application_id")
    except (OSError, ValueError):
        app = None
    yarn = _yarn()
    if not app or not app.startswith("application_") or not yarn:
        _out({"killed": None, "output": "no YARN application to kill (app %s, yarn %s)" % (app, yarn)})
        return
    try:
        proc = subprocess.run([yarn, "application", "-kill", app], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=120)
        output = proc.stdout.decode(errors="replace")[-2000:]
    except (OSError, subprocess.TimeoutExpired) as exc:
        output = str(exc)
    _out({"killed": app, "output": output})


if __name__ == "__main__":
    globals()["op_" + sys.argv[1]](*[os.path.expanduser(a) for a in sys.argv[2:]])
