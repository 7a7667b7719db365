"""Import scripts/acceptance.py as a module (it is a script of the project, not part of the package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "acceptance.py"


@pytest.fixture(scope="session")
def acceptance() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nbml_acceptance", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["nbml_acceptance"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
