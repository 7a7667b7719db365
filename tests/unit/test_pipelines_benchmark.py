"""benchmarks/automl_pipelines.py compares pipelines tried against "today's" code: the commit before warm
workers. Its default baseline must be that commit (no warm-worker module, the next commit on its line adds it),
and the ratio it prints must not hide a baseline that tried nothing."""

from __future__ import annotations

import importlib.util
import math
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("automl_pipelines", ROOT / "benchmarks" / "automl_pipelines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def test_the_default_baseline_is_the_commit_before_warm_workers() -> None:
    shallow = _git("rev-parse", "--is-shallow-repository")
    if shallow.returncode or shallow.stdout.strip() != "false":
        pytest.skip("needs the project's full git history")
    bench = _bench()
    baseline = bench.default_baseline()
    assert _git("cat-file", "-e", f"{baseline}:{bench.WARM_MODULE}").returncode != 0  # no warm workers there
    assert _git("merge-base", "--is-ancestor", baseline, "HEAD").returncode == 0
    # and a commit made on top of it (its first parent) is the one that brought them
    lines = [ln.split() for ln in _git("rev-list", "--parents", f"{baseline}..HEAD").stdout.splitlines()]
    children = [commit for commit, *parents in lines if parents and parents[0] == baseline]
    assert any(_git("cat-file", "-e", f"{c}:{bench.WARM_MODULE}").returncode == 0 for c in children)


def test_ratio_of_pipelines_tried() -> None:
    bench = _bench()
    assert bench.ratio(50, 10) == 5.0
    assert bench.ratio(7, 0) == math.inf  # the baseline tried nothing: not a finite win to average
    assert math.isnan(bench.ratio(0, 0))
    assert bench.geomean([4.0, 9.0, math.inf, math.nan]) == pytest.approx(6.0)
