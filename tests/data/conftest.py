"""Fixtures of the data tests: a datastore with a small CSV, and the real targets of tests/targets."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "targets"))
from data_helpers import make_csv
from sshd import SshServer, available


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data-src"
    make_csv(folder / "tabular")
    (folder / "raw").mkdir()
    (folder / "raw" / "x.bin").write_bytes(bytes(range(256)) * 64)
    return folder


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    why = available()
    if why:
        pytest.skip(why)
    server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()
