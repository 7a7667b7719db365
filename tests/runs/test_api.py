"""Interactive runs, child runs, files, models, compute names, the CLI and the offline context."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nbml import (
    ComputeTarget,
    ComputeTargetException,
    Experiment,
    Model,
    Run,
    ScriptRunConfig,
    UserErrorException,
)
from nbml.compute.targets import validate_name


def test_interactive_run_with_children(ws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "w.txt").write_text("weights")
    exp = Experiment(ws, "interactive")
    run = exp.start_logging()
    for alpha in (0.1, 0.5):
        child = run.child_run(name=f"alpha {alpha}")
        child.log("alpha", alpha)
        child.complete()
    run.log("best_alpha", 0.1)
    run.complete()
    assert run.get_status() == "Completed"
    kids = list(run.get_children())
    assert [k.get_metrics()["alpha"] for k in kids] == [0.1, 0.5]
    assert run.get_metrics(recursive=True)[kids[0].id] == {"alpha": 0.1}
    assert "outputs/w.txt" in run.get_file_names()
    assert [r.id for r in exp.get_runs()] == [run.id]


def test_files_can_not_escape_the_run_folder(ws, tmp_path):
    run = Experiment(ws, "files").start_logging(outputs=None)
    src = tmp_path / "f.txt"
    src.write_text("hi")
    run.upload_file("outputs/f.txt", str(src))
    with pytest.raises(UserErrorException, match="outside the run's folder"):
        run.upload_file("../../escape.txt", str(src))
    with pytest.raises(UserErrorException, match="has no file 'outputs/nope'.*outputs/f.txt"):
        run.download_file("outputs/nope")
    out = run.download_files(prefix="outputs", output_directory=str(tmp_path / "dl"))
    assert open(out[0]).read() == "hi"
    run.complete()


def test_model_registry_versions_and_errors(ws, tmp_path):
    f = tmp_path / "m.pkl"
    f.write_text("v1")
    Model.register(ws, model_path=str(f), model_name="clf", tags={"stage": "dev"})
    f.write_text("v2")
    Model.register(ws, model_path=str(f), model_name="clf")
    assert Model(ws, "clf").version == 2
    assert open(Model(ws, "clf", version=1).download(str(tmp_path / "d1"))).read() == "v1"
    assert [m.version for m in Model.list(ws, "clf")] == [2, 1]
    assert [m.version for m in Model.list(ws, tags={"stage": "dev"})] == [1]
    with pytest.raises(UserErrorException, match="No model 'missing'"):
        Model(ws, "missing")


@pytest.mark.parametrize("bad", ["has space", "under_score", "dot.name", "x" * 64, "semi;colon", ""])
def test_compute_names_follow_the_sdk_rules(bad):
    with pytest.raises(ComputeTargetException):
        validate_name(bad)


def test_compute_target_lookup(ws):
    assert validate_name("cpu-cluster-1") == "cpu-cluster-1"
    assert ComputeTarget(ws, "local").target_kind == "local"
    assert list(ws.compute_targets) == ["local"]
    assert [t.name for t in ws.compute_targets()] == ["local"]  # the 2018 notebooks call it
    with pytest.raises(ComputeTargetException, match="No compute target named 'mydsvm'"):
        ComputeTarget(ws, "mydsvm")


def test_offline_context_prints_what_it_logs(capsys, monkeypatch):
    monkeypatch.delenv("NBML_RUN_ID", raising=False)
    run = Run.get_context()
    run.log("accuracy", 0.9)
    assert "accuracy" in capsys.readouterr().out
    assert run.get_metrics() == {"accuracy": 0.9}


def _cli(ws, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbml", "--workspace", str(ws.path), *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_cli_lists_shows_follows_and_cancels(ws, project):
    project(**{"hello.py": "from nbml import Run\nRun.get_context().log('x', 1)\nprint('hello from the run')\n",
               "slow.py": "import time\nprint('slow', flush=True)\ntime.sleep(60)\n"})
    exp = Experiment(ws, "cli")
    done = exp.submit(ScriptRunConfig(".", "hello.py"))
    done.wait_for_completion()
    slow = exp.submit(ScriptRunConfig(".", "slow.py"))
    listing = _cli(ws, "runs", "list")
    assert done.id in listing.stdout and "Completed" in listing.stdout and slow.id in listing.stdout
    shown = json.loads(_cli(ws, "runs", "show", done.id).stdout)
    assert shown["status"] == "Completed" and shown["metrics"] == {"x": 1}
    assert "hello from the run" in _cli(ws, "runs", "logs", done.id).stdout
    cancelled = _cli(ws, "runs", "cancel", slow.id)
    assert "Canceled" in cancelled.stdout, cancelled.stdout + cancelled.stderr
    assert "local" in _cli(ws, "compute", "list").stdout
    missing = _cli(ws, "runs", "show", "nope")
    assert missing.returncode == 2 and "No run 'nope'" in missing.stderr
