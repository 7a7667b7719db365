"""A notebook saved with a RunDetails output of a 20-iteration AutoML parent stays small (plotly's bundle isn't in it)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from nbml.store import Store

LIMIT = 200_000


def _automl_parent(root: Path, parent: str, iterations: int) -> None:
    """The records an AutoML coordinator writes: a parent, and children with pipeline properties and metrics."""
    store = Store(root)
    store.insert_run(parent, "automl-size", "automl", "local", {"primary_metric": "AUC_weighted",
                                                                "task": "classification"})
    store.add_properties(parent, {"primary_metric": "AUC_weighted"})
    store.set_status(parent, "Running")
    for i in range(iterations):
        rid = f"{parent}_{i}"
        store.insert_run(rid, "automl-size", "child", "local", {}, parent_id=parent, iteration=i)
        algo = "<img src=x onerror=alert(1)>" if i == 3 else "LightGBM"  # run data never becomes markup
        store.add_properties(rid, {"run_preprocessor": "MaxAbsScaler", "run_algorithm": algo})
        store.set_status(rid, "Running")
        store.log_metric(rid, "AUC_weighted", "scalar", 0.8 + i / 200)
        store.log_metric(rid, "accuracy", "scalar", 0.7 + i / 200)
        store.set_status(rid, "Completed")
    store.set_status(parent, "Completed")


@pytest.mark.timeout(300)
def test_saved_notebook_with_run_details_of_20_iterations_is_small(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    _automl_parent(root, "AutoML_size", 20)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from nbml import Workspace, Run\n"
        "from nbml.widgets import RunDetails\n"
        f"ws = Workspace(path={str(root)!r})\n"
        "RunDetails(Run.get(ws, 'AutoML_size')).show()")]
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, saved)
    size = saved.stat().st_size
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    kinds = {m["model_name"] for m in state.values()}
    assert "FigureModel" in kinds or any("_esm" in m["state"] for m in state.values())  # the charts were saved
    assert size < LIMIT, f"saved notebook is {size} bytes"
    biggest = max(len(json.dumps(m)) for m in state.values())
    assert biggest < 50_000, "a widget model carries a bundle"
    # A reopened notebook shows the static snapshot (an output of its own, above the widget) before the kernel runs.
    outputs = nb.cells[0].outputs
    snapshots = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(snapshots) == 1, [o.get("data", {}).keys() for o in outputs]
    html = snapshots[0]["data"]["text/html"]
    assert "nbml-snapshot" in html and "Completed" in html and "AutoML_size" in html
    table = html.split("nbml-snapshot-iterations", 1)[1]
    assert table.count("<tr>") == 1 + 20 and "AUC_weighted (iteration)" in table  # every iteration, named columns
    assert "<svg" in html and "AUC_weighted per iteration" in html  # the chart, as inline SVG
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html and len(html) < 30_000
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    print(f"saved notebook: {size} bytes, {len(state)} widget models, snapshot {len(html)} bytes")


def test_kernel_sends_the_bundle_gzipped_in_chunks_under_the_iopub_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the page has no nbml server extension, the chart loader asks the kernel for plotly's bundle."""
    import gzip
    import time

    import plotly.graph_objects as go

    from nbml.widgets import _plotly

    monkeypatch.setattr(_plotly, "PAUSE_SECONDS", 0.01)
    fig = _plotly.FigureWidget(data=[go.Scatter(y=[1, 2])])
    assert len(fig._esm) < 5_000  # what a saved notebook keeps per chart
    sent: list[tuple[dict[str, int], bytes]] = []
    monkeypatch.setattr(fig, "send", lambda content, buffers=None: sent.append((content, bytes(buffers[0]))))
    fig._handle_custom_msg({"type": _plotly.BUNDLE_MSG}, [])
    deadline = time.monotonic() + 20
    while (not sent or len(sent) < sent[0][0]["count"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c["index"] for c, _ in sent] == list(range(sent[0][0]["count"]))
    data = b"".join(chunk for _, chunk in sent)
    assert gzip.decompress(data) == _plotly.bundle_path().read_bytes()
    assert len(data) < 3_000_000  # Jupyter drops iopub traffic over 1 MB/s averaged over 3 s
