"""The pure JSON model builders and path checks (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbml.server import files, models


def test_primary_metric_prefers_the_configured_one() -> None:
    metrics = {"loss": [0.9, 0.3], "AUC_weighted": [0.7, 0.8]}
    assert models.primary_metric({"primary_metric": "AUC_weighted"}, metrics) == {"name": "AUC_weighted", "value": 0.8}
    assert models.primary_metric({}, metrics) == {"name": "AUC_weighted", "value": 0.8}  # the last one logged
    iris = {"Kernel type": "rbf", "Penalty": 0.5, "Accuracy": 0.97}  # the tutorial logs its settings first
    assert models.primary_metric({}, iris) == {"name": "Accuracy", "value": 0.97}
    assert models.primary_metric({}, {"note": "text", "table": {"a": [1]}}) is None


def test_parents_show_progress_of_their_planned_iterations_and_their_best_child() -> None:
    automl = {"settings": {"primary_metric": "AUC_weighted", "iterations": 20}}
    assert models.primary_metric_name(automl) == "AUC_weighted"
    assert models.planned_iterations(automl, {}) == 20
    hd = {"primary_metric_name": "accuracy", "max_total_runs": 12}
    assert models.planned_iterations(hd, {}) == 12
    assert models.planned_iterations({}, {"num_iterations": "8"}) == 8  # the SDK's property, as text
    assert models.planned_iterations({"iterations": "many"}, {}) is None
    facts = models.parent_facts(done=12, started=12, planned=20, metric="AUC_weighted", best_value=0.97,
                                best_run_id="AutoML_x_3")
    assert facts == {"progress": {"done": 12, "total": 20},
                     "best": {"name": "AUC_weighted", "value": 0.97, "best_run_id": "AutoML_x_3"}}
    # more iterations started than planned (a continued run): the total is never below what ran
    assert models.parent_facts(done=3, started=5, planned=4, metric="m", best_value=None,
                               best_run_id=None) == {"progress": {"done": 3, "total": 5}, "best": None}
    row = {"run_id": "p", "experiment": "e", "status": "Running", "kind": "automl", "config_json": "{}"}
    summary = models.run_summary(row, {"AUC_weighted": 0.9}, 0.0, facts)
    assert summary["primary_metric"]["value"] == 0.97 and summary["progress"] == {"done": 12, "total": 20}
    assert models.run_summary(row, {"AUC_weighted": 0.9}, 0.0)["progress"] is None


def test_duration_runs_to_now_while_active_and_stops_at_the_end() -> None:
    assert models.duration({"started_at": None, "status": "Queued"}, now=50) is None
    assert models.duration({"started_at": 10.0, "ended_at": None, "status": "Running"}, now=50) == 40
    assert models.duration({"started_at": 10.0, "ended_at": 25.0, "status": "Completed"}, now=50) == 15


def test_run_list_pages_with_one_extra_row() -> None:
    rows = [{"run_id": f"r{i}", "experiment": "e", "status": "Completed"} for i in range(3)]
    page = models.run_list(rows, {}, 0.0, limit=2, offset=4)
    assert [r["run_id"] for r in page["runs"]] == ["r0", "r1"]
    assert page["has_more"] and page["next_offset"] == 6


def test_compute_model_keeps_node_counts() -> None:
    model = models.compute_model({"name": "c", "kind": "dask", "state": "Succeeded"},
                                 {"state": "Ready", "nodes": {"idle": 2, "running": 1}})
    assert model["status"] == "Ready" and model["nodes"] == {"idle": 2, "running": 1}
    assert models.compute_model({"name": "l", "kind": "local"}, None)["status"] == "Unknown"


def test_decode_chunk_leaves_a_cut_character_for_the_next_read() -> None:
    data = "aé".encode()
    assert models.decode_chunk(data[:2], at_eof=False) == ("a", 1)
    assert models.decode_chunk(data, at_eof=False) == ("aé", 3)
    assert models.decode_chunk(b"\xff\xfeabcdef", at_eof=False)[0].endswith("abcdef")


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "", "a\x00b"])
def test_resolve_inside_refuses_escapes(tmp_path: Path, bad: str) -> None:
    with pytest.raises(files.UnsafePath):
        files.resolve_inside(tmp_path, bad)


def test_resolve_inside_accepts_nested_paths(tmp_path: Path) -> None:
    assert files.resolve_inside(tmp_path, "a/b.txt") == (tmp_path / "a" / "b.txt").resolve()


@pytest.mark.parametrize("run_id", ["..", ".", "a/b", "a b", "", "x" * 300])
def test_invalid_run_ids_never_become_folders(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(files.UnsafePath):
        files.run_dir(tmp_path, run_id)
