"""What RunDetails shows, computed from store rows (no widgets involved)."""

from __future__ import annotations

from nbml.widgets import _iterations as it
from nbml.widgets import _model as m


def _metric_rows(start: int, rows: list[tuple[str, str, object]]) -> list[dict[str, object]]:
    return [{"id": start + i, "name": n, "kind": k, "value": v} for i, (n, k, v) in enumerate(rows)]


def test_metrics_fold_incrementally_and_report_only_changed_names() -> None:
    state = m.MetricsState()
    assert state.apply(_metric_rows(1, [("loss", "scalar", 0.9), ("alpha", "scalar", 0.1)])) == {"loss", "alpha"}
    assert state.apply(_metric_rows(3, [("loss", "scalar", 0.5)])) == {"loss"}
    assert state.after_id == 3
    assert state.series() == {"loss": [0.9, 0.5]}
    assert state.scalars() == {"alpha": 0.1}
    state.apply(_metric_rows(4, [("acc", "list", [0.1, 0.2, 0.3])]))
    assert state.series()["acc"] == [0.1, 0.2, 0.3]


def test_html_is_escaped_everywhere_run_data_is_shown() -> None:
    run = {"run_id": "r<1>", "status": "Running", "experiment": "<b>x</b>", "compute_target": "t&t",
           "started_at": 1.0, "kind": "script"}
    header = m.Header.from_run(run).html()
    assert "<b>x</b>" not in header and "&lt;b&gt;x&lt;/b&gt;" in header
    assert "r&lt;1&gt;" in header and "/nbml/runs/r&lt;1&gt;" in header
    assert "<script>" not in m.log_html("a <script>alert(1)</script>", truncated=False)
    table = m.table_html([("<k>", "<img src=x onerror=alert(1)>")])
    assert "<img" not in table and "&lt;img src=x" in table
    assert "<img" not in m.files_html([("<img>.txt", 3)])


def _child(i: int, status: str = "Completed", start: float = 100.0) -> dict[str, object]:
    return {"run_id": f"P_{i}", "iteration": i, "status": status, "started_at": start + i, "ended_at":
            start + i + 2 if status == "Completed" else None, "display_name": None}


def test_children_best_so_far_follows_the_goal_of_the_primary_metric() -> None:
    state = it.ChildrenState("AUC_weighted")
    scores = [0.7, 0.9, 0.8, 0.95]
    runs = [_child(i) for i in range(4)]
    props = {f"P_{i}": {"run_preprocessor": "MaxAbsScaler", "run_algorithm": "LightGBM"} for i in range(4)}
    metrics = {f"P_{i}": {"AUC_weighted": s, "log_loss": 1 - s} for i, s in enumerate(scores)}
    assert state.apply(runs, props, metrics) == {"P_0", "P_1", "P_2", "P_3"}
    assert [r.best for r in state.ordered()] == [0.7, 0.9, 0.9, 0.95]
    assert state.ordered()[0].pipeline == "MaxAbsScaler LightGBM"
    assert state.best_run()[0].run_id == "P_3"  # type: ignore[index]
    xs, ys, best = state.metric_series("log_loss")  # a loss: lower is better
    assert xs == [0, 1, 2, 3] and best[-1] == min(ys)
    assert state.metric_names()[0] == "AUC_weighted"
    # One more iteration changes only that row (its best doesn't move the others).
    changed = state.apply([_child(4)], {"P_4": {}}, {"P_4": {"AUC_weighted": 0.5}})
    assert changed == {"P_4"}


def test_an_automl_screen_is_listed_but_never_the_best() -> None:
    state = it.ChildrenState("AUC_weighted")
    props = {"P_0": {"run_preprocessor": "MaxAbsScaler", "run_algorithm": "KNN", "fidelity": "1"},
             "P_1": {"run_preprocessor": "MaxAbsScaler", "run_algorithm": "KNN", "fidelity": "0.286"}}
    state.apply([_child(0), _child(1)], props, {"P_0": {"AUC_weighted": 0.9}, "P_1": {"AUC_weighted": 0.99}})
    assert state.ordered()[1].pipeline == "MaxAbsScaler KNN [screen 29%]"
    assert [r.best for r in state.ordered()] == [0.9, 0.9]
    assert state.best_run()[0].run_id == "P_0"  # type: ignore[index]
    state.apply([_child(1)], {}, {})  # a later change without its properties keeps it a screen
    assert state.best_run()[0].run_id == "P_0"  # type: ignore[index]


def test_minimised_primary_metric_and_unfinished_iterations() -> None:
    state = it.ChildrenState("normalized_root_mean_squared_error")
    assert state.goal == "minimize"
    state.apply([_child(0), _child(1, "Running"), _child(2)], {},
                {"P_0": {"normalized_root_mean_squared_error": 0.3}, "P_1": {},
                 "P_2": {"normalized_root_mean_squared_error": 0.1}})
    assert [r.best for r in state.ordered()] == [0.3, 0.3, 0.1]
    cells = state.status_cells()
    assert cells[1][1] == "Running" and cells[1][2] == m.status_colour("Running")
    assert cells[2][2] != cells[0][2]  # shaded by score


def test_sort_and_page_keeps_empty_values_last() -> None:
    state = it.ChildrenState("AUC_weighted")
    runs = [_child(i, "Completed" if i != 3 else "Running") for i in range(25)]
    metrics = {f"P_{i}": ({"AUC_weighted": i / 100} if i != 3 else {}) for i in range(25)}
    state.apply(runs, {}, metrics)
    page, pages = it.sort_and_page(state.ordered(), "metric", True, 0, 10)
    assert pages == 3 and [c["iteration"] for c in page[:3]] == [24, 23, 22]
    last, _ = it.sort_and_page(state.ordered(), "metric", True, 2, 10)
    assert last[-1]["iteration"] == 3
    beyond, _ = it.sort_and_page(state.ordered(), "iteration", False, 99, 10)
    assert beyond[0]["iteration"] == 20


def test_feature_importance_accepts_the_usual_shapes() -> None:
    names, values = m.feature_importance({"feature_names": ["a", "b"], "importance": [0.1, -0.5]})  # type: ignore[misc]
    assert names == ["b", "a"] and values == [-0.5, 0.1]
    assert m.feature_importance({"x": 0.2, "y": 0.3}) == (["y", "x"], [0.3, 0.2])
    assert m.feature_importance([1, 2]) is None
    assert m.feature_importance({"feature_names": ["a"], "importance": [1, 2]}) is None


def test_durations_and_arguments() -> None:
    assert m.format_duration(3725) == "1:02:05"
    assert m.format_duration(None) == ""
    run = {"config_json": '{"script": "train.py", "arguments": ["--alpha", "0.5"]}'}
    assert m.run_arguments(run) == "train.py --alpha 0.5"


def test_a_run_without_iteration_number_is_listed_but_not_a_point_of_the_search() -> None:
    state = it.ChildrenState("AUC_weighted")
    explain = {"run_id": "P_explain", "iteration": None, "status": "Completed", "started_at": 1.0,
               "ended_at": 2.0, "display_name": "ModelExplain"}
    state.apply([_child(0), explain], {"P_explain": {"explained_run_id": "P_0"}},
                {"P_0": {"AUC_weighted": 0.9}, "P_explain": {}})
    assert [r.run_id for r in state.ordered()] == ["P_0", "P_explain"]
    assert len(state.status_cells()) == 1
    assert state.metric_series("AUC_weighted")[0] == [0]
    assert state.explained_by == {"P_0": "P_explain"}


def test_status_bar_packs_one_entry_per_iteration() -> None:
    import array
    import math

    state = it.ChildrenState("AUC_weighted")
    state.apply([_child(0), _child(1, "Running"), _child(2), _child(3, "Failed")], {},
                {"P_0": {"AUC_weighted": 0.7}, "P_2": {"AUC_weighted": 0.9}})
    bar = state.status_bar()
    iterations, codes, scores = array.array("i"), array.array("B"), array.array("d")
    iterations.frombytes(bar.iterations)
    codes.frombytes(bar.statuses)
    scores.frombytes(bar.scores)
    assert list(iterations) == [0, 1, 2, 3] and bar.run_ids == ["P_0", "P_1", "P_2", "P_3"]
    assert [bar.names[c][0] for c in codes] == ["Completed", "Running", "Completed", "Failed"]
    assert bar.names[codes[1]][1] == m.status_colour("Running")
    assert scores[0] == 0.7 and scores[2] == 0.9 and math.isnan(scores[1]) and math.isnan(scores[3])
    # Known statuses keep their index from one update to the next (the browser's list only grows).
    again = state.status_bar(bar.names)
    assert again.names == bar.names and again.statuses == bar.statuses


def test_a_short_value_is_never_cut_a_long_name_gives_way() -> None:
    html = m.table_html([("average_precision_score_weighted", "0.988516"), ("Best pipeline", "x" * 60)])
    number, pipeline = html.split("<div class='nbml-prop'")[1:]
    assert "flex-shrink:0" in number.split("nbml-prop-value")[1] and "text-overflow" in number.split("nbml-prop-value")[0]
    assert "text-overflow:ellipsis" in pipeline.split("nbml-prop-value")[1]


def test_a_click_on_a_status_bar_cell_selects_its_run_and_a_second_click_clears_it() -> None:
    from nbml.widgets._table import IterationTable

    state = it.ChildrenState("AUC_weighted")
    state.apply([_child(0), _child(1)], {}, {"P_0": {"AUC_weighted": 0.7}, "P_1": {"AUC_weighted": 0.8}})
    table = IterationTable(state)
    table.refresh()
    assert table.bar_count == 2
    table._on_message(table, {"type": "select-cell", "index": 1}, [])
    assert table.selected == "P_1"
    table._on_message(table, {"type": "select-cell", "index": 1}, [])
    assert table.selected == ""
    table._on_message(table, {"type": "select-cell", "index": 7}, [])  # a stale index: nothing
    assert table.selected == ""
    table.close()


def test_the_started_column_shows_the_time_of_day_for_today() -> None:
    import time

    now = time.mktime((2026, 11, 30, 15, 0, 0, 0, 0, -1))
    assert m.format_time_short(now - 3600, now) == "14:00:00"
    assert m.format_time_short(now - 2 * 86400, now) == "2026-11-28 15:00"
    assert m.format_time_short(None, now) == ""
