"""TensorBoard over nbml runs (the real `tensorboard` package): serving runs' logs live, and exporting metrics."""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorboard")
from sshd import SshServer, ssh_attach_args
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

from nbml import Environment, Experiment, RemoteCompute, ScriptRunConfig, Workspace
from nbml.tensorboard import Tensorboard
from nbml.tensorboard.export import export_to_tensorboard

#: A training script that writes TensorBoard files to ./logs, then waits for the test's go-ahead to finish.
SCRIPT = """
import os, sys, time
from tensorboard.summary import Writer

writer = Writer("logs/train")
for step in range(5):
    writer.add_scalar("loss", 1.0 / (step + 1), step)
writer.flush()
print("wrote 5 steps", flush=True)
deadline = time.time() + 300
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.2)
writer.add_scalar("loss", 0.01, 5)
writer.close()
"""


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _scalars(url: str, run: str, tag: str) -> list[tuple[int, float]]:
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    return [(int(step), round(value, 6)) for _wall, step, value in _get(f"{url}data/plugin/scalars/scalars?{query}")]


def _wait_for(fn: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _tensor_series(folder: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return [(e.step, round(float(make_ndarray(e.tensor_proto)), 6)) for e in acc.Tensors(tag)]


def test_export_to_tensorboard_round_trip(ws: Workspace, tmp_path: Path) -> None:
    run = Experiment(ws, "export").start_logging(outputs=None)
    for step, loss in [(0, 0.9), (10, 0.4), (20, 0.1)]:
        run.log("loss", loss, step=step)
    for acc in (0.5, 0.75):
        run.log("accuracy", acc)  # no step: exported in logging order
    run.log_list("lr", [0.1, 0.01])
    run.log("comment", "warm-up done")
    child = run.child_run("fold-1")
    child.log("fold_score", 0.8)
    child.complete()
    run.complete()

    left_out = export_to_tensorboard(run, str(tmp_path / "tb"))
    assert left_out == {run.id: ["comment"]}
    folder = tmp_path / "tb" / run.id
    assert _tensor_series(folder, "loss") == [(0, 0.9), (10, 0.4), (20, 0.1)]
    assert _tensor_series(folder, "accuracy") == [(0, 0.5), (1, 0.75)]
    assert _tensor_series(folder, "lr") == [(0, 0.1), (1, 0.01)]
    assert _tensor_series(tmp_path / "tb" / child.id, "fold_score") == [(0, 0.8)]


def test_tensorboard_serves_runs_logs_and_stop_ends_it(ws: Workspace, tmp_path: Path, no_tensorboards: None) -> None:
    runs = []
    for value in (1.0, 2.0):
        run = Experiment(ws, "tb-local").start_logging(outputs=None)
        run.log("x", value)
        run.complete()
        export_to_tensorboard(run, str(run.run_dir / "logs"))  # a run's logs/ holding TensorBoard files
        runs.append(run)
    tb = Tensorboard(runs)
    url = tb.start()
    assert url.startswith("http://127.0.0.1:") and tb.start() == url
    tags = _get(url + "data/plugin/scalars/tags")
    for run, value in zip(runs, (1.0, 2.0), strict=True):
        assert _scalars(url, f"{run.id}/{run.id}", "x") == [(0, value)]
        assert "x" in tags[f"{run.id}/{run.id}"]
    tb.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "data/environment", timeout=5)
    tb.stop()  # twice is fine


@pytest.mark.slow  # one more TensorBoard start (~8 s idle) for a detail of the object's lifetime
def test_an_unnamed_tensorboard_keeps_serving_until_the_process_ends(ws: Workspace, no_tensorboards: None) -> None:
    import gc

    from nbml.tensorboard._server import _stop_all

    run = Experiment(ws, "tb-unnamed").start_logging(outputs=None)
    run.complete()
    url = Tensorboard([run]).start()  # as the SDK's samples write it, without keeping the object
    gc.collect()
    try:
        assert _get(url + "data/environment")
    finally:
        _stop_all()  # what the interpreter's exit does
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "data/environment", timeout=5)


def test_tensorboard_needs_runs() -> None:
    from nbml.errors import UserErrorException

    with pytest.raises(UserErrorException, match="at least one run"):
        Tensorboard([])
    with pytest.raises(UserErrorException, match="runs of this workspace"):
        Tensorboard(["not-a-run"])


@pytest.mark.ssh
def test_tensorboard_follows_a_running_ssh_runs_logs(ws: Workspace, sshd: SshServer, tmp_path: Path,
                                                      project, no_tensorboards: None) -> None:  # type: ignore[no-untyped-def]
    RemoteCompute.attach(ws, "ssh-box", **ssh_attach_args(sshd, tmp_path))
    folder = project(**{"train.py": SCRIPT})
    env = Environment("tb-env")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable  # the "remote" machine is this one: its Python has tensorboard
    go = tmp_path / "go-ahead"
    run = Experiment(ws, "tb-ssh").submit(ScriptRunConfig(str(folder), "train.py", arguments=[str(go)],
                                                          compute_target="ssh-box", environment=env))
    tb = Tensorboard([run])
    try:
        url = tb.start()
        name = f"{run.id}/train"
        # While the job runs on the SSH target, its logs reach TensorBoard through the run's mirrored logs/.
        five = _wait_for(lambda: len(_scalars(url, name, "loss")) == 5 and _scalars(url, name, "loss"),
                         "the running job's 5 scalars in TensorBoard")
        assert run.get_status() == "Running"
        assert five == [(0, 1.0), (1, 0.5), (2, 0.333333), (3, 0.25), (4, 0.2)]
        assert "loss" in _get(url + "data/plugin/scalars/tags")[name]
        go.write_text("go")
        run.wait_for_completion(timeout_seconds=180)
        assert _wait_for(lambda: len(_scalars(url, name, "loss")) == 6, "the last scalar after the run ended")
    finally:
        go.write_text("go")
        tb.stop()
