"""Workspaces for the page tests, written through the Store API (what a supervisor writes when runs end).

- ``hd``: a HyperDrive parent with 12 script children, each with hyperparameters and an accuracy series;
- ``scripts``: three script runs with tags, arguments, a loss series, a log_row table, a logged image and
  outputs (a CSV, a text file, a binary file);
- ``automl``: an AutoML parent with two iterations whose out-of-fold predictions come from real scikit-learn
  models (cross_val_predict on the breast-cancer data), as an iteration saves them.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nbml.server.files import run_dir
from nbml.store import Store


@dataclass
class PageRuns:
    hd_parent: str = "hd_1000_aaaa"
    hd_children: list[str] = field(default_factory=lambda: [f"hd_1000_aaaa_{i}" for i in range(12)])
    scripts: list[str] = field(default_factory=lambda: ["scripts_1_a", "scripts_2_b", "scripts_3_c"])
    automl: str = "automl_3000_cccc"
    iterations: list[str] = field(default_factory=lambda: ["automl_3000_cccc_0", "automl_3000_cccc_1"])


def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), dpi=80)
    ax.plot([0, 1, 2, 3], [3, 1, 2, 0.5], color="#d81b60")
    ax.set_title("residuals")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _hyperdrive(store: Store, r: PageRuns) -> None:
    store.insert_run(r.hd_parent, "hd", "hyperdrive", "local",
                     {"primary_metric_name": "accuracy", "primary_metric_goal": "MAXIMIZE"}, display_name="HD_sweep")
    store.set_status(r.hd_parent, "Running")
    rng = np.random.default_rng(0)
    for i, child in enumerate(r.hd_children):
        lr, batch = float(10 ** rng.uniform(-4, -1)), int(rng.choice([16, 32, 64]))
        store.insert_run(child, "hd", "script", "local",
                         {"script": "train.py", "arguments": ["--epochs", "5", "--lr", str(lr), "--batch", str(batch)]},
                         parent_id=r.hd_parent, display_name=f"HD_sweep_{i}")
        store.set_status(child, "Running")
        store.add_properties(child, {"hyperparameters": json.dumps({"--lr": lr, "--batch": batch})})
        top = 0.95 - abs(np.log10(lr) + 2.5) * 0.1 - (batch == 64) * 0.03
        for step in range(5):
            store.log_metric(child, "accuracy", "scalar", round(top - 0.3 / (step + 1), 4), step=step)
        store.log_metric(child, "loss", "scalar", round(1 - top, 4))
        store.set_status(child, "Completed" if i != 7 else "Failed",
                         error=None if i != 7 else "Traceback ...\nRuntimeError: CUDA out of memory")
    store.set_status(r.hd_parent, "Completed")


def _scripts(store: Store, r: PageRuns) -> None:
    for i, run_id in enumerate(r.scripts):
        store.insert_run(run_id, "scripts", "script", "local",
                         {"script": "train.py", "arguments": ["--alpha", str(0.1 * (i + 1)), "--solver", "adam"]},
                         display_name=f"train_{i} <b>bold</b>")
        store.set_status(run_id, "Running")
        store.set_tags(run_id, {"team": "vision" if i < 2 else "nlp", "note": "<script>alert(1)</script>"})
        for step in range(8):
            store.log_metric(run_id, "loss", "scalar", round(1.0 / (step + 1 + i), 4), step=step)
        store.log_metric(run_id, "accuracy", "scalar", 0.8 + i * 0.05)
        store.set_status(run_id, "Completed")
    first = r.scripts[0]
    folder = run_dir(store.root, first)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "images" / "residuals.png").write_bytes(_png())
    store.log_metric(first, "residuals", "image", "images/residuals.png")
    for epoch in range(3):
        store.log_metric(first, "per_epoch", "row", {"epoch": epoch, "val_loss": round(0.5 / (epoch + 1), 3)})
    out = folder / "outputs"
    (out / "data").mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{k},{k * k},name_{k}" for k in range(100))
    (out / "data" / "predictions.csv").write_text("id,square,label\n" + rows + "\n")
    (out / "notes.txt").write_text("trained with <alpha> 0.1\n")
    (out / "model.pkl").write_bytes(b"\x80\x04binary\x00model")
    (out / "page.html").write_text("<script>alert('from a job')</script>")
    logs = folder / "nbml-logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "driver_log.txt").write_text("epoch 1\nepoch 2 <done>\n")


def _automl(store: Store, r: PageRuns) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    labels = np.array(["benign", "malignant"])[y]
    store.insert_run(r.automl, "automl", "automl", "local",
                     {"settings": {"task": "classification", "primary_metric": "AUC_weighted"}},
                     display_name="AutoML_cccc")
    store.set_status(r.automl, "Running")
    store.add_properties(r.automl, {"task": "classification", "primary_metric": "AUC_weighted", "runTemplate": "AutoML"})
    models = [("LogisticRegression", make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=500)),
               {"C": 0.5}), ("GaussianNB", GaussianNB(), {"var_smoothing": 1e-9})]
    best = None
    for n, (run_id, (algo, model, params)) in enumerate(zip(r.iterations, models, strict=True)):
        store.insert_run(run_id, "automl", "automl_iteration", "local",
                         {"automl_spec": {"task": "classification", "algorithm": algo}, "primary_metric": "AUC_weighted"},
                         parent_id=r.automl, iteration=n, display_name=f"StandardScalerWrapper {algo}")
        store.set_status(run_id, "Running")
        store.add_properties(run_id, {"iteration": str(n), "run_algorithm": algo, "run_preprocessor": "StandardScalerWrapper",
                                      "hyperparameters": json.dumps(params), "pipeline_name": algo})
        proba = cross_val_predict(model, X, labels, cv=3, method="predict_proba")
        from sklearn.metrics import accuracy_score, roc_auc_score

        auc = float(roc_auc_score(y, proba[:, 1]))
        out = run_dir(store.root, run_id) / "outputs"
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / "predictions.npz", pred=proba, index=np.arange(len(y)), y_true=labels,
                 classes=np.array(["benign", "malignant"]))
        store.log_metric(run_id, "AUC_weighted", "scalar", auc)
        store.log_metric(run_id, "accuracy", "scalar", float(accuracy_score(labels, np.array(["benign", "malignant"])[proba.argmax(1)])))
        store.set_status(run_id, "Completed")
        best = max(best or 0.0, auc)
    store.log_metric(r.automl, "AUC_weighted", "scalar", best)
    store.set_status(r.automl, "Completed")


def seed(workspace: Path) -> PageRuns:
    store = Store(workspace)
    r = PageRuns()
    try:
        _hyperdrive(store, r)
        _scripts(store, r)
        _automl(store, r)
    finally:
        store.db.close()
    return r
