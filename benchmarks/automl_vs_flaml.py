"""nbml AutoML against FLAML: same datasets, same outer splits, same wall-clock budgets, same cores.

Datasets ship inside scikit-learn (nothing is downloaded). For each dataset and outer split, both systems
search on the training rows within the budget and predict the held-out test rows; this script scores
both predictions the same way (classification: 1 - weighted one-vs-rest ROC AUC; regression: 1 - R²),
prints the per-dataset scores and the geometric mean of nbml's loss over FLAML's (below 1: nbml ahead).

FLAML runs in its own virtual environment (its pins differ from nbml's), in a subprocess of this script:

    uv venv /tmp/flaml-venv && uv pip install --python /tmp/flaml-venv/bin/python "flaml[automl]"
    python benchmarks/automl_vs_flaml.py --flaml-python /tmp/flaml-venv/bin/python --budgets 30 120

nbml runs on the local target with 2 concurrent iterations of 1 thread each; FLAML with n_jobs=2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = {
    "breast_cancer": "classification",
    "wine": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
LOSS_FLOOR = 1e-4  # a perfect test score would make the ratio infinite


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    X, y = loader(return_X_y=True)
    return np.asarray(X, dtype=float), np.asarray(y)


def split(name: str, task: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    X, y = load(name)
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=0.25, random_state=seed,
                                   stratify=y if task == "classification" else None)
    return train, test


def loss(task: str, y_true: np.ndarray, pred: np.ndarray, classes: np.ndarray | None) -> float:
    from sklearn.metrics import r2_score, roc_auc_score

    if task == "regression":
        return 1.0 - float(r2_score(y_true, pred))
    onehot = (y_true[:, None] == np.asarray(classes)[None, :]).astype(int)
    if onehot.shape[1] == 2:
        return 1.0 - float(roc_auc_score(y_true == classes[1], pred[:, 1]))
    return 1.0 - float(roc_auc_score(onehot, pred, average="weighted", multi_class="ovr"))


# -- FLAML, in its own interpreter -------------------------------------------------------------------
def flaml_worker(name: str, task: str, seed: int, budget: float, out: str) -> None:
    from flaml import AutoML

    X, y = load(name)
    train, test = split(name, task, seed)
    automl = AutoML()
    classes = np.unique(y[train]) if task == "classification" else None
    metric = "r2" if task == "regression" else ("roc_auc" if len(classes) == 2 else "roc_auc_ovr_weighted")
    automl.fit(X[train], y[train], task=task, metric=metric, time_budget=budget, n_jobs=2, seed=seed,
               verbose=0)
    pred = automl.predict_proba(X[test]) if task == "classification" else automl.predict(X[test])
    Path(out).write_text(json.dumps({"pred": np.asarray(pred).tolist(), "best": automl.best_estimator,
                                     "classes": None if classes is None else classes.tolist()}))


def run_flaml(python: str, name: str, task: str, seed: int, budget: float) -> tuple[np.ndarray, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pred.json")
        started = time.time()
        subprocess.run([python, __file__, "--flaml-worker", name, task, str(seed), str(budget), out], check=True)
        wall = time.time() - started
        result = json.loads(Path(out).read_text())
    return np.asarray(result["pred"], dtype=float), wall, str(result["best"])


# -- nbml ------------------------------------------------------------------------------------------
def run_nbml(ws: Any, name: str, task: str, seed: int, budget: float) -> tuple[np.ndarray, float, str, int]:
    from nbml import Experiment
    from nbml.automl import AutoMLConfig

    X, y = load(name)
    train, test = split(name, task, seed)
    metric = "AUC_weighted" if task == "classification" else "r2_score"
    cfg = AutoMLConfig(task=task, primary_metric=metric, X=X[train], y=y[train], n_cross_validations=5,
                       experiment_timeout_minutes=budget / 60.0, max_concurrent_iterations=2,
                       max_cores_per_iteration=1, seed=seed)
    started = time.time()
    run = Experiment(ws, f"bench-{name}").submit(cfg)
    run.wait_for_completion(raise_on_error=True)
    best, model = run.get_output()
    wall = time.time() - started
    pred = model.predict_proba(X[test]) if task == "classification" else model.predict(X[test])
    n_iter = sum(1 for c in run.get_children() if c.type == "automl_iteration")
    return np.asarray(pred, dtype=float), wall, best.display_name, n_iter


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flaml-python", default="/tmp/flaml-venv/bin/python")
    ap.add_argument("--budgets", type=float, nargs="+", default=[30.0, 120.0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--splits", type=int, default=1, help="outer splits per dataset (seeds 0..n-1)")
    ap.add_argument("--flaml-worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.flaml_worker:
        name, task, seed, budget, out = args.flaml_worker
        flaml_worker(name, task, int(seed), float(budget), out)
        return 0

    from nbml import Workspace

    ws = Workspace.from_config(tempfile.mkdtemp(prefix="nbml-bench-"))
    print(f"{'budget':>6}  {'dataset':<14} {'split':>5}  {'nbml loss':>10} {'FLAML loss':>10}  {'ratio':>6}  "
          f"{'nbml s':>6} {'FLAML s':>7}  nbml best (iterations) / FLAML best", flush=True)
    for budget in args.budgets:
        ratios = []
        for name in args.datasets:
            task = DATASETS[name]
            _, y = load(name)
            for seed in range(args.splits):
                train, test = split(name, task, seed)
                classes = np.unique(y[train]) if task == "classification" else None
                p_nbml, t_nbml, best_nbml, n_iter = run_nbml(ws, name, task, seed, budget)
                p_flaml, t_flaml, best_flaml = run_flaml(args.flaml_python, name, task, seed, budget)
                l_nbml = loss(task, y[test], p_nbml, classes)
                l_flaml = loss(task, y[test], p_flaml, classes)
                ratio = max(l_nbml, LOSS_FLOOR) / max(l_flaml, LOSS_FLOOR)
                ratios.append(ratio)
                print(f"{budget:>6.0f}  {name:<14} {seed:>5}  {l_nbml:>10.5f} {l_flaml:>10.5f}  {ratio:>6.3f}  "
                      f"{t_nbml:>6.1f} {t_flaml:>7.1f}  {best_nbml} ({n_iter}) / {best_flaml}", flush=True)
        gmean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"budget {budget:.0f} s: geometric mean of loss ratios nbml/FLAML = {gmean:.3f} "
              f"({'nbml ahead' if gmean < 1 else 'FLAML ahead'})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
