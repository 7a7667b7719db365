"""Distributed runs under test: the targets' fixtures and factories from tests/targets."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "targets"))
from sshd import sshd_fixture  # noqa: F401 (the `sshd` fixture)
