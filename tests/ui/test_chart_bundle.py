"""RunDetails charts render though the saved widget state no longer carries plotly's bundle.

The loader imports the bundle from the nbml server extension; when that URL fails (a page without the
extension) it asks the kernel for it. Both paths are driven here in a real JupyterLab with Chromium.
"""

from __future__ import annotations

from typing import Any

import nbformat
import pytest

from .conftest import LabServer, lab_command, open_lab

pytestmark = pytest.mark.ui

CELL = """
from nbml import Run, RunDetails, Workspace
ws = Workspace(path={ws!r})
store = ws.store
parent = {parent!r}
store.insert_run(parent, "charts", "automl", "local", {{"primary_metric": "AUC_weighted", "task": "classification"}})
store.add_properties(parent, {{"primary_metric": "AUC_weighted"}})
for i in range(5):
    rid = f"{{parent}}_{{i}}"
    store.insert_run(rid, "charts", "child", "local", {{}}, parent_id=parent, iteration=i)
    store.add_properties(rid, {{"run_preprocessor": "MaxAbsScaler", "run_algorithm": "LightGBM"}})
    store.log_metric(rid, "AUC_weighted", "scalar", 0.8 + i / 100)
    store.set_status(rid, "Completed")
store.set_status(parent, "Completed")
RunDetails(Run.get(ws, parent)).show()
"""


def _open_and_run(page: Any, lab: LabServer, parent: str) -> None:
    name = f"{parent}.ipynb"
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(CELL.format(ws=str(lab.workspace), parent=parent))],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(nb, lab.root / name)
    open_lab(page, lab, f"lab/workspaces/{parent}/tree/{name}")  # a fresh layout: no other notebook restored
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function("document.body.innerText.includes('Idle')", timeout=90_000)
    lab_command(page, "notebook:run-all-cells")


@pytest.mark.parametrize("path", ["server", "kernel"])
def test_parent_chart_renders_from_the_loaded_bundle(lab_server: LabServer, lab_context: Any, path: str) -> None:
    page = lab_context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    served: list[str] = []
    if path == "kernel":  # a page without the nbml server extension: the URL fails, the kernel sends the bundle
        page.route("**/nbml/static/plotly-widgetbundle.js", lambda route: route.abort())
    else:
        page.on("response", lambda r: served.append(r.url) if "plotly-widgetbundle" in r.url and r.ok else None)
    _open_and_run(page, lab_server, f"AutoML_charts_{path}")
    try:
        page.wait_for_function("() => document.querySelector('.nbml-parent-view .js-plotly-plot .gtitle')",
                               timeout=120_000)
    except Exception as exc:
        dom = page.evaluate("() => Array.from(document.querySelectorAll('.nbml-parent-view .js-plotly-plot'))"
                            ".map(e => e.outerHTML.slice(0, 1500)).join('\\n----\\n')")
        raise AssertionError("no chart; the page said:\n" + "\n".join(console[-30:]) + "\nDOM:\n" + dom) from exc
    title = page.locator(".nbml-parent-view .js-plotly-plot .gtitle").first.text_content()
    assert title == "AUC_weighted per iteration"
    assert page.locator(".nbml-parent-view .js-plotly-plot .scatterlayer .trace").count() >= 1
    if path == "server":
        assert served, "the bundle was not fetched from the nbml server extension"
    page.close()
