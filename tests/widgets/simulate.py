"""Writes an AutoML-shaped parent run into a store the way the coordinator does, on a schedule.

A stand-in used until (and besides) real AutoML runs: the widget only agrees with AutoML on the store
records (children with parent_id and iteration, properties run_preprocessor/run_algorithm, metrics).
Run as a script to feed a store from another process: ``python simulate.py ROOT PARENT_ID N DELAY``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from nbml.store import Store

PIPELINES = [("StandardScalerWrapper", "LogisticRegression"), ("MaxAbsScaler", "LightGBM"),
             ("RobustScaler", "ExtraTrees"), ("MinMaxScaler", "RandomForest"), ("SparseNormalizer", "XGBoost")]


def start_parent(store: Store, parent_id: str, experiment: str = "automl-demo") -> None:
    store.insert_run(parent_id, experiment, "automl", "local",
                     {"primary_metric": "AUC_weighted", "task": "classification"})
    store.add_properties(parent_id, {"primary_metric": "AUC_weighted"})
    store.set_status(parent_id, "Running")


def add_iteration(store: Store, parent_id: str, i: int, *, finish: bool = True, seed: int = 0,
                  log_lines: int = 3) -> str:
    rng = random.Random(seed * 10_000 + i)
    rid = f"{parent_id}_{i}"
    pre, algo = PIPELINES[i % len(PIPELINES)]
    store.insert_run(rid, store.get_run(parent_id)["experiment"], "child", "local", {}, parent_id=parent_id,
                     iteration=i)
    store.add_properties(rid, {"run_preprocessor": pre, "run_algorithm": algo,
                               "hyperparameters": json.dumps({"learning_rate": 0.1 + i / 100, "n_estimators": 10 * i})})
    store.set_status(rid, "Running")
    logs = Path(store.root) / "runs" / rid / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "iteration_log.txt", "a") as fh:
        for k in range(log_lines):
            fh.write(f"iteration {i} ({pre} {algo}): fold {k} done\n")
        if log_lines:
            fh.write("a log line with markup: <script>window.__nbml_xss = 1</script>\n")
    if finish:
        finish_iteration(store, rid, rng)
    return rid


def finish_iteration(store: Store, rid: str, rng: random.Random | None = None) -> None:
    rng = rng or random.Random(rid)
    auc = round(0.80 + rng.random() * 0.19, 4)
    store.log_metric(rid, "AUC_weighted", "scalar", auc)
    store.log_metric(rid, "accuracy", "scalar", round(auc - 0.05 * rng.random(), 4))
    store.log_metric(rid, "log_loss", "scalar", round(1.2 - auc, 4))
    store.set_status(rid, "Completed")


def start_hyperdrive(store: Store, parent_id: str, experiment: str = "hd-demo", total: int = 12) -> None:
    """A HyperDrive parent as submit writes it: primary metric config and max_total_runs."""
    store.insert_run(parent_id, experiment, "hyperdrive", "local",
                     {"primary_metric_name": "accuracy", "primary_metric_goal": "maximize", "max_total_runs": total,
                      "script": "train.py", "arguments": []})
    store.add_properties(parent_id, {"primary_metric_config": {"name": "accuracy", "goal": "maximize"},
                                     "max_total_runs": total})
    store.set_status(parent_id, "Running")


def add_hd_child(store: Store, parent_id: str, i: int, epochs: int = 5) -> str:
    """A HyperDrive child: its sampled hyperparameters, and accuracy logged once per epoch."""
    rid = f"{parent_id}_{i}"
    lr, kernel = [0.001, 0.01, 0.1, 1.0][i % 4], ["linear", "rbf", "poly"][i % 3]
    store.insert_run(rid, store.get_run(parent_id)["experiment"], "script", "local", {}, parent_id=parent_id)
    store.add_properties(rid, {"hyperparameters": json.dumps({"--learning-rate": lr, "--kernel": kernel})})
    store.set_status(rid, "Running")
    for epoch in range(epochs):
        store.log_metric(rid, "accuracy", "scalar", round(0.5 + 0.4 * (1 - 1 / (epoch + 2)) * (0.5 + lr / 2), 4))
    store.set_status(rid, "Completed")
    return rid


def main(argv: list[str]) -> None:
    root, parent_id, n, delay = Path(argv[0]), argv[1], int(argv[2]), float(argv[3])
    store = Store(root)
    if store.get_run(parent_id) is None:
        start_parent(store, parent_id)
    for i in range(n):
        store.heartbeat([parent_id])  # as a supervisor does: readers would otherwise mark the run Failed
        add_iteration(store, parent_id, i)
        time.sleep(delay)
    store.set_status(parent_id, "Completed")


if __name__ == "__main__":
    main(sys.argv[1:])
