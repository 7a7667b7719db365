"""The acceptance run over the SDK's sample notebooks (slow tier): scripts/acceptance.py end to end.

It runs every notebook of ../shared/azure-samples (skipped when that folder is absent) and checks the table
it prints: one row per notebook, counts that add up, failures named, and an exit code that is non-zero
exactly when a cell failed with something other than AzureOnlyError. NBML_ACCEPTANCE_ONLY=SUBSTRING narrows
the run (e.g. to one folder while working on it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import SCRIPT

pytestmark = pytest.mark.slow


def test_every_sample_notebook_runs_and_the_table_says_how(acceptance, tmp_path):
    samples = acceptance.find_samples()
    if samples is None:
        pytest.skip("no ../shared/azure-samples next to the repository")
    only = os.environ.get("NBML_ACCEPTANCE_ONLY")
    expected = [str(p.relative_to(samples)) for p in acceptance.list_notebooks(samples, only)]
    out = tmp_path / "results.json"
    cmd = [sys.executable, str(SCRIPT), "--jobs", "2", "--cell-timeout", "600", "--json", str(out)]
    proc = subprocess.run(cmd + (["--only", only] if only else []), capture_output=True, text=True, timeout=3 * 3600)
    print(proc.stdout)  # the table, for the log of the slow tier
    results = json.loads(out.read_text())
    assert sorted(r["notebook"] for r in results) == sorted(expected)
    table = proc.stdout.split("\n\nFailing cells:")[0].splitlines()
    rows = {line.split()[0]: line.split()[1:5] for line in table[2:]}
    for r in results:
        if not any(f["cell"] == -1 for f in r["failures"]):  # -1: the notebook as a whole (timeout, runner)
            assert r["cells"] > 0 and r["passed"] + r["failed"] == r["cells"], r
        assert rows[r["notebook"]] == [str(r["cells"]), str(r["passed"]), str(r["failed"]), str(r["azure_only"])]
        for failure in r["failures"]:
            assert failure["line"] and f"{r['notebook']} [{failure['cell']}]" in proc.stdout
    other = [f for r in results for f in r["failures"] if f["ename"] != "AzureOnlyError"]
    assert proc.returncode == (1 if other else 0), proc.stderr[-2000:]
