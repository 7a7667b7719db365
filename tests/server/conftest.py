"""A Jupyter server with the nbml extension on a workspace seeded through the Store API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - jp_fetch, jp_serverapp and their hooks

from nbml.store import Store


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "ws"
    folder.mkdir()
    yield folder
    # Stop any run a test left going, so no supervisor outlives its test.
    from nbml.runs.status import ACTIVE

    store = Store(folder)
    for rec in store.list_runs(status=list(ACTIVE), limit=10_000):
        if rec.get("supervisor_pid"):
            store.request_cancel(rec["run_id"])


@pytest.fixture
def jp_server_config(workspace_dir: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"nbml.server": True}},
        "NbmlServer": {"workspace": str(workspace_dir)},
    }


class Seeded:
    """Ids of the runs `seeded` wrote, by role."""

    completed = "exp-a_1000_aaaa"
    running = "exp-a_2000_bbbb"
    automl = "exp-b_3000_cccc"
    children = ("exp-b_3000_cccc_0", "exp-b_3000_cccc_1")


@pytest.fixture
def seeded(workspace_dir: Path) -> Seeded:
    """Two experiments: a finished and a running script run, an AutoML parent with two children."""
    store = Store(workspace_dir)
    s = Seeded()
    store.insert_run(s.completed, "exp-a", "script", "local", {"script": "train.py"}, display_name="first")
    store.set_status(s.completed, "Running")
    for value in (0.5, 0.7, 0.9):
        store.log_metric(s.completed, "accuracy", "scalar", value)
    store.log_metric(s.completed, "loss", "scalar", float("nan"))
    store.log_metric(s.completed, "confusion", "table", {"label": ["a", "b"], "count": [3, 4]})
    store.set_tags(s.completed, {"team": "<b>vision</b>"})
    store.add_properties(s.completed, {"framework": "sklearn"})
    store.set_status(s.completed, "Completed")
    run_dir = workspace_dir / "runs" / s.completed
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "nbml-logs").mkdir()
    (run_dir / "outputs" / "model").mkdir(parents=True)
    (run_dir / "nbml-logs" / "driver_log.txt").write_text("epoch 1\népoque 2 <done>\n", encoding="utf-8")
    (run_dir / "logs" / "train.log").write_text("x" * 100)
    (run_dir / "outputs" / "model" / "model.pkl").write_bytes(b"\x80\x04pickle-bytes")
    (run_dir / "events.jsonl").write_text("{}\n")

    store.insert_run(s.running, "exp-a", "script", "local", {"script": "slow.py"})
    store.set_status(s.running, "Running")

    store.insert_run(s.automl, "exp-b", "automl", "local", {"primary_metric": "AUC_weighted"})
    store.set_status(s.automl, "Running")
    for i, child in enumerate(s.children):
        store.insert_run(child, "exp-b", "automl_iteration", "local", {}, parent_id=s.automl, iteration=i)
        store.set_status(child, "Running")
        store.log_metric(child, "AUC_weighted", "scalar", 0.8 + i / 10)
    store.set_status(s.children[0], "Completed")
    store.log_metric(s.automl, "AUC_weighted", "scalar", 0.9)
    store.db.close()
    return s


async def get_json(jp_fetch: Any, *parts: str, **kwargs: Any) -> Any:
    response = await jp_fetch(*parts, **kwargs)
    assert response.code == 200
    return json.loads(response.body)
