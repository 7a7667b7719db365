"""RunDetails against a real workspace store: real script runs, and AutoML-shaped parents written by another process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
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
    details.get_widget()
    _wait(lambda: not details.polling, 120, "the widget to stop polling after the run ends")
    view = details.view
    assert run.get_status() == "Completed"
    assert "Completed" in view.header.value and f"/nbml/runs/{run.id}" in view.header.value
    assert "train.py --alpha 0.5" in view.props.value and "alpha" in view.props.value
    assert list(view.charts) == ["loss"] and list(view.charts["loss"].data[0].y) == [1.0, 0.5, 1 / 3, 0.25]
    assert view.log_choice.value == "nbml-logs/driver_log.txt"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in view.log_text.value and "<script>" not in view.log_text.value
    assert "model.pkl" in view.outputs.value


def test_parent_updates_live_while_the_kernel_thread_is_busy(store: Any) -> None:
    simulate.start_parent(store, "AutoML_live")
    feeder = subprocess.Popen([sys.executable, simulate.__file__, str(store.root), "AutoML_live", "12", "0.4"])
    try:
        details = RunDetails(Run.get(_ws(store), "AutoML_live"), poll_seconds=0.3)
        details.get_widget()
        table = details.view.table
        seen: list[int] = []
        end = time.monotonic() + 60
        # Busy the calling thread the way a long cell does; the widget's thread must keep patching the table.
        while details.polling and time.monotonic() < end:
            x = 0
            for i in range(200_000):
                x += i * i
            seen.append(table.total)
        assert feeder.wait(30) == 0
        _wait(lambda: not details.polling, 10, "polling to stop")
    finally:
        feeder.kill()
    assert table.total == 12 and len(set(seen)) >= 4, seen  # rows arrived while the loop ran
    assert [r["iteration"] for r in table.rows] == list(range(10)) and table.pages == 2
    assert len(table.cells) == 12
    xs, ys = list(details.view.chart.data[0].x), list(details.view.chart.data[0].y)
    assert xs == list(range(12)) and len(ys) == 12
    assert list(details.view.chart.data[1].y) == [max(ys[: i + 1]) for i in range(12)]


def test_rows_appear_within_two_seconds_of_the_store_write(store: Any) -> None:
    simulate.start_parent(store, "AutoML_lat")
    details = RunDetails(Run.get(_ws(store), "AutoML_lat"), poll_seconds=0.5)
    details.get_widget()
    try:
        for i in range(3):
            written = time.monotonic()
            simulate.add_iteration(store, "AutoML_lat", i)
            _wait(lambda i=i: details.view.table.total == i + 1, 2.0, f"iteration {i} in the table")
            assert time.monotonic() - written < 2.0
    finally:
        details.stop()


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
    details = RunDetails(Run.get(_ws(store), "AutoML_sel"))
    details.get_widget()
    view = details.view
    view.table.sort_by, view.table.descending = "metric", True
    metrics = [r["metric"] for r in view.table.rows]
    assert metrics[:3] == sorted(metrics[:3], reverse=True) and metrics[3] is None  # no score sorts last
    view.table.selected = "AutoML_sel_1"
    detail = view.detail
    assert detail is not None and detail.watcher.run_id == "AutoML_sel_1"
    assert "iteration 1 (" in detail.log_text.value
    assert "AUC_weighted" in detail.props.value
    bar = detail.explanation.children[-1]
    assert list(bar.data[0].y) == ["sepal", "petal"]  # most important on top
    view.metric_choice.value = "accuracy"
    assert view.chart.data[0].name == "accuracy"
    view.table.selected = ""
    assert view.detail is None and view.detail_box.children == ()


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
    details.get_widget()
    view = details.view
    _wait(lambda: view.log_choice.value == "logs/a.txt", 5, "log a")
    time.sleep(0.05)
    (logs / "b.txt").write_text("second\n")
    _wait(lambda: view.log_choice.value == "logs/b.txt" and "second" in view.log_text.value, 5, "log b followed")
    view.log_choice.value = "logs/a.txt"  # the user's choice sticks
    with open(logs / "b.txt", "a") as fh:
        fh.write("more\n")
    time.sleep(0.6)
    assert view.log_choice.value == "logs/a.txt" and "first" in view.log_text.value
    store.set_status("logs_run", "Completed")
    _wait(lambda: not details.polling, 5, "polling to stop")


def _ws(store: Any) -> Any:
    from nbml import Workspace

    return Workspace(path=store.root)
