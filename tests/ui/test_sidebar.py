"""The nbml sidebar in a real JupyterLab, driven by headless Chromium.

Runs are submitted by running notebook cells in the page, as a user would; the sidebar sees them only
through the store, via the server extension.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import LAPTOP, LabServer, lab_command

pytestmark = pytest.mark.ui

TRAIN = """\
import sys, time
from nbml import Run

run = Run.get_context()
steps = int(sys.argv[1])
for i in range(steps):
    run.log("accuracy", round(0.5 + 0.4 * (i + 1) / steps, 3))
    time.sleep(0.5)
print("trained")
"""
SETUP = (
    "from nbml import Experiment, ScriptRunConfig, Workspace\n"
    "ws = Workspace.from_config()\n"
    "exp = Experiment(ws, {name!r})"
)
SUBMIT = "run = exp.submit(ScriptRunConfig(source_directory='src', script='train.py', arguments=[{steps!r}]))\nprint(run.id)"

SIDEBAR = "#nbml-sidebar"


def run_row(run_id: str, status: str | None = None) -> str:
    selector = f'{SIDEBAR} li.nbml-run[data-run-id="{run_id}"]'
    return selector + (f'[data-status="{status}"]' if status else "")


def open_sidebar(page: Any) -> None:
    """Click the sidebar's tab in the left bar (unless JupyterLab restored it open)."""
    page.wait_for_selector('li.lm-TabBar-tab[data-id="nbml-sidebar"]')
    # activateById is idempotent; a click on the tab would close the panel again if JupyterLab's layout
    # restorer opened it between a visibility check and the click (after a reload).
    page.evaluate("() => window.jupyterapp.shell.activateById('nbml-sidebar')")
    page.wait_for_selector(f"{SIDEBAR} .nbml-compute", state="visible")


def run_notebook(page: Any, path: str) -> None:
    """Open a notebook, wait for its kernel, and run all its cells."""
    lab_command(page, "docmanager:open", {"path": path})
    page.wait_for_function(
        """(path) => {
            const w = window.jupyterapp.shell.currentWidget;
            return w && w.context && w.context.path === path &&
                   w.sessionContext.session && w.sessionContext.session.kernel &&
                   w.sessionContext.session.kernel.status === 'idle';
        }""",
        arg=path,
        timeout=60_000,
    )
    lab_command(page, "notebook:run-all-cells")


def submitted_run(server: LabServer, experiment: str, timeout: float = 60.0) -> str:
    """The id of the run the notebook submitted (read from the API, so the test knows what to look for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = server.api(f"nbml/api/runs?experiment={experiment}")["runs"]
        if runs:
            return str(runs[0]["run_id"])
        time.sleep(0.3)
    raise AssertionError(f"no run was submitted to {experiment!r}; server log:\n{server.log_tail()}")


def test_run_submitted_from_a_notebook_appears_and_finishes(
    lab_server: LabServer, lab_page: Any, shoot: Callable[[Any, str], Path]
) -> None:
    page = lab_page
    lab_server.write_file("src/train.py", TRAIN)
    lab_server.write_notebook("submit.ipynb", [SETUP.format(name="sidebar-demo"), SUBMIT.format(steps="8")])

    open_sidebar(page)
    compute = page.locator(f'{SIDEBAR} .nbml-compute tr[data-target="local"]')
    assert compute.locator("td").nth(1).inner_text() == "local"
    page.wait_for_selector(f'{SIDEBAR} .nbml-compute tr[data-target="local"] .nbml-status-succeeded')
    shoot(page, "1-sidebar-open")

    run_notebook(page, "submit.ipynb")
    run_id = submitted_run(lab_server, "sidebar-demo")
    page.wait_for_selector(run_row(run_id), timeout=30_000)
    shoot(page, "2-run-listed")

    row = page.locator(run_row(run_id, "Completed"))
    row.wait_for(timeout=90_000)
    assert row.locator(".nbml-run-metric").inner_text() == "accuracy 0.9"
    assert row.locator(".nbml-run-duration").inner_text().endswith("s")
    assert page.locator(f'{SIDEBAR} li.nbml-experiment[data-experiment="sidebar-demo"]').count() == 1

    # Actions on the selected run.
    row.click()
    actions = page.locator(f'{SIDEBAR} .nbml-actions[data-run-id="{run_id}"]')
    actions.wait_for()
    assert actions.locator('[data-action="cancel"]').is_disabled()  # a finished run can't be canceled

    actions.locator('[data-action="copy"]').click()
    assert page.evaluate("() => navigator.clipboard.readText()") == run_id

    actions.locator('[data-action="insert"]').click()
    inserted = page.locator(".jp-NotebookPanel .jp-Cell .cm-content", has_text=f'Run.get(ws, "{run_id}")')
    inserted.wait_for()
    shoot(page, "3-completed-and-inserted")

    with page.context.expect_page() as new_tab:
        actions.locator('[data-action="open"]').click()
    run_page = new_tab.value
    run_page.wait_for_load_state()
    assert run_page.locator("#run-status").inner_text() == "Completed"
    assert run_id in run_page.content()
    assert run_page.locator("table.metrics td", has_text="accuracy").count() == 1
    assert any("trained" in log for log in run_page.locator("pre.log").all_inner_texts())
    shoot(run_page, "4-run-page")


def test_cancel_a_running_run_from_the_sidebar(
    lab_server: LabServer, lab_page: Any, shoot: Callable[[Any, str], Path]
) -> None:
    page = lab_page
    lab_server.write_file("src/train.py", TRAIN)
    lab_server.write_notebook("cancel.ipynb", [SETUP.format(name="cancel-demo"), SUBMIT.format(steps="1000")])
    open_sidebar(page)
    run_notebook(page, "cancel.ipynb")
    run_id = submitted_run(lab_server, "cancel-demo")

    row = page.locator(run_row(run_id, "Running"))
    row.wait_for(timeout=60_000)
    row.click()
    cancel = page.locator(f'{SIDEBAR} .nbml-actions[data-run-id="{run_id}"] [data-action="cancel"]')
    cancel.click()

    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    assert run_id in dialog.inner_text()
    shoot(page, "1-confirm-dialog")
    # Keeping it running first: nothing happens.
    dialog.locator("button", has_text="Keep running").click()
    dialog.wait_for(state="detached")
    assert lab_server.api(f"nbml/api/runs/{run_id}")["status"] == "Running"

    cancel.click()
    page.locator(".jp-Dialog button.jp-mod-warn", has_text="Cancel run").click()
    page.locator(run_row(run_id, "Canceled")).wait_for(timeout=60_000)
    shoot(page, "2-canceled")
    assert lab_server.api(f"nbml/api/runs/{run_id}")["status"] == "Canceled"


def test_sidebar_idles_while_closed_and_backs_off_while_the_server_fails(
    lab_server: LabServer, lab_page: Any, shoot: Callable[[Any, str], Path]
) -> None:
    page = lab_page
    refreshes: list[float] = []
    page.on("request", lambda r: "/nbml/api/experiments" in r.url and refreshes.append(time.monotonic()))
    open_sidebar(page)
    page.wait_for_timeout(7_500)
    assert len(refreshes) >= 2, refreshes  # polls every 3 s while shown

    page.click('li.lm-TabBar-tab[data-id="nbml-sidebar"]')  # close it
    page.locator(SIDEBAR).wait_for(state="hidden")
    closed_at = len(refreshes)
    page.wait_for_timeout(7_000)
    assert len(refreshes) == closed_at, refreshes[closed_at:]  # no request while closed

    # A fake fault (a real server can't be made to fail on demand): every API call answers 503.
    page.route("**/nbml/api/**", lambda route: route.fulfill(status=503, body='{"message": "down"}'))
    page.click('li.lm-TabBar-tab[data-id="nbml-sidebar"]')  # reopen: refreshes at once
    page.locator(f"{SIDEBAR} .nbml-message.nbml-error").wait_for()
    # After each failure the poll waits longer than its 3 s interval (randomly, up to 3 times the last wait).
    intervals = set()
    for _ in range(28):
        page.wait_for_timeout(500)
        if page.get_attribute(SIDEBAR, "data-poll-phase") == "rejected":
            intervals.add(int(page.get_attribute(SIDEBAR, "data-poll-interval") or 0))
    shoot(page, "server-failing")
    assert max(intervals) > 3000, intervals

    page.unroute("**/nbml/api/**")
    page.click(f"{SIDEBAR} .nbml-refresh")
    page.wait_for_function(
        "(sel) => !document.querySelector(sel).classList.contains('nbml-error')", arg=f"{SIDEBAR} .nbml-message"
    )


def _parent_runs(server: LabServer) -> dict[str, str]:
    """An AutoML parent stopped after 12 of 20 iterations, a HyperDrive parent of 12 children, and two script
    runs of one experiment that log their settings before their score (as the Azure tutorials do)."""
    import json
    import sys

    from nbml import Workspace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "widgets"))
    import simulate

    store = Workspace(path=server.workspace).store
    simulate.start_parent(store, "AutoML_progress", experiment="progress-demo")
    store.add_properties("AutoML_progress", {"iterations": "20"})
    for i in range(12):
        simulate.add_iteration(store, "AutoML_progress", i, log_lines=0)
    store.set_status("AutoML_progress", "Canceled")
    simulate.start_hyperdrive(store, "HD_progress", experiment="progress-demo", total=12)
    for i in range(12):
        simulate.add_hd_child(store, "HD_progress", i, epochs=2)
    store.set_status("HD_progress", "Completed")
    ids = {}
    for n, accuracy in ((1, 0.91), (2, 0.95)):
        rid = f"Tutorial-TrainIRIS_{1700000000 + n}_{n:08x}"
        store.insert_run(rid, "iris-demo", "script", "local", json.loads('{"script": "train.py"}'))
        store.set_status(rid, "Running")
        store.log_metric(rid, "Kernel type", "scalar", "rbf")
        store.log_metric(rid, "Penalty", "scalar", 0.5)
        store.log_metric(rid, "Accuracy", "scalar", accuracy)
        store.set_status(rid, "Completed")
        ids[f"iris{n}"] = rid
    return ids


def _best_child(server: LabServer, parent: str, metric: str) -> tuple[str, str]:
    """The child with the highest latest `metric`, and its value as the sidebar writes it (4 digits)."""
    from nbml import Workspace

    store = Workspace(path=server.workspace).store
    ids = [c["run_id"] for c in store.children(parent)]
    latest = store.latest_metrics(ids)
    best = max(ids, key=lambda rid: latest[rid][metric]["value"])
    return best, repr(float(f"{latest[best][metric]['value']:.4g}"))


def test_sidebar_shows_metric_names_progress_and_follows_its_settings(
    lab_server: LabServer, lab_page: Any, shoot: Callable[[Any, str], Path]
) -> None:
    page = lab_page
    page.set_viewport_size(LAPTOP)
    ids = _parent_runs(lab_server)
    open_sidebar(page)
    automl = page.locator(run_row("AutoML_progress"))
    automl.locator(".nbml-progress-text").wait_for(timeout=30_000)
    assert automl.locator(".nbml-progress-text").inner_text() == "12 / 20 iterations"
    hd = page.locator(run_row("HD_progress"))
    hd.locator(".nbml-progress-text").wait_for(timeout=30_000)
    assert hd.locator(".nbml-progress-text").inner_text() == "12 / 12 iterations"
    # A parent shows its best child's primary metric, named (the parents log none themselves).
    for row, parent, metric in ((automl, "AutoML_progress", "AUC_weighted"), (hd, "HD_progress", "accuracy")):
        best_id, best = _best_child(lab_server, parent, metric)
        assert row.locator(".nbml-run-metric").inner_text() == f"best {metric} {best}"
        assert row.locator(".nbml-run-metric").get_attribute("title") == f"Best so far: run {best_id}"

    # Two runs of one experiment: the metric logged last (not a setting), and what tells them apart.
    first, second = page.locator(run_row(ids["iris1"])), page.locator(run_row(ids["iris2"]))
    assert first.locator(".nbml-run-metric").inner_text() == "Accuracy 0.91"
    assert second.locator(".nbml-run-metric").inner_text() == "Accuracy 0.95"
    assert first.locator(".nbml-run-number").inner_text() == "#1" and second.locator(".nbml-run-number").inner_text() == "#2"
    assert first.locator(".nbml-run-label").inner_text() == ids["iris1"]  # no display name: the run id
    # ... cut by the narrow sidebar, so the tail that tells the two runs apart is shown beside the start time
    assert [r.locator(".nbml-run-short-id").inner_text() for r in (first, second)] == ["00000001", "00000002"]
    shoot(page, "1-metric-progress-names")

    # The experiment's page opens from its header.
    with page.context.expect_page() as new_tab:
        page.locator(f'{SIDEBAR} li.nbml-experiment[data-experiment="progress-demo"] .nbml-experiment-open').click()
    experiment_page = new_tab.value
    # the address is what the sidebar decides; the page's own load is the page tests' business (and slow here)
    experiment_page.wait_for_url("**/nbml/experiments/progress-demo", wait_until="commit", timeout=60_000)
    experiment_page.close()

    # Settings (Settings editor > nbml sidebar): list length and refresh interval.
    lab_server.api("lab/api/settings/nbml-labextension:sidebar", method="PUT",
                   body={"raw": '{"runsPerExperiment": 1, "pollInterval": 10}'})
    try:
        page.reload()
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=60_000)
        open_sidebar(page)
        page.wait_for_function(f"() => document.querySelector('{SIDEBAR}').dataset.runsPerExperiment === '1'")
        page.wait_for_function(f"() => document.querySelector('{SIDEBAR}').dataset.pollInterval === '10000'",
                               timeout=30_000)
        iris = page.locator(f'{SIDEBAR} li.nbml-experiment[data-experiment="iris-demo"] li.nbml-run')
        page.wait_for_function(f"""() => document.querySelectorAll(
            '{SIDEBAR} li.nbml-experiment[data-experiment="iris-demo"] li.nbml-run').length === 1""")
        assert iris.first.get_attribute("data-run-id") == ids["iris2"]
        shoot(page, "2-settings-applied")
    finally:
        lab_server.api("lab/api/settings/nbml-labextension:sidebar", method="PUT", body={"raw": "{}"})
