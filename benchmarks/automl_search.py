"""Pipelines AutoML tries within a wall-clock budget, on datasets that ship with scikit-learn.

For each dataset: one AutoML run on the local target (2 concurrent iterations of 1 thread, 5-fold CV, the
budget as experiment_timeout_minutes); prints the iterations that completed, how many of them were
low-fidelity screens (child property ``fidelity`` below 1), the best cross-validated score and the loss on
held-out rows (classification: 1 - weighted ROC AUC; regression: 1 - R²).

Run it from two checkouts (before/after a change) to compare; the absolute numbers depend on machine load:

    PYTHONPATH=. python benchmarks/automl_search.py --budget 30
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np

DATASETS = {"breast_cancer": "classification", "digits": "classification", "diabetes": "regression"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = ap.parse_args()

    from sklearn import datasets
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    from nbml import Experiment, Workspace
    from nbml.automl import AutoMLConfig

    ws = Workspace(path=tempfile.mkdtemp(prefix="nbml-bench-"))
    print(f"{'dataset':<14} {'completed':>9} {'screens':>7} {'failed':>6} {'wall s':>6} {'cv score':>9} "
          f"{'test loss':>9}  best", flush=True)
    for name in args.datasets:
        task = DATASETS[name]
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        tr, te = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0,
                                  stratify=y if task == "classification" else None)
        metric = "AUC_weighted" if task == "classification" else "r2_score"
        cfg = AutoMLConfig(task=task, primary_metric=metric, X=X[tr], y=y[tr], n_cross_validations=5,
                           experiment_timeout_minutes=args.budget / 60.0, max_concurrent_iterations=2,
                           max_cores_per_iteration=1)
        started = time.time()
        run = Experiment(ws, f"search-{name}").submit(cfg)
        run.wait_for_completion(raise_on_error=False)
        wall = time.time() - started
        children = [c for c in run.get_children() if c.type == "automl_iteration"]
        done = [c for c in children if c.get_status() == "Completed"]
        screens = sum(1 for c in done if float(c.get_properties().get("fidelity", "1") or 1) < 1)
        failed = len(children) - len(done)
        if run.get_status() != "Completed":
            print(f"{name:<14} {len(done):>9} {screens:>7} {failed:>6} {wall:>6.1f}  ({run.get_status()})", flush=True)
            continue
        best, model = run.get_output()
        if task == "classification":
            p = model.predict_proba(X[te])
            test_loss = 1 - (roc_auc_score(y[te], p[:, 1]) if p.shape[1] == 2 else
                             roc_auc_score(y[te], p, average="weighted", multi_class="ovr"))
        else:
            test_loss = 1 - r2_score(y[te], model.predict(X[te]))
        score = best.get_metrics().get(metric)
        print(f"{name:<14} {len(done):>9} {screens:>7} {failed:>6} {wall:>6.1f} {float(score):>9.5f} "
              f"{test_loss:>9.5f}  {best.display_name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
