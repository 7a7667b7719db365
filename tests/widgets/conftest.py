from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A fresh embedded workspace (NBML_HOME) and a scratch working directory."""
    from nbml import Workspace

    monkeypatch.setenv("NBML_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NBML_WORKSPACE", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield Workspace.from_config()


@pytest.fixture
def store(ws: object) -> object:
    return ws.store  # type: ignore[attr-defined]
