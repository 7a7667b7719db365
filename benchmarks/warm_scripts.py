"""Consecutive plain script runs, cold vs opted in to a shared warm worker (run_config.warm_worker = True).

Each run is a real submit (`Experiment.submit(ScriptRunConfig(...))` on the local target: a supervisor per
run, the run's own status, logs, metric and output) of a trivial script that imports scikit-learn at its top
level and logs one metric. N runs one after another, each waited for before the next is submitted; the
figure is submit-to-Completed seconds per run. *Cold*: every run starts a new interpreter that imports
scikit-learn. *Warm*: the first run starts the workspace's warm worker (its imports done once), every later
run claims it. Printed: per mode the first run, the median and mean of the others, and the cold/warm ratio
of the medians; plus the load average, since the machine may be shared.

Run: ``python benchmarks/warm_scripts.py [N]`` (default N=10).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """
import sklearn.linear_model  # a package a training script imports at the top
from nbml import Run
run = Run.get_context()
run.log("x", 1)
open("outputs/o.txt", "w").write("o")
"""


def consecutive(ws: object, src: Path, n: int, warm: bool) -> list[float]:
    from nbml import Experiment, ScriptRunConfig

    times = []
    for _ in range(n):
        cfg = ScriptRunConfig(str(src), "job.py")
        cfg.run_config.warm_worker = warm
        t0 = time.perf_counter()
        run = Experiment(ws, "warm" if warm else "cold").submit(cfg)  # type: ignore[arg-type]
        run.wait_for_completion(raise_on_error=True)
        times.append(time.perf_counter() - t0)
        assert run.get_metrics()["x"] in (1, [1]) and (run.run_dir / "outputs" / "o.txt").exists()
    return times


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    home = Path(tempfile.mkdtemp(prefix="nbml-bench-warm-scripts-"))
    os.environ["NBML_HOME"] = str(home / "home")
    from nbml import Workspace
    from nbml.runs.warm_shared import stop_workers

    src = home / "project"
    src.mkdir()
    (src / "job.py").write_text(SCRIPT)
    ws = Workspace.from_config(str(home))
    print(f"{n} consecutive script runs importing scikit-learn, local target; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        results = {}
        for warm in (False, True):
            times = consecutive(ws, src, n, warm)
            mode = "warm" if warm else "cold"
            results[mode] = times
            rest = times[1:] or times
            print(f"{mode}: first {times[0]:.2f} s, then median {statistics.median(rest):.2f} s, "
                  f"mean {statistics.fmean(rest):.2f} s per run (submit to Completed)")
        cold, warm_ = statistics.median(results["cold"][1:] or results["cold"]), \
            statistics.median(results["warm"][1:] or results["warm"])
        print(f"cold/warm ratio of the medians: {cold / warm_:.2f}x (warm runs {cold - warm_:.2f} s sooner each)")
    finally:
        stop_workers(ws)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
