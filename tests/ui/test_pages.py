"""The experiment and run pages in Chromium, served by a real Jupyter server (the nbml extension).

The workspace is written through the Store API (tests/server/seed_pages.py): a HyperDrive parent with 12
children, three script runs with a logged image, a table and outputs, an AutoML parent whose iterations kept
real out-of-fold predictions. Screenshots go to test-output/ui/ (see conftest's ``shoot``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.server.seed_pages import PageRuns, seed

from .conftest import LAPTOP, LabServer

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def runs(lab_server: LabServer) -> PageRuns:
    return seed(lab_server.workspace)


@pytest.fixture
def page(lab_context: Any, lab_server: LabServer) -> Any:
    page = lab_context.new_page()
    page.set_viewport_size(LAPTOP)  # the pages are judged at a common laptop's size
    page.set_default_timeout(120_000)  # plotly.js (4.8 MB) parses slowly on a busy 2-core machine
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    # log in once (the token sets the server's cookie), then every page of /nbml/ is reached with it
    page.goto(f"{lab_server.url}api/status?token={lab_server.token}")
    page.errors = errors
    yield page
    page.close()
    assert not errors, f"errors in the page: {errors}"


def open_page(page: Any, server: LabServer, path: str) -> None:
    page.goto(server.url + path)
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=120_000)


def follow(page: Any, link: str) -> None:
    """Click a link to another page and wait until that page's script has loaded its data."""
    with page.expect_navigation():
        page.click(link)
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=120_000)


def traces(page: Any, div: str) -> list[dict[str, Any]]:
    """The traces plotly drew in a chart (its `data`), as the page holds them."""
    return page.evaluate(  # type: ignore[no-any-return]
        "(id) => (document.getElementById(id).data || []).map(t => ({type: t.type, name: t.name, n: (t.y || t.z || t.dimensions || []).length}))",
        div)


def tick_labels(page: Any, div: str) -> list[str]:
    """The x axis' tick labels as drawn (SVG text)."""
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        f"#{div} .xaxislayer-above .xtick text", "ts => ts.map(t => t.textContent)")


def column_texts(page: Any, index: int) -> list[str]:
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        f"#runs tr[data-run] td:nth-child({index + 1})", "cells => cells.map(c => c.textContent.trim())")


def test_experiment_page_of_a_hyperdrive_run(page: Any, lab_server: LabServer, runs: PageRuns,
                                             shoot: Callable[[Any, str], Path]) -> None:
    open_page(page, lab_server, "nbml/experiments/hd")
    assert page.locator("#runs tr[data-run]").count() == 1  # the parent; its children one click away
    follow(page, f"#runs tr[data-run='{runs.hd_parent}'] a")
    follow(page, "#compare-children")
    assert page.locator("#runs tr[data-run]").count() == 12
    headers = page.eval_on_selector_all("#runs th", "hs => hs.map(h => h.textContent)")
    assert {"Run", "Status", "Duration", "lr", "batch", "accuracy", "loss"} <= set(headers)
    # sort by accuracy: a metric sorts best (highest) first, a second click reverses
    page.click("#runs th[data-column='metric:accuracy']")
    acc = headers.index("accuracy")
    shown = [float(v) for v in column_texts(page, acc) if v]
    assert shown == sorted(shown, reverse=True) and len(shown) == 12
    page.click("#runs th[data-column='metric:accuracy']")
    assert [float(v) for v in column_texts(page, acc)] == sorted(shown)
    # filter by status, then by text
    page.select_option("#filter-status", "Failed")
    assert page.locator("#runs tr[data-run]").count() == 1
    page.select_option("#filter-status", "")
    page.fill("#filter-text", "HD_sweep_1")  # HD_sweep_1, _10, _11
    assert page.locator("#runs tr[data-run]").count() == 3
    page.fill("#filter-text", "")
    # choose columns: hide loss
    page.click("#columns summary")
    page.uncheck("#column-choices input[data-column='metric:loss']")
    page.click("#columns summary")
    assert "loss" not in page.eval_on_selector_all("#runs th", "hs => hs.map(h => h.textContent)")
    # compare three runs: their accuracy series on one chart
    for child in runs.hd_children[:3]:
        page.check(f"#runs tr[data-run='{child}'] input[type=checkbox]")
    page.wait_for_function("() => (document.getElementById('series-chart').data || []).length === 3")
    series = traces(page, "series-chart")
    assert [t["n"] for t in series] == [5, 5, 5]
    assert page.locator("#selection-note").inner_text() == "3 runs selected."
    scatter = traces(page, "scatter-chart")
    assert sum(t["n"] for t in scatter) == 12 and scatter[1]["n"] == 3  # every run's accuracy; 3 selected
    parallel = traces(page, "parallel-chart")
    assert parallel[0]["type"] == "parcoords" and parallel[0]["n"] == 3  # lr, batch, accuracy (epochs: constant)
    labels = page.evaluate("() => document.getElementById('parallel-chart').data[0].dimensions.map(d => d.label)")
    assert labels == ["batch", "lr (log)", "accuracy"]  # lr spans three decades: a log axis
    lr = headers.index("lr")
    assert all(len(v.replace("0.", "").lstrip("0")) <= 4 for v in column_texts(page, lr))  # 4 digits, no wrap
    page.locator("#compare-series").scroll_into_view_if_needed()
    shoot(page, "hyperdrive-compare")
    shoot(page, "hyperdrive-compare-full", full_page=True)


def test_hyperdrive_parent_run_page(page: Any, lab_server: LabServer, runs: PageRuns,
                                    shoot: Callable[[Any, str], Path]) -> None:
    open_page(page, lab_server, f"nbml/runs/{runs.hd_parent}")
    assert "Best run: HD_sweep_" in page.locator("#best-run").inner_text()
    curves = traces(page, "children-curves")
    assert len(curves) == 12 and all(t["n"] == 5 for t in curves)
    assert {t["name"] for t in curves} == {f"HD_sweep_{i}" for i in range(12)}  # named as in the table below
    # each child is shown with the sweep's metric, not the last one it logged (loss)
    metrics = page.eval_on_selector_all("table.children tr td:nth-child(3)", "cs => cs.map(c => c.textContent)")
    assert len(metrics) == 12 and all(m.startswith("accuracy ") for m in metrics), metrics
    assert traces(page, "parallel")[0]["type"] == "parcoords"
    assert page.locator("table.children tr").count() == 13
    page.locator("#hyperdrive").scroll_into_view_if_needed()
    shoot(page, "hyperdrive-parent")
    shoot(page, "hyperdrive-parent-full", full_page=True)


def test_automl_experiment_and_iteration_charts(page: Any, lab_server: LabServer, runs: PageRuns,
                                                shoot: Callable[[Any, str], Path]) -> None:
    open_page(page, lab_server, f"nbml/experiments/automl?parent={runs.automl}")
    assert page.locator("#runs tr[data-run]").count() == 2
    headers = page.eval_on_selector_all("#runs th", "hs => hs.map(h => h.textContent)")
    assert {"AUC_weighted", "C"} <= set(headers)
    shoot(page, "automl-experiment")
    open_page(page, lab_server, f"nbml/runs/{runs.automl}")
    shoot(page, "automl-parent-full", full_page=True)
    log = page.locator("#automl-log").inner_text()
    assert "LogisticRegression" in log and "GaussianNB" in log  # one row per iteration, not one line
    assert "runTemplate" not in page.locator("table.tags").first.inner_text()  # folded under System properties
    follow(page, f"table.children a[href$='{runs.iterations[0]}']")
    page.click("#iteration-tabs button[data-chart='roc']")
    roc = traces(page, "iteration-chart")
    assert roc[0]["name"].startswith("malignant (AUC 0.99")
    page.locator("#iteration-chart").scroll_into_view_if_needed()
    shoot(page, "iteration-roc")
    page.click("#iteration-tabs button[data-chart='confusion_matrix']")
    page.locator("#iteration-chart").scroll_into_view_if_needed()
    heat = traces(page, "iteration-chart")
    assert heat[0]["type"] == "heatmap"
    assert tick_labels(page, "iteration-chart") == ["benign", "malignant"]
    assert "C" in page.locator("#hyperparameters").inner_text()
    shoot(page, "iteration-confusion")


def test_run_page_image_table_and_file_preview(page: Any, lab_server: LabServer, runs: PageRuns,
                                               shoot: Callable[[Any, str], Path]) -> None:
    run_id = runs.scripts[0]
    open_page(page, lab_server, f"nbml/runs/{run_id}")
    assert page.locator("#run-id").inner_text() == "train_0 <b>bold</b>"  # shown as text, not markup
    image = page.locator(".images img")
    assert image.get_attribute("alt") == "residuals"
    page.wait_for_function("() => document.querySelector('.images img').naturalWidth > 0")
    assert page.locator("h3.table-name").inner_text() == "per_epoch"
    assert page.locator("table.metric-table tr").count() == 4
    charts = page.evaluate("() => [...document.querySelectorAll('.metric-chart')]"
                           ".map(d => [d.dataset.metric, ((d.data || [])[0] || {y: []}).y.length])")
    assert charts == [["loss", 8]]  # a chart for the series; accuracy, logged once, is in the table
    page.click("button.preview-link[data-path='outputs/data/predictions.csv']")
    page.wait_for_selector("#preview table.csv-preview")
    assert page.locator("#preview th").all_inner_texts() == ["id", "square", "label"]
    assert page.locator("#preview table tr").count() == 21
    page.locator("#preview").scroll_into_view_if_needed()
    shoot(page, "csv-preview")
    shoot(page, "run-page-full", full_page=True)
    page.click("button.preview-link[data-path='images/residuals.png']")
    page.wait_for_function("() => { const i = document.querySelector('#preview img'); return i && i.naturalWidth > 0; }")
    page.click("button.preview-link[data-path='outputs/page.html']")
    page.wait_for_selector("#preview pre")
    assert "<script>" in page.locator("#preview pre").inner_text()  # a job's HTML is shown as text
    shoot(page, "html-as-text")
