"""Run kinds register their Run subclass: `Run` imports no higher layer, yet `Run.get` returns the right class."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nbml.runs.kinds import MODULES, register, run_class


def test_kinds_resolve_lazily_and_plain_runs_import_no_higher_layer(tmp_path: Path) -> None:
    code = """
import sys
import nbml.runs.run
from nbml.runs.kinds import run_class
assert run_class("script") is None
assert not any(m.startswith(("nbml.automl", "nbml.hyperdrive")) for m in sys.modules), "a higher layer was imported"
print(run_class("automl").__name__, run_class("hyperdrive").__name__)
"""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["AutoMLRun", "HyperDriveRun"]


def test_a_kind_registers_its_own_class() -> None:
    class Custom:
        pass

    register("custom-kind-for-test", Custom)
    assert run_class("custom-kind-for-test") is Custom
    assert "custom-kind-for-test" not in MODULES
