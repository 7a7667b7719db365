"""A Spark run's submit-to-first-driver-line time vs ``spark-submit`` run by hand over ``ssh``, in one run.

Starts a real OpenSSH sshd on 127.0.0.1 (root and openssh-server, as the ssh tests need), attaches this
machine through it as a Spark host (HDInsightCompute, master ``local[1]``, spark-submit of this Python's
pyspark) and times, for the same one-line PySpark script:

- nbml: ``experiment.submit(...)`` until the script's first line is in the run's local driver log (snapshot
  upload, environment check, start over SSH, spark-submit's JVM, the driver, the log mirrored back), then
  until the run is Completed;
- by hand: ``ssh HOST 'cd FOLDER && SPARK_HOME=... spark-submit --master local[1] first_line.py'`` until the line
  arrives on the client's stdout, then until ssh exits.

Each figure is the best of ``--repeats`` (3) tries. Both start the same JVM, which is most of the time on a
small machine; nbml's part is the rest. Goal: nbml within 1.5x of the hand-run to the first line.

    python benchmarks/spark.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "targets"))

from sshd import SshServer, available  # noqa: E402

MARK = "nbml-bench-first-line"
SCRIPT = f"print({MARK!r}, flush=True)\n"


def by_hand(server: SshServer, folder: Path, spark_submit: str) -> tuple[float, float]:
    import pyspark

    # A pip-installed pyspark's spark-submit needs SPARK_HOME when the first python3 on the PATH lacks pyspark.
    home = Path(pyspark.__file__).parent
    remote = (f"cd {shlex.quote(str(folder))} && SPARK_HOME={shlex.quote(str(home))} {shlex.quote(spark_submit)} "
              "--master 'local[1]' first_line.py")
    t0 = time.perf_counter()
    proc = subprocess.Popen([*server.ssh_command(), f"{server.user}@{server.host}", remote], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    first = None
    for line in proc.stdout:
        if first is None and MARK in line:
            first = time.perf_counter() - t0
    proc.wait()
    total = time.perf_counter() - t0
    if first is None or proc.returncode:
        raise SystemExit(f"spark-submit by hand failed (exit {proc.returncode})")
    return first, total


def with_nbml(ws: object, folder: Path) -> tuple[float, float]:
    from nbml import Experiment, ScriptRunConfig
    from nbml.runs.config import RunConfiguration

    run_config = RunConfiguration(framework="pyspark")
    run_config.target = "spark-host"
    t0 = time.perf_counter()
    run = Experiment(ws, "bench-spark").submit(ScriptRunConfig(str(folder), "first_line.py", run_config=run_config))
    log = run.run_dir / "nbml-logs" / "driver_log.txt"
    first = None
    while first is None:
        if log.exists() and MARK in log.read_text(errors="replace"):
            first = time.perf_counter() - t0
        elif run.get_status() in ("Failed", "Canceled"):
            raise SystemExit(f"the run failed: {run.get_details().get('error')}")
        else:
            time.sleep(0.02)
    run.wait_for_completion(raise_on_error=True)
    return first, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    why = available()
    if why:
        raise SystemExit(f"can't run: {why}")
    spark_submit = Path(sys.executable).parent / "spark-submit"
    if not spark_submit.exists():
        raise SystemExit("can't run: no spark-submit beside this Python (pip install pyspark, the spark extra)")
    with tempfile.TemporaryDirectory(prefix="nbml-bench-spark-") as tmp:
        root = Path(tmp)
        os.environ["NBML_HOME"] = str(root / "nbml-home")
        from nbml import HDInsightCompute, Workspace

        server = SshServer(root / "sshd").start()
        try:
            ws = Workspace.from_config(root)
            HDInsightCompute.attach(ws, "spark-host", address=server.host, ssh_port=server.port,
                                    username=server.user, private_key_file=str(server.client_key),
                                    known_hosts=str(server.known_hosts), python=sys.executable, master="local[1]",
                                    remote_root=str(root / "remote-cache"), run_root=str(root / "remote-runs"))
            folder = root / "project"
            folder.mkdir()
            (folder / "first_line.py").write_text(SCRIPT)
            nbml_runs, hand_runs = [], []
            for i in range(args.repeats):
                hand_runs.append(by_hand(server, folder, str(spark_submit)))
                nbml_runs.append(with_nbml(ws, folder))
                print(f"try {i + 1}: nbml first line {nbml_runs[-1][0]:.2f} s (done {nbml_runs[-1][1]:.2f} s), "
                      f"by hand {hand_runs[-1][0]:.2f} s (done {hand_runs[-1][1]:.2f} s)", flush=True)
        finally:
            server.stop()
    nbml_first, nbml_total = min(r[0] for r in nbml_runs), min(r[1] for r in nbml_runs)
    hand_first, hand_total = min(r[0] for r in hand_runs), min(r[1] for r in hand_runs)
    print(f"\nbest of {args.repeats}:")
    print(f"  submit -> first driver line:  nbml {nbml_first:6.2f} s   by hand {hand_first:6.2f} s   "
          f"ratio {nbml_first / hand_first:.2f}x (goal <= 1.5x)")
    print(f"  submit -> finished:           nbml {nbml_total:6.2f} s   by hand {hand_total:6.2f} s   "
          f"ratio {nbml_total / hand_total:.2f}x")


if __name__ == "__main__":
    main()
