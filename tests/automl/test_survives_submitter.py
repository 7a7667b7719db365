"""The experiment outlives the process that submitted it; a new process gets the same get_output()."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nbml import Experiment, Workspace
from nbml.automl import AutoMLRun

SUBMIT = """
import sys
from sklearn.datasets import load_breast_cancer
from nbml import Experiment, Workspace
from nbml.automl import AutoMLConfig

X, y = load_breast_cancer(return_X_y=True)
cfg = AutoMLConfig(task="classification", X=X[20:], y=y[20:], iterations=6, n_cross_validations=3,
                   primary_metric="AUC_weighted", max_concurrent_iterations=2,
                   blocked_models=["SVM", "KNN"])
Experiment(Workspace.from_config(), "survivor").submit(cfg, show_output=True)
print("SUBMITTER FINISHED", flush=True)
"""

OUTPUT = """
import hashlib, sys
from sklearn.datasets import load_breast_cancer
from nbml import Experiment, Workspace
from nbml.automl import AutoMLRun

run = AutoMLRun(Experiment(Workspace.from_config(), "survivor"), sys.argv[1])
best, model = run.get_output()
X, _ = load_breast_cancer(return_X_y=True)
print(best.id, hashlib.sha256(model.predict_proba(X[:20]).round(8).tobytes()).hexdigest())
"""


def _python(code: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, **kw)  # type: ignore[call-overload]


def test_killing_the_submitter_halfway_changes_nothing(ws: Workspace, tmp_path: Path) -> None:
    submitter = _python(SUBMIT, cwd=tmp_path)
    assert submitter.stdout is not None
    run_id, rows = None, 0
    deadline = time.monotonic() + 240
    while rows < 1 and time.monotonic() < deadline:  # read the table until the first iteration finished
        line = submitter.stdout.readline()
        assert line, "the submitting process ended early"
        if line.startswith("Parent Run ID:"):
            run_id = line.split(":", 1)[1].strip()
        elif run_id and line.strip()[:1].isdigit():
            rows += 1
    assert run_id and rows == 1
    os.kill(submitter.pid, signal.SIGKILL)
    submitter.wait()

    run = AutoMLRun(Experiment(ws, "survivor"), run_id)
    assert run.get_status() not in ("Completed", "Failed", "Canceled")  # killed halfway, indeed
    run.wait_for_completion(timeout_seconds=300)
    children = [c for c in run.get_children() if c.type == "automl_iteration"]
    assert len(children) == 6 and all(c.get_status() == "Completed" for c in children)

    best, model = run.get_output()
    from sklearn.datasets import load_breast_cancer

    X, _ = load_breast_cancer(return_X_y=True)
    import hashlib

    here = f"{best.id} {hashlib.sha256(model.predict_proba(X[:20]).round(8).tobytes()).hexdigest()}"
    reader = _python(OUTPUT, run_id, cwd=tmp_path)
    out, _ = reader.communicate(timeout=120)
    assert reader.returncode == 0, out
    assert out.strip().splitlines()[-1] == here
    assert np.mean(model.predict(X[:20]) == load_breast_cancer().target[:20]) >= 0.85
