"""Foundation benchmarks, each measured against a baseline in the same run.

1. submit() to the first line of a trivial script, versus ``python script.py`` directly (warm environment).
2. metric logging throughput inside a script, versus ``mlflow.log_metric`` on its default sqlite backend
   (when mlflow is installed).
3. snapshot of a 10,000-file folder: first time, and again unchanged, versus ``cp -r`` of the same folder.

Run: ``python benchmarks/foundation.py`` (prints a table; no assertion: the goals are read from it).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_LINE = "import time\nprint(repr(time.time()), flush=True)\n"
LOGGER = """
import sys, time
from nbml import Run
run = Run.get_context()
n = int(sys.argv[1])
t = time.perf_counter()
for i in range(n):
    run.log("loss", i * 0.001)
print("ELAPSED", time.perf_counter() - t, flush=True)
"""
MLFLOW = """
import sys, time, mlflow
mlflow.set_tracking_uri("sqlite:///" + sys.argv[2])
n = int(sys.argv[1])
with mlflow.start_run():
    t = time.perf_counter()
    for i in range(n):
        mlflow.log_metric("loss", i * 0.001, step=i)
    print("ELAPSED", time.perf_counter() - t, flush=True)
"""


def _elapsed(text: str) -> float:
    return float(next(ln for ln in text.splitlines() if ln.startswith("ELAPSED")).split()[1])


def bench_first_line(tmp: Path, repeats: int = 7) -> tuple[float, float]:
    from nbml import Experiment, ScriptRunConfig, Workspace

    ws = Workspace(path=tmp / "ws")
    src = tmp / "src"
    src.mkdir()
    (src / "first.py").write_text(FIRST_LINE)
    direct, nbml_ = [], []
    exp = Experiment(ws, "bench-first-line")
    exp.submit(ScriptRunConfig(str(src), "first.py")).wait_for_completion()  # warm: env and caches
    for _ in range(repeats):
        t0 = time.time()
        out = subprocess.run([sys.executable, str(src / "first.py")], capture_output=True, text=True, check=True)
        direct.append(float(out.stdout.split()[0]) - t0)
        t0 = time.time()
        run = exp.submit(ScriptRunConfig(str(src), "first.py"))
        run.wait_for_completion()
        first = (run.run_dir / "nbml-logs" / "driver_log.txt").read_text().split()[0]
        nbml_.append(float(first) - t0)
    return statistics.median(direct), statistics.median(nbml_)


def bench_logging(tmp: Path, n: int = 100_000) -> tuple[float, float | None, int]:
    from nbml import Experiment, ScriptRunConfig, Workspace

    ws = Workspace(path=tmp / "ws")
    src = tmp / "log-src"
    src.mkdir()
    (src / "logger.py").write_text(LOGGER)
    run = Experiment(ws, "bench-logging").submit(ScriptRunConfig(str(src), "logger.py", arguments=[n]))
    run.wait_for_completion()
    assert len(run.get_metrics()["loss"]) == n, "metrics were lost"
    nbml_rate = n / _elapsed((run.run_dir / "nbml-logs" / "driver_log.txt").read_text())
    # mlflow's pins often clash with a project's: it may live in its own venv (MLFLOW_PYTHON=/path/bin/python).
    ml_python = os.environ.get("MLFLOW_PYTHON", sys.executable)
    probe = subprocess.run([ml_python, "-c", "import mlflow"], capture_output=True, check=False)
    if probe.returncode != 0:
        return nbml_rate, None, 0
    m = 2_000
    (src / "ml.py").write_text(MLFLOW)
    out = subprocess.run([ml_python, str(src / "ml.py"), str(m), str(tmp / "mlflow.db")], capture_output=True,
                         text=True, check=True, cwd=tmp)
    return nbml_rate, m / _elapsed(out.stdout), m


def bench_snapshot(tmp: Path, files: int = 10_000) -> tuple[float, float, float]:
    from nbml import Workspace
    from nbml.snapshot import take_snapshot

    ws = Workspace(path=tmp / "ws-snap")
    src = tmp / "many"
    for i in range(files):
        d = src / f"d{i // 500}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.py").write_text(f"# file {i}\nVALUE = {i}\n" * 20)
    t = time.perf_counter()
    shutil.copytree(src, tmp / "copy")
    cp = time.perf_counter() - t
    t = time.perf_counter()
    take_snapshot(ws, src)
    first = time.perf_counter() - t
    t = time.perf_counter()
    take_snapshot(ws, src)
    return cp, first, time.perf_counter() - t


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["NBML_HOME"] = str(tmp / "home")
        direct, via = bench_first_line(tmp)
        print("== submit() to first line of a trivial script (median of 7, warm environment)")
        print(f"  python script.py directly : {direct * 1000:8.0f} ms")
        print(f"  nbml submit()             : {via * 1000:8.0f} ms")
        print(f"  added by nbml             : {(via - direct) * 1000:8.0f} ms   (goal < 1500 ms)   ratio {via / direct:.1f}x")
        rate, ml_rate, m = bench_logging(tmp)
        print("== metric logging throughput inside a script")
        print(f"  nbml run.log              : {rate:12,.0f} metrics/s (100,000 logged, all ingested)")
        if ml_rate:
            print(f"  mlflow.log_metric sqlite  : {ml_rate:12,.0f} metrics/s ({m:,} logged)")
            print(f"  ratio                     : {rate / ml_rate:12,.0f}x   (goal >= 100x)")
        else:
            print("  mlflow not found: `pip install mlflow` (or set MLFLOW_PYTHON to a venv's python) to compare")
        cp, first, again = bench_snapshot(tmp)
        print("== snapshot of a 10,000-file folder")
        print(f"  cp -r baseline            : {cp:8.2f} s")
        print(f"  nbml first snapshot       : {first:8.2f} s   ratio {first / cp:.1f}x")
        print(f"  nbml unchanged snapshot   : {again:8.2f} s   ratio {again / cp:.2f}x")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
