"""``GET /nbml/api/runs/<id>/metrics?after=N``: a poller gets only what is new; without `after`, everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from nbml.store import Store

from .conftest import Seeded, get_json


async def test_after_returns_only_newer_rows_and_the_new_last_id(jp_fetch: Any, seeded: Seeded,
                                                                 workspace_dir: Path) -> None:
    full = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "metrics")
    assert set(full) == {"run_id", "metrics", "rows", "last_id"}  # the shape callers without `after` rely on
    assert full["metrics"]["accuracy"] == [0.5, 0.7, 0.9] and full["metrics"]["loss"] == "nan"
    assert full["last_id"] == full["rows"][-1]["id"]

    store = Store(workspace_dir)
    store.log_metric(seeded.completed, "accuracy", "scalar", float("inf"))
    store.log_metric(seeded.completed, "accuracy", "row", {"epoch": 4})  # a second kind under one name
    new = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "metrics",
                         params={"after": str(full["last_id"])})
    assert [(r["name"], r["kind"], r["value"]) for r in new["rows"]] == [
        ("accuracy", "scalar", "inf"), ("accuracy", "row", {"epoch": 4})]
    assert "metrics" not in new and new["after"] == full["last_id"] and new["last_id"] == new["rows"][-1]["id"]

    again = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "metrics",
                           params={"after": str(new["last_id"])})
    assert again["rows"] == [] and again["last_id"] == new["last_id"]
    whole = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "metrics")
    assert whole["metrics"]["accuracy"] == [0.5, 0.7, 0.9, "inf", {"epoch": 4}]  # mixed kinds: every value kept


@pytest.mark.parametrize("after", ["-1", "ten"])
async def test_a_bad_after_is_refused_with_the_reason(jp_fetch: Any, seeded: Seeded, after: str) -> None:
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("nbml", "api", "runs", seeded.completed, "metrics", params={"after": after})
    assert err.value.code == 400
    assert b"after" in (err.value.response.body or b"") or "after" in str(err.value.message)


def test_the_model_spells_out_every_non_finite_value_and_keeps_the_rest() -> None:
    from nbml.server import models

    inf, nan = float("inf"), float("nan")
    rows = [{"id": i + 1, "name": "m", "kind": "list", "value": v, "step": None, "logged_at": 0.0}
            for i, v in enumerate([[1.0, 2], [inf, -inf], [1e308, 1e308], [nan, "a"], {"c": [nan]}, nan, 3])]
    model = models.metrics_model("r", rows, None)
    assert [r["value"] for r in model["rows"]] == [
        [1.0, 2], ["inf", "-inf"], [1e308, 1e308], ["nan", "a"], {"c": ["nan"]}, "nan", 3]
    assert model["metrics"]["m"][:6] == [1.0, 2, "inf", "-inf", 1e308, 1e308]
    assert models.metrics_model("r", rows[5:], 5) == {"run_id": "r", "rows": [
        {**rows[5], "value": "nan"}, rows[6]], "last_id": 7, "after": 5}
