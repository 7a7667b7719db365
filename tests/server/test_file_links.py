"""The file routes never serve what a link planted in a run's folder points at outside it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import Seeded, get_json


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("SECRET")
    return folder


async def _refused(jp_fetch: Any, *parts: str) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch(*parts)
    assert exc.value.code in (400, 404)
    assert b"SECRET" not in (exc.value.response.body or b"")


async def test_a_linked_folder_inside_outputs_is_neither_listed_nor_served(
        jp_fetch: Any, seeded: Seeded, workspace_dir: Path, outside: Path) -> None:
    outputs = workspace_dir / "runs" / seeded.completed / "outputs"
    (outputs / "elsewhere").symlink_to(outside)
    listing = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "outputs")
    assert [f["path"] for f in listing["files"]] == ["model/model.pkl"]
    await _refused(jp_fetch, "nbml", "api", "runs", seeded.completed, "outputs", "elsewhere/secret.txt")


async def test_outputs_replaced_by_a_link_serves_nothing(
        jp_fetch: Any, seeded: Seeded, workspace_dir: Path, outside: Path) -> None:
    outputs = workspace_dir / "runs" / seeded.completed / "outputs"
    shutil.rmtree(outputs)
    outputs.symlink_to(outside)
    listing = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "outputs")
    assert listing["files"] == []
    await _refused(jp_fetch, "nbml", "api", "runs", seeded.completed, "outputs", "secret.txt")


async def test_a_log_linked_outside_is_neither_listed_nor_served(
        jp_fetch: Any, seeded: Seeded, workspace_dir: Path, outside: Path) -> None:
    logs = workspace_dir / "runs" / seeded.completed / "logs"
    (logs / "leak.log").symlink_to(outside / "secret.txt")
    (logs / "leakdir").symlink_to(outside)
    listing = await get_json(jp_fetch, "nbml", "api", "runs", seeded.completed, "logs")
    paths = {f["path"] for f in listing["files"]}
    assert "logs/leak.log" not in paths and not any("secret" in p for p in paths)
    await _refused(jp_fetch, "nbml", "api", "runs", seeded.completed, "logs", "logs/leak.log")
    await _refused(jp_fetch, "nbml", "api", "runs", seeded.completed, "logs", "logs/leakdir/secret.txt")
