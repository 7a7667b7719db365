"""A distributed run's ranks in Chromium: the run page (with any rank's log), the sidebar, and RunDetails.

One real run on the local target: two PyTorch-style ranks, rank 1 fails with a ValueError, which stops
rank 0. Each view must show the node and process counts and each rank's state, exit code and last error.
Screenshots in test-output/ui/. The widget's test (a kernel in the page) is in the slow tier.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .conftest import LabServer, lab_command, open_lab
from .test_sidebar import SIDEBAR, open_sidebar, run_row

pytestmark = pytest.mark.ui

FAULTY = """
import os, sys, time
from nbml import Run
Run.get_context().log("started", int(os.environ["RANK"]))
print("rank", os.environ["RANK"], "is up", flush=True)
if os.environ["RANK"] == "1":
    time.sleep(1)
    raise ValueError("rank 1 ran out of <data>")
time.sleep(600)
"""


@pytest.fixture(scope="module")
def failed_run(lab_server: LabServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    from nbml import Experiment, ScriptRunConfig, Workspace
    from nbml.core.runconfig import PyTorchConfiguration

    ws = Workspace(path=lab_server.workspace)
    src = tmp_path_factory.mktemp("ranks-src")
    (src / "train.py").write_text(FAULTY)
    run = Experiment(ws, "ranks_ui").submit(ScriptRunConfig(
        str(src), "train.py", distributed_job_config=PyTorchConfiguration(communication_backend="Gloo",
                                                                          process_count=2)))
    run.wait_for_completion(timeout_seconds=180, raise_on_error=False)
    assert run.get_status() == "Failed"
    return str(run.id)


def _rank_cells(page: Any, row: str) -> list[str]:
    return [t.strip() for t in page.locator(f"{row} td").all_inner_texts()]


def test_run_page_shows_each_rank_and_any_ranks_log(lab_server: LabServer, lab_context: Any, failed_run: str,
                                                     shoot: Callable[[Any, str], Path]) -> None:
    page = lab_context.new_page()
    page.goto(f"{lab_server.url}nbml/runs/{failed_run}?token={lab_server.token}", wait_until="domcontentloaded",
              timeout=90_000)
    section = page.locator("#ranks")
    section.wait_for(state="visible")
    assert page.locator("#rank-nodes").inner_text() == "1 node"
    assert page.locator("#rank-processes").inner_text() == "2 processes"
    failed = _rank_cells(page, '#rank-table tr.rank[data-rank="1"]')
    assert failed[3] == "failed" and failed[4] not in ("", "0")
    assert failed[5] == "ValueError: rank 1 ran out of <data>"  # escaped, shown as text
    stopped = _rank_cells(page, '#rank-table tr.rank[data-rank="0"]')
    assert stopped[3] == "stopped" and stopped[1] == "0"
    # Rank 0's log by default; rank 1's on request, through the dropdown or the row's button.
    page.wait_for_function("() => document.getElementById('rank-log').textContent.includes('rank 0 is up')")
    page.locator("#rank-log-choice").select_option("nbml-logs/driver_log_1.txt")
    page.wait_for_function("() => document.getElementById('rank-log').textContent.includes('rank 1 is up')")
    assert "ValueError: rank 1 ran out of <data>" in page.locator("#rank-log").inner_text()
    page.locator('#rank-table tr.rank[data-rank="0"] button.rank-log-link').click()
    page.wait_for_function("() => document.getElementById('rank-log').textContent.includes('rank 0 is up')")
    assert page.locator("#rank-log-choice").input_value() == "nbml-logs/driver_log_0.txt"
    section.scroll_into_view_if_needed()
    shoot(page, "run-page-ranks")


def test_sidebar_shows_the_selected_runs_ranks(lab_server: LabServer, lab_page: Any, failed_run: str,
                                               shoot: Callable[[Any, str], Path]) -> None:
    if not (Path(__file__).resolve().parents[2] / "nbml" / "labextension" / "static").is_dir():
        pytest.skip("the labextension is not built (.ci/steps/50-labextension.sh builds it)")
    open_sidebar(lab_page)
    lab_page.locator(run_row(failed_run, "Failed")).click()
    panel = lab_page.locator(f"{SIDEBAR} .nbml-ranks")
    panel.wait_for(state="visible")
    assert lab_page.locator(f"{SIDEBAR} .nbml-ranks-nodes").inner_text() == "1 node"
    assert lab_page.locator(f"{SIDEBAR} .nbml-ranks-processes").inner_text() == "2 processes"
    lab_page.locator(f'{SIDEBAR} tr.nbml-rank[data-rank="1"][data-state="failed"]').wait_for(state="visible")
    assert lab_page.locator(f'{SIDEBAR} tr.nbml-rank-error-row[data-rank="1"] .nbml-rank-error').inner_text() == \
        "ValueError: rank 1 ran out of <data>"
    assert lab_page.locator(f'{SIDEBAR} tr.nbml-rank[data-rank="0"]').get_attribute("data-state") == "stopped"
    shoot(lab_page, "sidebar-ranks")


@pytest.mark.slow  # a kernel in the page: the heaviest of the three
def test_run_details_widget_shows_the_ranks(lab_server: LabServer, lab_page: Any, failed_run: str,
                                            shoot: Callable[[Any, str], Path]) -> None:
    cell = (f"from nbml import Run, RunDetails, Workspace\nws = Workspace(path={str(lab_server.workspace)!r})\n"
            f"RunDetails(Run.get(ws, {failed_run!r})).show()")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(nb, lab_server.root / "ranks.ipynb")
    open_lab(lab_page, lab_server, "lab/tree/ranks.ipynb")
    lab_page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    lab_page.wait_for_function("document.body.innerText.includes('Idle')", timeout=90_000)
    lab_command(lab_page, "notebook:run-all-cells")
    ranks = lab_page.locator(".nbml-run-details .nbml-ranks")
    ranks.wait_for(state="visible", timeout=120_000)
    assert ranks.locator(".nbml-node-count").inner_text() == "1 node"
    assert ranks.locator(".nbml-process-count").inner_text() == "2 processes"
    assert ranks.locator('tr.nbml-rank[data-rank="1"]').get_attribute("data-state") == "failed"
    assert ranks.locator('tr.nbml-rank[data-rank="1"] .nbml-rank-error').inner_text() == \
        "ValueError: rank 1 ran out of <data>"
    assert ranks.locator('tr.nbml-rank[data-rank="0"]').get_attribute("data-state") == "stopped"
    ranks.scroll_into_view_if_needed()
    shoot(lab_page, "widget-ranks")
