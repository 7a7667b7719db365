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

from .conftest import LabServer, lab_command

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
    if not page.locator(SIDEBAR).is_visible():
        page.click('li.lm-TabBar-tab[data-id="nbml-sidebar"]')
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
