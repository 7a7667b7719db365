"""The REST API under /nbml/api/, against a real Jupyter server with the extension loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from nbml.store import Store

from .conftest import Seeded, get_json


async def test_workspace_names_the_served_folder(jp_fetch: Any, workspace_dir: Path) -> None:
    model = await get_json(jp_fetch, "nbml", "api", "workspace")
    assert model["path"] == str(workspace_dir)


async def test_compute_lists_local_and_attached_targets_with_status(jp_fetch: Any, workspace_dir: Path) -> None:
    Store(workspace_dir).add_compute("gpu-box", "no-such-kind", {"address": "127.0.0.1"})
    targets = {t["name"]: t for t in (await get_json(jp_fetch, "nbml", "api", "compute"))["targets"]}
    assert set(targets) == {"local", "gpu-box"}
    assert targets["local"]["kind"] == "local" and targets["local"]["status"] == "Succeeded"
    # A target whose backend can't be asked still shows, with the reason.
    assert targets["gpu-box"]["status"] == "Unknown"
    assert "no-such-kind" in targets["gpu-box"]["error"]


async def test_experiments_list_their_latest_runs(jp_fetch: Any, seeded: Seeded) -> None:
    model = await get_json(jp_fetch, "nbml", "api", "experiments", params={"latest": "1"})
    exps = {e["name"]: e for e in model["experiments"]}
    assert set(exps) == {"exp-a", "exp-b"}
    assert exps["exp-a"]["run_count"] == 2
    assert [r["run_id"] for r in exps["exp-a"]["latest_runs"]] == [seeded.running]  # newest first
    automl = exps["exp-b"]["latest_runs"][0]
    # a parent shows its best child's primary metric, named, and how many of its iterations have ended
    assert automl["primary_metric"] == {"name": "AUC_weighted", "value": 0.9, "best_run_id": seeded.children[1]}
    assert automl["progress"] == {"done": 1, "total": 2}
    assert automl["duration_seconds"] >= 0 and not automl["is_terminal"]
    assert exps["exp-a"]["latest_runs"][0]["progress"] is None  # a script run has no iterations


async def test_runs_filter_by_experiment_and_status_and_page(jp_fetch: Any, seeded: Seeded) -> None:
    page = await get_json(jp_fetch, "nbml", "api", "runs", params={"experiment": "exp-a", "limit": "1"})
    assert [r["run_id"] for r in page["runs"]] == [seeded.running]
    assert page["has_more"] and page["next_offset"] == 1
    page2 = await get_json(jp_fetch, "nbml", "api", "runs", params={"experiment": "exp-a", "limit": "1", "offset": "1"})
    assert [r["run_id"] for r in page2["runs"]] == [seeded.completed]
    assert not page2["has_more"] and page2["next_offset"] is None

    done = await get_json(jp_fetch, "nbml", "api", "runs", params={"status": "Completed"})
    assert [r["run_id"] for r in done["runs"]] == [seeded.completed]  # top-level runs only by default
    both = await get_json(jp_fetch, "nbml", "api", "runs", params={"status": "Completed,Running", "children": "1"})
    assert {r["run_id"] for r in both["runs"]} == {seeded.completed, seeded.running, seeded.automl, *seeded.children}
    kids = await get_json(jp_fetch, "nbml", "api", "runs", params={"parent": seeded.automl})
    assert {r["run_id"] for r in kids["runs"]} == set(seeded.children)


async def test_run_details_hold_metrics_children_tags_logs_and_outputs(jp_fetch: Any, seeded: Seeded) -> None:
    run = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed)
    assert run["status"] == "Completed" and run["is_terminal"]
    assert run["metrics"]["accuracy"] == [0.5, 0.7, 0.9]
    assert run["metrics"]["loss"] == "nan"  # strict JSON: NaN spelled out
    assert run["metrics"]["confusion"] == {"label": ["a", "b"], "count": [3, 4]}
    assert run["primary_metric"] == {"name": "accuracy", "value": 0.9}
    assert run["tags"] == {"team": "<b>vision</b>"}
    assert [h["status"] for h in run["status_history"]] == ["NotStarted", "Running", "Completed"]
    assert [f["path"] for f in run["log_files"]] == ["logs/train.log", "nbml-logs/driver_log.txt"]
    assert run["output_files"] == [{"path": "model/model.pkl", "size": 14}]
    assert run["page"] == f"nbml/runs/{seeded.completed}"

    parent = await get_json(jp_fetch, "nbml", "api", "runs", seeded.automl)
    assert [c["run_id"] for c in parent["children"]] == list(seeded.children)
    assert [c["status"] for c in parent["children"]] == ["Completed", "Running"]


async def test_metrics_endpoint_returns_rows_after_an_id(jp_fetch: Any, seeded: Seeded) -> None:
    first = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "metrics")
    assert [r["value"] for r in first["rows"] if r["name"] == "accuracy"] == [0.5, 0.7, 0.9]
    again = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "metrics",
                           params={"after": str(first["last_id"])})
    assert again["rows"] == [] and again["last_id"] == first["last_id"]


async def test_children_endpoint(jp_fetch: Any, seeded: Seeded) -> None:
    model = await get_json(jp_fetch, "nbml", "api", "runs", seeded.automl, "children")
    assert [(c["run_id"], c["primary_metric"]["value"]) for c in model["children"]] == [
        (seeded.children[0], 0.8), (seeded.children[1], 0.9)]


async def test_log_content_is_read_from_an_offset(jp_fetch: Any, seeded: Seeded) -> None:
    listing = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "logs")
    assert {f["path"] for f in listing["files"]} == {"logs/train.log", "nbml-logs/driver_log.txt"}
    whole = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "logs", "nbml-logs/driver_log.txt")
    assert whole["content"] == "epoch 1\népoque 2 <done>\n"
    assert whole["next_offset"] == whole["size"] == len("epoch 1\népoque 2 <done>\n".encode())
    # A chunk that ends inside the two-byte "é" stops before it; the next read starts there.
    part = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "logs", "nbml-logs/driver_log.txt",
                          params={"offset": "3", "limit": "6"})
    assert part["content"] == "ch 1\n" and part["next_offset"] == 8
    rest = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "logs", "nbml-logs/driver_log.txt",
                          params={"offset": "8"})
    assert rest["content"].startswith("époque")
    past_end = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "logs", "logs/train.log",
                              params={"offset": "1000"})
    assert past_end["content"] == "" and past_end["next_offset"] == 100


async def test_outputs_are_listed_and_downloaded(jp_fetch: Any, seeded: Seeded) -> None:
    listing = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "outputs")
    assert listing["files"] == [{"path": "model/model.pkl", "size": 14}]
    response = await jp_fetch("nbml", "api", "runs", seeded.completed, "outputs", "model/model.pkl")
    assert response.body == b"\x80\x04pickle-bytes"
    assert "attachment" in response.headers["Content-Disposition"]


async def test_cancel_flags_the_run_and_its_children(jp_fetch: Any, seeded: Seeded, workspace_dir: Path) -> None:
    response = await jp_fetch("nbml", "api", "runs", seeded.automl, "cancel", method="POST", body="")
    model = json.loads(response.body)
    # The finished child is left alone.
    assert set(model["flagged"]) == {seeded.automl, seeded.children[1]}
    store = Store(workspace_dir)
    assert store.cancel_requested(seeded.automl) and store.cancel_requested(seeded.children[1])
    summary = await get_json(jp_fetch, "nbml", "api", "runs", seeded.automl)
    assert summary["cancel_requested"]
    finished = await jp_fetch("nbml", "api", "runs", seeded.completed, "cancel", method="POST", body="")
    assert json.loads(finished.body)["flagged"] == []


def _code(exc: pytest.ExceptionInfo[HTTPClientError]) -> int:
    return exc.value.code


@pytest.mark.parametrize(
    "parts",
    [
        ("logs", "../../../nbml.db"),
        ("logs", "..%2F..%2Fnbml.db"),
        ("logs", "/etc/passwd"),
        ("logs", "outputs/model/model.pkl"),
        ("logs", "events.jsonl"),
        ("outputs", "../nbml-logs/driver_log.txt"),
        ("outputs", "%2E%2E/%2E%2E/%2E%2E/nbml.db"),
    ],
)
async def test_paths_leaving_the_run_folder_are_refused(jp_fetch: Any, seeded: Seeded, parts: tuple[str, str]) -> None:
    kind, path = parts
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", "runs", seeded.completed, kind, path)
    assert _code(exc) in (400, 404)
    assert b"SQLite" not in (exc.value.response.body or b"")


async def test_links_out_of_the_run_folder_are_neither_listed_nor_served(
    jp_fetch: Any, seeded: Seeded, workspace_dir: Path
) -> None:
    outputs = workspace_dir / "runs" / seeded.completed / "outputs"
    (outputs / "db-link").symlink_to(workspace_dir / "nbml.db")
    listing = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "outputs")
    assert [f["path"] for f in listing["files"]] == ["model/model.pkl"]
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", "runs", seeded.completed, "outputs", "db-link")
    assert _code(exc) == 400


RUN_ENDPOINTS = [(), ("metrics",), ("children",), ("logs",), ("logs", "x.txt"), ("outputs",), ("outputs", "x.bin")]


@pytest.mark.parametrize("run_id", ["no-such-run", "..", "a b"])
@pytest.mark.parametrize("suffix", RUN_ENDPOINTS)
async def test_unknown_run_ids_answer_404(jp_fetch: Any, seeded: Seeded, run_id: str, suffix: tuple[str, ...]) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", "runs", run_id, *suffix)
    assert _code(exc) == 404
    assert run_id in json.loads(exc.value.response.body)["message"] or run_id == ".."


async def test_cancel_of_an_unknown_run_answers_404(jp_fetch: Any, seeded: Seeded) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", "runs", "no-such-run", "cancel", method="POST", body="")
    assert _code(exc) == 404


async def test_missing_log_file_answers_404(jp_fetch: Any, seeded: Seeded) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", "runs", seeded.completed, "logs", "logs/nope.txt")
    assert _code(exc) == 404


@pytest.mark.parametrize(
    ("parts", "params"),
    [
        (("runs",), {"limit": "0"}),
        (("runs",), {"limit": "many"}),
        (("runs",), {"offset": "-1"}),
        (("experiments",), {"latest": "1000"}),
    ],
)
async def test_bad_query_arguments_answer_400(jp_fetch: Any, seeded: Seeded, parts: tuple[str, ...],
                                               params: dict[str, str]) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", *parts, params=params)
    assert _code(exc) == 400
    assert next(iter(params)) in json.loads(exc.value.response.body)["message"]
