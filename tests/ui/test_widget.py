"""RunDetails in a real JupyterLab, driven by headless Chromium, on a live AutoML run.

With nbml.automl installed the notebook submits a real AutoML run (get_data.py written by %%writefile);
without it, a separate process writes an AutoML-shaped run into the store at an AutoML coordinator's pace
(tests/widgets/simulate.py): the widget only agrees with AutoML on those store records.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .conftest import OUTPUT, LabServer, lab_command, open_lab

pytestmark = pytest.mark.ui
SHOTS = OUTPUT
SIMULATE = Path(__file__).resolve().parents[1] / "widgets" / "simulate.py"


def _has_automl() -> bool:
    try:
        from nbml.automl.config import AutoMLConfig  # noqa: F401
    except ImportError:
        return False
    return True


REAL_AUTOML = _has_automl()
# Long enough that the table still grows after the widget first draws: the search runs 10 iterations of this
# data in about 12 s, less than the page takes to run the cells and draw the widget on a loaded machine.
ITERATIONS = 30 if REAL_AUTOML else 60
GET_DATA = """%%writefile $project_folder/get_data.py
from sklearn import datasets


def get_data():
    digits = datasets.load_digits()
    return {"X": digits.data[10:, :], "y": digits.target[10:]}
"""


def _notebook(lab: LabServer) -> str:
    """An AutoML notebook: a real AutoML run when nbml.automl is installed, else a store-written stand-in."""
    ws = lab.workspace
    if REAL_AUTOML:
        cells = [
            f"import os\nfrom nbml import AutoMLConfig, Experiment, RunDetails, Workspace\n"
            f"ws = Workspace(path={str(ws)!r})\nproject_folder = 'automl-ui'\nos.makedirs(project_folder, exist_ok=True)",
            GET_DATA,
            "automl_config = AutoMLConfig(task='classification', primary_metric='AUC_weighted', "
            f"iterations={ITERATIONS}, n_cross_validations=3, max_concurrent_iterations=2, path=project_folder, "
            "compute_target='local', data_script=project_folder + '/get_data.py')\n"
            "remote_run = Experiment(ws, 'automl_ui').submit(automl_config)\nRunDetails(remote_run).show()",
        ]
    else:
        cells = [f"""
import subprocess, sys
from nbml import Run, RunDetails, Workspace
sys.path.insert(0, {str(SIMULATE.parent)!r})
import simulate
ws = Workspace(path={str(ws)!r})
simulate.start_parent(ws.store, 'AutoML_ui')
feeder = subprocess.Popen([sys.executable, {str(SIMULATE)!r}, {str(ws)!r}, 'AutoML_ui', '{ITERATIONS}', '0.6'])
remote_run = Run.get(ws, 'AutoML_ui')
RunDetails(remote_run).show()
"""]
    # A cell that blocks the kernel's event loop the way users do: waiting for the run (the widget is patched
    # on that loop's thread, and wait_for_completion keeps patching it meanwhile).
    busy = "try:\n    remote_run.wait_for_completion(timeout_seconds=12)\nexcept TimeoutError:\n    pass\nprint('done')"
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in [*cells, busy]],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
    )
    nbformat.write(nb, lab.root / "automl.ipynb")
    return "automl.ipynb"


def _run_all(page: Any, lab: LabServer, name: str) -> None:
    open_lab(page, lab, f"lab/tree/{name}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function("document.body.innerText.includes('Idle')", timeout=90_000)
    lab_command(page, "notebook:run-all-cells")


def test_live_automl_widget_rows_dropdown_and_iteration_logs(lab_server: LabServer, lab_context: Any) -> None:
    page = lab_context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1800})
    lab = lab_server
    SHOTS.mkdir(parents=True, exist_ok=True)
    _run_all(page, lab, _notebook(lab))
    rows = page.locator(".nbml-iter-table tr.nbml-row")
    status = page.locator(".nbml-parent-view .nbml-header .nbml-status")

    # Rows appear and grow while the run is active (and while the next cell blocks the kernel's loop).
    rows.first.wait_for(timeout=180_000)
    first = page.locator(".nbml-pager .nbml-page").inner_text()
    deadline = time.monotonic() + 30
    while page.locator(".nbml-pager .nbml-page").inner_text() == first and time.monotonic() < deadline:
        time.sleep(0.3)
    later = page.locator(".nbml-pager .nbml-page").inner_text()
    assert later != first, f"the table did not grow: {first!r}"
    assert status.inner_text() == "Running"
    assert page.locator(".nbml-statusbar .nbml-cell").count() >= 2
    # The output's static snapshot (kept for a reopened notebook) is in the page but hidden beside the live view
    assert page.locator(".nbml-snapshot").count() == 1 and not page.locator(".nbml-snapshot").is_visible()
    # ... by its own style rule too (the guard widget hides the output holding it, when anywidget starts it)
    assert page.evaluate("() => getComputedStyle(document.querySelector('.nbml-snapshot')).display") == "none"
    page.screenshot(path=str(SHOTS / "widget-01-rows-while-active.png"), full_page=True)

    # Clicks reach the kernel between cells (ipykernel handles widget messages on its main thread), so
    # wait for the busy cell to end.
    page.get_by_text("done", exact=True).wait_for(timeout=120_000)

    # The metric dropdown switches the chart's metric.
    chart_title = page.locator(".nbml-parent-view .js-plotly-plot .gtitle").first
    page.wait_for_function("() => document.querySelector('.nbml-parent-view .js-plotly-plot .gtitle')", timeout=30_000)
    assert chart_title.text_content() == "AUC_weighted per iteration"
    page.locator(".nbml-metric-choice select").select_option("accuracy")
    page.wait_for_function(
        "() => document.querySelector('.nbml-parent-view .js-plotly-plot .gtitle').textContent"
        " === 'accuracy per iteration'", timeout=15_000)
    legend = page.locator(".nbml-parent-view .js-plotly-plot .legendtext").all_text_contents()
    assert legend == ["accuracy", "Best so far"], legend
    page.screenshot(path=str(SHOTS / "widget-02-metric-dropdown.png"), full_page=True)

    # The dropdown also renames and refills the table's score columns.
    headers = page.locator(".nbml-iter-table th").all_inner_texts()
    assert "accuracy (iteration)" in headers and "accuracy (best)" in headers, headers
    page.locator(".nbml-metric-choice select").select_option("AUC_weighted")
    page.wait_for_function("() => [...document.querySelectorAll('.nbml-iter-table th')]"
                           ".some(th => th.textContent === 'AUC_weighted (iteration)')", timeout=15_000)

    # No value breaks over two lines: every summary value and table cell is one line high.
    heights = page.evaluate("""() => [...document.querySelectorAll(
        '.nbml-parent-view .nbml-prop-value, .nbml-iter-table td')].map(e => e.getBoundingClientRect().height)""")
    assert heights and max(heights) < 2 * min(h for h in heights if h > 0), heights
    assert "Arguments" not in page.locator(".nbml-parent-view .nbml-props").first.inner_text()

    # Clicking a row opens that iteration's details beside the table, in view; log markup shows as text.
    page.set_viewport_size({"width": 1400, "height": 900})
    rows.nth(2).click()
    detail = page.locator(".nbml-iteration-detail")
    log = detail.locator(".nbml-log-panel pre")
    log.wait_for(timeout=30_000)
    detail.locator(".nbml-run-id").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # the reveal runs once the details are drawn
    box = detail.bounding_box()
    assert box is not None and box["y"] < 900 and box["y"] + min(box["height"], 200) > 0, box  # in view
    page.screenshot(path=str(SHOTS / "widget-03a-details-in-view.png"))
    # The iteration's model charts in the browser: test_widget_iteration_charts.py (on a finished run, where
    # every iteration has its out-of-fold predictions).
    row_id = rows.nth(2).get_attribute("data-run-id")
    assert row_id and row_id in detail.locator(".nbml-run-id").first.inner_text()
    if REAL_AUTOML:
        page.wait_for_function("() => document.querySelector('.nbml-iteration-detail .nbml-log-panel pre')"
                               ".textContent.trim().length > 0", timeout=30_000)
    else:
        page.wait_for_function(
            "() => document.querySelector('.nbml-iteration-detail .nbml-log-panel pre').textContent"
            ".includes('iteration 2 (')", timeout=15_000)
        assert "<script>window.__nbml_xss = 1</script>" in log.inner_text()
        assert page.evaluate("() => window.__nbml_xss") is None
    assert "Iteration 2:" in detail.inner_text()
    log.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "widget-03-iteration-logs.png"), full_page=True)

    # Sorting by the iteration metric puts the best first.
    page.locator(".nbml-iter-table th[data-key='metric']").click()
    page.wait_for_function("() => document.querySelector(\".nbml-iter-table th[data-key='metric']\")"
                           ".textContent.includes('\\u25BC')", timeout=10_000)
    time.sleep(1)
    values = [float(v) for v in page.locator(".nbml-iter-table td.nbml-col-metric").all_inner_texts() if v]
    assert values == sorted(values, reverse=True)

    # The widget stops at the end of the run with every iteration shown.
    page.wait_for_function(
        "() => document.querySelector('.nbml-parent-view .nbml-header .nbml-status').textContent === 'Completed'",
        timeout=300_000)
    assert f"({ITERATIONS} iterations)" in page.locator(".nbml-pager .nbml-page").inner_text() or REAL_AUTOML
    page.locator(".nbml-parent-view").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "widget-04-completed.png"), full_page=True)

    # The header links to the run's page served by the nbml server extension.
    header = page.locator(".nbml-parent-view .nbml-header").first
    run_id = header.locator(".nbml-run-id").inner_text()
    href = header.locator("a").get_attribute("href")
    assert href == f"/nbml/runs/{run_id}"
    answer = page.request.get(f"{lab.url.rstrip('/')}{href}?token={lab.token}")
    assert answer.ok and run_id in answer.text()
