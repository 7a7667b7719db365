"""Fixtures of the data tests: a datastore with a small CSV, and the real targets of tests/targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "targets"))
from data_helpers import make_csv
from sshd import sshd_fixture  # noqa: F401 (the `sshd` fixture)


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data-src"
    make_csv(folder / "tabular")
    (folder / "raw").mkdir()
    (folder / "raw" / "x.bin").write_bytes(bytes(range(256)) * 64)
    return folder

