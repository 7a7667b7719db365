"""RunDetails against a real workspace store: real script runs, and AutoML-shaped parents written by another process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import simulate  # tests/widgets is on sys.path (pytest rootdir-relative import)

from nbml import Experiment, Run, ScriptRunConfig
from nbml.widgets import RunDetails


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _in_loop(body: Any) -> Any:
    """Run `body` (a coroutine function) on an asyncio event loop, as a cell runs on ipykernel's loop."""
    return asyncio.run(body())


async def _await(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def test_script_run_shows_status_metrics_escaped_logs_and_outputs_then_stops_polling(ws: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent("""
        import os, time
        from nbml import Run
        run = Run.get_context()
        for i in range(4):
            run.log("loss", 1.0 / (i + 1))
            print("epoch", i, "<script>alert(1)</script>", flush=True)
            time.sleep(0.2)
        run.log("alpha", 0.5)
        os.makedirs("outputs", exist_ok=True)
        open("outputs/model.pkl", "w").write("m")
    """))
    run = Experiment(ws, "widget").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                          arguments=["--alpha", "0.5"]))
    details = RunDetails(run, poll_seconds=0.2)

    async def follow() -> None:
        details.get_widget()
        await _await(lambda: not details.polling, 120, "the widget to stop polling after the run ends")

    _in_loop(follow)
    view = details.view
    assert run.get_status() == "Completed"
    assert "Completed" in view.header.value and f"/nbml/runs/{run.id}" in view.header.value
    assert "train.py --alpha 0.5" in view.props.value and "alpha" in view.props.value
    assert list(view.charts) == ["loss"] and list(view.charts["loss"].data[0].y) == [1.0, 0.5, 1 / 3, 0.25]
    assert view.log_choice.value == "nbml-logs/driver_log.txt"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in view.log_text.value and "<script>" not in view.log_text.value
    assert "model.pkl" in view.outputs.value


def test_updates_run_on_the_loops_thread_also_during_a_blocking_wait_for_completion(store: Any) -> None:
    """Widgets are patched only on the thread of the kernel's event loop: by a timer between cells, and by
    wait_for_completion while a cell blocks that loop."""
    simulate.start_parent(store, "AutoML_live")
    seen: list[tuple[str, int]] = []
    feeder: list[subprocess.Popen[bytes]] = []
    try:
        run = Run.get(_ws(store), "AutoML_live")
        details = RunDetails(run, poll_seconds=0.3)

        async def cell() -> None:
            details.get_widget()
            details.view.table.observe(lambda c: seen.append((threading.current_thread().name, c["new"])),
                                       names="total")
            feeder.append(subprocess.Popen([sys.executable, simulate.__file__, str(store.root), "AutoML_live", "12",
                                            "0.4"]))
            run.wait_for_completion(timeout_seconds=60)  # blocks the loop, as a cell does
            await _await(lambda: not details.polling, 10, "polling to stop")

        _in_loop(cell)
        assert feeder[0].wait(30) == 0
    finally:
        for f in feeder:
            f.kill()
            f.wait()
    table = details.view.table
    assert {name for name, _ in seen} == {threading.main_thread().name}, seen
    assert table.total == 12 and len({n for _, n in seen}) >= 4, seen  # rows arrived while the wait blocked
    assert [r["iteration"] for r in table.rows] == list(range(10)) and table.pages == 2
    assert table.bar_count == 12 and len(table.bar_scores) == 12 * 8
    xs, ys = list(details.view.chart.data[0].x), list(details.view.chart.data[0].y)
    assert xs == list(range(12)) and len(ys) == 12
    assert details.view.chart.layout.xaxis.dtick is None  # a wider span: plotly's own (whole) ticks
    assert list(details.view.chart.data[1].y) == [max(ys[: i + 1]) for i in range(12)]
    assert not any(t.name.startswith("nbml-RunDetails") for t in threading.enumerate())


def test_rows_appear_within_two_seconds_of_the_store_write(store: Any) -> None:
    simulate.start_parent(store, "AutoML_lat")
    details = RunDetails(Run.get(_ws(store), "AutoML_lat"), poll_seconds=0.5)

    async def cell() -> None:
        details.get_widget()
        try:
            for i in range(3):
                written = time.monotonic()
                simulate.add_iteration(store, "AutoML_lat", i)
                await _await(lambda i=i: details.view.table.total == i + 1, 2.0, f"iteration {i} in the table")
                assert time.monotonic() - written < 2.0
        finally:
            details.stop()

    _in_loop(cell)


def test_clicking_a_row_shows_that_iterations_logs_metrics_and_explanation(store: Any) -> None:
    simulate.start_parent(store, "AutoML_sel")
    for i in range(3):
        simulate.add_iteration(store, "AutoML_sel", i)
    # AutoML explains a model in a separate child run that names the iteration it explained.
    store.insert_run("AutoML_sel_explain", "automl-demo", "child", "local", {}, parent_id="AutoML_sel")
    store.add_properties("AutoML_sel_explain", {"model_explanation": "True", "explained_run_id": "AutoML_sel_1"})
    store.set_status("AutoML_sel_explain", "Completed")
    out = Path(store.root) / "runs" / "AutoML_sel_explain" / "outputs"
    out.mkdir(parents=True)
    (out / "explanation.json").write_text('{"overall_imp": ["petal", "sepal"], "overall_summary": [0.7, 0.2]}')
    store.set_status("AutoML_sel", "Completed")
    _predictions(Path(store.root) / "runs" / "AutoML_sel_1" / "outputs" / "predictions.npz")
    details = RunDetails(Run.get(_ws(store), "AutoML_sel"))
    details.get_widget()
    view = details.view
    assert [c[1] for c in view.table.columns[2:4]] == ["AUC_weighted (iteration)", "AUC_weighted (best)"]
    view.table.sort_by, view.table.descending = "metric", True
    metrics = [r["metric"] for r in view.table.rows]
    assert metrics[:3] == sorted(metrics[:3], reverse=True) and metrics[3] is None  # no score sorts last
    view.table.selected = "AutoML_sel_1"
    detail = view.detail
    assert detail is not None and detail.watcher.run_id == "AutoML_sel_1"
    assert view.table.shown == "AutoML_sel_1"  # the browser scrolls the details into view
    assert "iteration 1 (" in detail.log_text.value
    assert "AUC_weighted" in detail.props.value
    assert "learning_rate" in detail.iteration.children[1].value  # the iteration's hyperparameters
    charts = detail.iteration.children[-1].children  # from the iteration's out-of-fold predictions
    titles = [c.layout.title.text for c in charts]
    assert any("ROC" in t for t in titles) and any("onfusion" in t for t in titles), titles
    bar = detail.explanation.children[-1]
    assert list(bar.data[0].y) == ["sepal", "petal"]  # most important on top
    first_widgets = [detail.widget, detail.props, detail.log_text]
    # The dropdown drives the chart and the table's score columns.
    view.metric_choice.value = "accuracy"
    assert view.chart.data[0].name == "accuracy"
    assert view.chart.layout.xaxis.dtick == 1  # a few iterations: whole-number ticks, never "0.5"
    assert [c[1] for c in view.table.columns[2:4]] == ["accuracy (iteration)", "accuracy (best)"]
    accuracy = {r.run_id: view.watcher.children.metrics[r.run_id]["accuracy"] for r in view.watcher.children.iterations()}
    assert {r["run_id"]: r["metric"] for r in view.table.rows if r["metric"] is not None} == accuracy
    # Another row replaces the details and closes the widgets of the previous ones.
    view.table.selected = "AutoML_sel_2"
    assert view.detail is not None and view.detail.watcher.run_id == "AutoML_sel_2"
    assert all(wd.comm is None for wd in first_widgets)
    second = view.detail.widget
    view.table.selected = ""
    assert view.detail is None and view.detail_box.children == () and second.comm is None
    # The summary names the best iteration on one line and has no empty rows (no "Arguments" on AutoML).
    assert "Arguments" not in view.props.value and "Best iteration" in view.props.value
    assert "white-space:nowrap" in view.props.value and "overflow-wrap:anywhere" not in view.props.value
    assert "Iterations</b>" in view.props.value and "3 / 3" in view.props.value
    assert "/nbml/experiments/automl-demo" in view.header.value
    details.close()
    assert view.table.comm is None and view.chart.comm is None


def test_hyperdrive_parent_gets_curves_parallel_coordinates_and_the_best_run(store: Any) -> None:
    simulate.start_hyperdrive(store, "HD_view", total=6)
    for i in range(6):
        simulate.add_hd_child(store, "HD_view", i)
    store.set_status("HD_view", "Completed")
    details = RunDetails(Run.get(_ws(store), "HD_view"))
    details.get_widget()
    view = details.view
    from nbml.widgets._views import HyperDriveView

    assert isinstance(view, HyperDriveView)
    assert len(view.curves.data) == 6 and all(len(t.y) == 5 for t in view.curves.data)
    (parallel,) = view.parallel.data
    assert [d.label for d in parallel.dimensions] == ["--kernel", "--learning-rate", "accuracy"]
    assert list(parallel.dimensions[0].ticktext) == ["linear", "poly", "rbf"]
    best = max(range(6), key=lambda i: store.metrics_for_runs([f"HD_view_{i}"])[f"HD_view_{i}"]["accuracy"][-1])
    assert f"HD_view_{best}" in view.best.value and "--learning-rate=1.0" in view.best.value
    assert "6 / 6" in view.props.value and "accuracy (maximize)" in view.props.value
    view.table.selected = "HD_view_0"
    assert view.detail is not None and "--kernel" in view.detail.iteration.children[1].value


def test_a_finished_parent_of_a_thousand_iterations_reads_once_and_polls_cheaply(store: Any) -> None:
    simulate.start_parent(store, "AutoML_big")
    for i in range(1000):
        simulate.add_iteration(store, "AutoML_big", i, log_lines=0)
    details = RunDetails(Run.get(_ws(store), "AutoML_big"))
    details.get_widget()
    assert details.view.table.total == 1000 and len(details.view.table.rows) == 10
    # A poll with nothing new reads only the active children and finds nothing to patch.
    changes = details.view.watcher.poll()
    assert not changes.children and not changes.metrics
    details.stop()


def test_log_dropdown_follows_the_log_being_written_until_the_user_picks_one(store: Any) -> None:
    store.insert_run("logs_run", "e", "script", "local", {})
    store.set_status("logs_run", "Running")
    logs = Path(store.root) / "runs" / "logs_run" / "logs"
    logs.mkdir(parents=True)
    (logs / "a.txt").write_text("first\n")
    details = RunDetails(Run.get(_ws(store), "logs_run"), poll_seconds=0.2)
    view = details.view

    async def cell() -> None:
        details.get_widget()
        await _await(lambda: view.log_choice.value == "logs/a.txt", 5, "log a")
        await asyncio.sleep(0.05)
        (logs / "b.txt").write_text("second\n")
        await _await(lambda: view.log_choice.value == "logs/b.txt" and "second" in view.log_text.value, 5,
                     "log b followed")
        view.log_choice.value = "logs/a.txt"  # the user's choice sticks
        with open(logs / "b.txt", "a") as fh:
            fh.write("more\n")
        await asyncio.sleep(0.6)
        assert view.log_choice.value == "logs/a.txt" and "first" in view.log_text.value
        store.set_status("logs_run", "Completed")
        await _await(lambda: not details.polling, 5, "polling to stop")

    _in_loop(cell)


def _predictions(path: Path) -> None:
    """Out-of-fold predictions as an AutoML iteration saves them: probabilities, labels and classes."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.6 + rng.random(200) * 0.4, 0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, pred=np.column_stack([1 - p1, p1]), y_true=y, classes=np.array([0, 1]))


def _ws(store: Any) -> Any:
    from nbml import Workspace

    return Workspace(path=store.root)


def test_a_spark_jobs_application_id_and_ui_appear_once_the_job_records_them(store: Any) -> None:
    from nbml.widgets._model import properties_rows, table_html
    from nbml.widgets._watch import RunWatcher

    store.insert_run("spark_1", "spark-exp", "script", "myhdi", {"script": "iris.py", "arguments": []})
    store.set_status("spark_1", "Running")
    watcher = RunWatcher(store, "spark_1")
    watcher.poll()
    assert "Spark application" not in dict(properties_rows(watcher.run, watcher.metrics, watcher.properties))
    # The driver records these once its SparkContext exists (nbml.compute._spark_main), after the run started.
    store.add_properties("spark_1", {"spark_application_id": "local-1764500000000",
                                     "spark_ui_url": "http://host:4040/<x>"})
    assert watcher.poll().run
    rows = dict(properties_rows(watcher.run, watcher.metrics, watcher.properties))
    assert rows["Spark application"] == "local-1764500000000" and rows["Spark UI"] == "http://host:4040/<x>"
    assert "&lt;x&gt;" in table_html(list(rows.items())) and "/<x>" not in table_html(list(rows.items()))
