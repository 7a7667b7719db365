"""Pipelines AutoML tries in a wall-clock budget: this checkout against an earlier commit, on the same data.

The baseline (``--baseline``, default: the commit before warm workers came in, i.e. the parent of the first
commit that added ``nbml/runs/warm.py``) is checked out in a temporary ``git worktree`` (removed at the end).
Each AutoML run happens in a process of its own whose ``PYTHONPATH`` is the checkout under test, so it
imports that checkout's nbml; the supervisor it starts puts the same checkout first on its path, and the
jobs import the supervisor's nbml through their runtime link, so every process of a run uses one version.

For each dataset (breast_cancer, digits, diabetes, which ship with scikit-learn) both checkouts run the same
AutoML (local target, 2 concurrent iterations of 1 core, 5-fold CV, the budget as experiment_timeout_minutes,
a fresh workspace each), one after the other with the order alternating between datasets so machine load
falls on both. Printed per dataset and checkout: full-fidelity iterations completed, low-fidelity screens
completed (child property ``fidelity`` below 1), the total, failed children and wall time; then the ratio of
pipelines tried, this checkout over the baseline.

With ``--repeats N`` each checkout runs N times per dataset (which goes first alternating) and the ratio is
of the totals: the count of one 30 s run moves by 20 % or more from run to run.

Run: ``python benchmarks/automl_pipelines.py [--budget 30] [--baseline COMMIT] [--datasets ...] [--repeats N]``
(about 4-5 minutes per repeat with the defaults).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
CHECKOUT = HERE.parents[1]
DATASETS = {"breast_cancer": "classification", "digits": "classification", "diabetes": "regression"}
#: A file only checkouts with warm workers have: the default baseline is the commit just before it came.
WARM_MODULE = "nbml/runs/warm.py"


def git(*args: str, cwd: Path = CHECKOUT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def default_baseline() -> str:
    """The parent of the first commit that added the warm-worker module."""
    added = git("log", "--diff-filter=A", "--format=%H", "--", WARM_MODULE).split()
    if not added:
        raise SystemExit(f"no commit adds {WARM_MODULE} in this history; name one with --baseline")
    return git("rev-parse", f"{added[-1]}^")


def ratio(current: float, baseline: float) -> float:
    """current / baseline; inf when the baseline tried nothing and this checkout did, nan when neither did."""
    if baseline:
        return current / baseline
    return math.inf if current else math.nan


def geomean(values: list[float]) -> float:
    usable = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in usable) / len(usable)) if usable else math.nan


# -- one AutoML run, in a process of its own (``--one``) whose PYTHONPATH names the checkout under test ------------
def run_one(name: str, budget: float) -> dict[str, object]:
    import numpy as np
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    import nbml
    from nbml import Experiment, Workspace
    from nbml.automl import AutoMLConfig

    task = DATASETS[name]
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    tr, _te = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0,
                               stratify=y if task == "classification" else None)
    metric = "AUC_weighted" if task == "classification" else "r2_score"
    ws = Workspace(path=tempfile.mkdtemp(prefix="nbml-pipelines-"))
    cfg = AutoMLConfig(task=task, primary_metric=metric, X=X[tr], y=y[tr], n_cross_validations=5,
                       experiment_timeout_minutes=budget / 60.0, max_concurrent_iterations=2,
                       max_cores_per_iteration=1)
    started = time.time()
    run = Experiment(ws, f"pipelines-{name}").submit(cfg)
    run.wait_for_completion(raise_on_error=False)
    wall = time.time() - started
    children = [c for c in run.get_children() if c.type == "automl_iteration"]
    done = [c for c in children if c.get_status() == "Completed"]
    screens = sum(1 for c in done if float(c.get_properties().get("fidelity") or 1) < 1)
    error = (run.get_details().get("error") or {}).get("error", {}).get("message", "")
    found = {"nbml": str(Path(nbml.__file__).resolve().parent), "status": run.get_status(), "wall": wall,
             "error": " ".join(str(error).split())[:200],
             "full": len(done) - screens, "screens": screens, "failed": len(children) - len(done)}
    shutil.rmtree(ws.path, ignore_errors=True)
    return found


def measure(checkout: Path, name: str, budget: float) -> dict[str, object]:
    """Run `name` with `checkout`'s nbml in a new process; what `run_one` found."""
    env = {k: v for k, v in os.environ.items() if k not in ("NBML_WARM_WORKERS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(checkout)
    proc = subprocess.run([sys.executable, str(HERE), "--one", name, "--budget", str(budget)], env=env,
                          cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=budget * 6 + 300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"the run of {name} with {checkout} failed (exit code {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    found = json.loads(lines[-1])
    if Path(str(found["nbml"])) != (checkout / "nbml").resolve():  # the checkout under test, not the installed one
        raise SystemExit(f"the run of {name} imported nbml from {found['nbml']}, not from {checkout}")
    return found  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=30.0, help="seconds of AutoML per run (default 30)")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--baseline", help="the commit to compare with (default: the one before warm workers)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs of each checkout per dataset; the ratio is of the totals (default 1)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, with the nbml on PYTHONPATH
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.budget)), flush=True)
        return 0

    baseline = git("rev-parse", args.baseline) if args.baseline else default_baseline()
    head = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    print(f"baseline {baseline[:10]}: {git('log', '-1', '--format=%ad %s', '--date=short', baseline)[:90]}")
    print(f"current  {head[:10]}{' + uncommitted changes' if dirty else ''} ({CHECKOUT})")
    print(f"AutoML budget {args.budget:g} s per run, 2 iterations at a time, local target; "
          f"load average at the start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    tree = Path(tempfile.mkdtemp(prefix="nbml-baseline-")) / "checkout"
    git("worktree", "add", "--detach", str(tree), baseline)
    try:
        rows = []
        print(f"\n{'dataset':<14} {'checkout':<9} {'full':>5} {'screens':>7} {'total':>5} {'failed':>6} "
              f"{'wall s':>6} {'load':>5}", flush=True)
        for i, name in enumerate(args.datasets):
            order = [("baseline", tree), ("current", CHECKOUT)]
            results = {"baseline": 0, "current": 0}
            for r in range(args.repeats):
                for label, checkout in order if (i + r) % 2 == 0 else order[::-1]:  # alternate which goes first
                    found = measure(checkout, name, args.budget)
                    total = int(found["full"]) + int(found["screens"])  # type: ignore[call-overload]
                    results[label] += total
                    print(f"{name:<14} {label:<9} {found['full']:>5} {found['screens']:>7} {total:>5} "
                          f"{found['failed']:>6} {float(found['wall']):>6.1f} {os.getloadavg()[0]:>5.1f}"  # type: ignore[arg-type]
                          + ("" if found["status"] == "Completed" else f"  ({found['status']}: {found['error']})"),
                          flush=True)
            rows.append((name, results["current"], results["baseline"]))
        print(f"\npipelines tried, current / baseline{f' (totals of {args.repeats} runs each)' if args.repeats > 1 else ''}:")
        for name, cur, base in rows:
            print(f"  {name:<14} {cur:>5} / {base:<5} = {ratio(cur, base):6.2f}x")
        print(f"  geometric mean: {geomean([ratio(c, b) for _n, c, b in rows]):.2f}x; "
              f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=CHECKOUT, capture_output=True)
        shutil.rmtree(tree.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    # benchmarks/ holds a distributed.py: off the path, or `import distributed` (Dask) would find it
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE.parent]
    sys.exit(main())
