"""Execute every example notebook top to bottom with a real kernel (nbclient) and check what it shows."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _has(module: str, name: str) -> bool:
    try:
        mod = __import__(module, fromlist=[name])
        return hasattr(mod, name)
    except ImportError:
        return False


@pytest.fixture
def nb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A scratch folder and an embedded default workspace of its own; the kernel inherits both."""
    monkeypatch.setenv("NBML_HOME", str(tmp_path / "nbml-home"))
    monkeypatch.delenv("NBML_WORKSPACE", raising=False)
    for var in ("NBML_SSH_HOST", "NBML_SSH_USER", "NBML_SSH_PORT", "NBML_SSH_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    work = tmp_path / "work"
    work.mkdir()
    yield work
    # A notebook that created a cluster target (03: AmlCompute) leaves its cluster host running: stop it.
    from nbml.compute import _dask_cluster

    home = tmp_path / "nbml-home"
    for folder in sorted((home / "clusters").glob("*")):
        _dask_cluster.stop(home, folder.name)


# Appended to every executed notebook: waits until each RunDetails widget has seen its run end and stopped
# polling, so the widget state nbclient saves is the final one. The widgets update on the kernel's own loop,
# which this cell blocks, so it pumps them the way wait_for_completion does.
SETTLE_WIDGETS = """
import time
from nbml.widgets import run_details as _rd
_deadline = time.monotonic() + 120
while True:
    _busy = [d.run_id for d in list(_rd._LIVE) if d.polling]
    if not _busy:
        break
    assert time.monotonic() < _deadline, f"RunDetails still polling for {_busy}"
    _rd.pump()
    time.sleep(0.05)
"""


def run_notebook(nb: Any, timeout: int, **kwargs: Any) -> Any:
    """Execute `nb` with a real kernel; the widget state saved with it is the final one (SETTLE_WIDGETS)."""
    nb.cells.append(nbformat.v4.new_code_cell(SETTLE_WIDGETS))
    NotebookClient(nb, timeout=timeout, kernel_name="python3", **kwargs).execute()
    nb.cells.pop()
    return nb


def execute(path: Path, work: Path, timeout: int = 300) -> Any:
    shutil.copy(path, work / path.name)
    nb = nbformat.read(work / path.name, as_version=4)
    run_notebook(nb, timeout, resources={"metadata": {"path": str(work)}})
    nbformat.write(nb, work / path.name)
    return nb


def text_of(nb: Any) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def widget_views(nb: Any) -> int:
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if WIDGET_MIME in o.get("data", {}))


def widget_html(nb: Any) -> str:
    """Every HTML value in the saved widget state (what the widgets showed when the notebook ended)."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return "\n".join(str(m.get("state", {}).get("value", "")) for m in state.values())


def test_every_example_notebook_is_covered() -> None:
    assert [p.name for p in NOTEBOOKS] == ["01-train-on-local.ipynb", "02-train-on-remote-ssh.ipynb",
                                           "03-automl-remote.ipynb", "04-register-model.ipynb",
                                           "05-distributed.ipynb"]


def test_train_on_local_and_the_widget_resumes_in_a_new_kernel(nb_env: Path) -> None:
    nb = execute(REPO / "notebooks" / "01-train-on-local.ipynb", nb_env)
    out = text_of(nb)
    assert "Accuracy of SVM classifier on test set" in out, out
    assert "'Kernel type': 'rbf'" in out, out  # %ml_submit passed the arguments after --
    assert "Submitted train_iris.py to local" in out, out
    assert widget_views(nb) == 2
    assert "Completed" in widget_html(nb), widget_html(nb)  # the widget state nbclient saved with the notebook
    # A new kernel reattaches to the finished run by id and shows it.
    from nbml import Workspace

    ws = Workspace.from_config()
    run_id = ws.store.list_runs(experiment="Tutorial-TrainIRIS", limit=1, newest_first=False)[0]["run_id"]
    again = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"from nbml import Run, RunDetails, Workspace\nRunDetails(Run.get(Workspace.from_config(), {run_id!r})).show()")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    run_notebook(again, 120)
    assert widget_views(again) == 1
    html = widget_html(again)
    assert run_id in html and "Completed" in html and "Accuracy" in html, html


def test_train_over_ssh_falls_back_to_local_when_no_host_is_configured(nb_env: Path) -> None:
    nb = execute(REPO / "notebooks" / "02-train-on-remote-ssh.ipynb", nb_env)
    out = text_of(nb)
    assert "NBML_SSH_HOST is not set: using the local target" in out
    assert "'Accuracy':" in out and widget_views(nb) == 1


@pytest.mark.skipif(not _has("nbml.automl.config", "AutoMLConfig"), reason="AutoML is not in this build yet")
def test_automl_on_remote_compute(nb_env: Path) -> None:
    nb = execute(REPO / "notebooks" / "03-automl-remote.ipynb", nb_env, timeout=600)
    out = text_of(nb)
    assert "iterations" in out and widget_views(nb) == 1
    assert "Iterations" in widget_html(nb)


def test_register_model(nb_env: Path) -> None:
    nb = execute(REPO / "notebooks" / "04-register-model.ipynb", nb_env)
    out = text_of(nb)
    assert "sklearn-iris 1" in out and "{'area': 'iris', 'type': 'classification'}" in out
    assert "[0]" in out  # the downloaded model predicts setosa
    assert json.dumps(nb.cells[-1].outputs[0]["text"]).count("0") >= 1


@pytest.mark.slow
@pytest.mark.dask
def test_distributed_mpi_allreduce_and_pytorch_ddp_on_a_two_node_cluster(nb_env: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip("torch and mpi4py are installed by .ci/steps/45-distributed.sh")
    nb = execute(REPO / "notebooks" / "05-distributed.ipynb", nb_env, timeout=600)
    out = text_of(nb)
    assert "allreduce on each rank: [3, 3]" in out, out
    assert "rank 1 of 2: test accuracy" in out and "0 node 0 completed" in out and "1 node 1 completed" in out, out
    accuracy = float(out.split("accuracy: ")[1].split()[0])
    assert accuracy > 0.85, out
