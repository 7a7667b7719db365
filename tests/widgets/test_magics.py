"""The magics in a real IPython shell, submitting real runs to the embedded workspace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from nbml.magics import format_table


@pytest.fixture
def ip(ws: Any) -> Any:
    start_ipython()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbml")
    shell.run_line_magic("reload_ext", "nbml")  # loading twice must not wrap %%writefile twice
    magics = shell.magics_manager.registry["NbmlMagics"]
    magics.last_written = None
    shell.history_manager.reset(new_session=True)
    magics.show_details = False
    return shell


def _run(ip: Any, cell: str) -> Any:
    result = ip.run_cell(cell)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


def test_ml_submit_with_no_script_submits_the_last_writefile_with_its_folder_as_source(ip: Any, ws: Any) -> None:
    os.makedirs("project")
    ip.user_ns["project_folder"] = "project"
    _run(ip, "%%writefile $project_folder/helper.py\nVALUE = 41\n")
    _run(ip, "%%writefile $project_folder/train.py\nimport sys\nfrom helper import VALUE\nfrom nbml import Run\n"
             "Run.get_context().log('value', VALUE + 1)\nprint('args', sys.argv[1:])\n")
    _run(ip, "run = %ml_submit --experiment magic-exp -- --alpha 0.5 'two words'")
    run = ip.user_ns["run"]
    run.wait_for_completion(raise_on_error=True)
    assert run.experiment.name == "magic-exp"
    assert run.get_metrics() == {"value": 42}
    log = (Path(run.run_dir) / "nbml-logs" / "driver_log.txt").read_text()
    assert "args ['--alpha', '0.5', 'two words']" in log


def test_a_writefile_run_before_load_ext_is_found_in_the_input_history(ip: Any, ws: Any) -> None:
    magics = ip.magics_manager.registry["NbmlMagics"]
    ip.user_ns["folder"] = "early"
    os.makedirs("early")
    ip.run_cell("%%writefile $folder/first.py\nprint('first')\n", store_history=True)
    magics.last_written = None  # as if %load_ext nbml came after the %%writefile
    ip.run_cell("x = 1", store_history=True)
    run = _run(ip, "%ml_submit")
    assert run.config["script"] == "first.py"
    run.wait_for_completion(raise_on_error=True)
    assert "first" in (Path(run.run_dir) / "nbml-logs" / "driver_log.txt").read_text()


def test_cell_magic_writes_the_cell_into_the_project_folder_and_submits_it(ip: Any, ws: Any) -> None:
    run = _run(ip, "%%ml_submit fit.py --source-directory proj2 -- 3\nimport sys\nprint('n =', sys.argv[1])\n")
    assert (Path("proj2") / "fit.py").read_text().startswith("import sys")
    run.wait_for_completion(raise_on_error=True)
    assert "n = 3" in (Path(run.run_dir) / "nbml-logs" / "driver_log.txt").read_text()


def test_ml_submit_warm_runs_consecutive_submits_in_one_shared_warm_worker(ip: Any, ws: Any) -> None:
    from nbml.runs.warm_shared import WORKER_PROPERTY, stop_workers

    runs = []
    try:
        for _ in range(2):
            run = _run(ip, "%%ml_submit w.py --warm --source-directory projw\nimport os\nprint('in', os.getppid())\n")
            run.wait_for_completion(raise_on_error=True)
            runs.append(run)
    finally:
        stop_workers(ws)
    assert all(r.config["warm_worker"] is True for r in runs)
    assert len({r.get_properties()[WORKER_PROPERTY] for r in runs}) == 1
    logs = [(Path(r.run_dir) / "nbml-logs" / "driver_log.txt").read_text() for r in runs]
    assert logs[0] == logs[1] and logs[0].startswith("in ")  # the same worker forked both


@pytest.mark.parametrize(("line", "fix"), [
    ("%ml_submit", "%%writefile train.py"),
    ("%ml_submit nowhere.py", "does not exist"),
    ("%ml_submit t.py --env missing.yml", "no such file"),
    ("%ml_submit t.py --env env.toml", "conda specification"),
    ("%ml_compute frob", "invalid choice"),
    ("%ml_compute detach nope", "No compute target named 'nope'"),
    ("%ml_compute detach local", "built in"),
    ("%ml_compute attach ssh box --address 127.0.0.1", "Usage: %ml_compute attach ssh NAME"),
    ("%ml_compute attach ssh box --address h --user u --key /no/such/key", "private key"),
    ("%ml_compute create cluster c --min-nodes 3 --max-nodes 2", "min-nodes <= max-nodes"),
    ("%ml_compute list extra", "takes no arguments"),
])
def test_user_mistakes_raise_usage_error_with_the_fix(ip: Any, line: str, fix: str) -> None:
    Path("t.py").write_text("print(1)\n")
    Path("env.toml").write_text("")
    with pytest.raises(UsageError) as info:
        _run(ip, line)
    assert fix in str(info.value)


def test_submit_to_an_unknown_compute_target_says_how_to_add_one(ip: Any) -> None:
    Path("t.py").write_text("print(1)\n")
    with pytest.raises(UsageError, match="Create or attach one first"):
        _run(ip, "%ml_submit t.py --compute gpu-box")


def test_compute_list_and_show_print_readable_tables(ip: Any, ws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ws.store.add_compute("box", "ssh", {"address": "10.0.0.5", "username": "me", "ssh_port": 2222})
    _run(ip, "%ml_compute list")
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["Name", "Kind", "State", "Details"]
    assert out[2].split()[:2] == ["local", "local"] and "me@10.0.0.5:2222" in out[3]
    _run(ip, "%ml_compute show local")
    assert "status.state" in capsys.readouterr().out
    _run(ip, "%ml_compute detach box")
    assert ws.store.get_compute("box") is None


def test_format_table_aligns_columns() -> None:
    text = format_table(["A", "Bee"], [["long value", 1], [None, "x"]])
    lines = text.splitlines()
    assert lines[0] == "A           Bee" and lines[1].startswith("----------  ---")
    assert lines[3].rstrip() == "            x"


def _has(name: str) -> bool:
    import nbml

    try:
        getattr(nbml, name)
    except (ImportError, AttributeError):
        return False
    return True


@pytest.mark.skipif(not _has("AmlCompute"), reason="the cluster target kind is not in this build")
def test_create_show_and_detach_a_cluster(ip: Any, ws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    target = _run(ip, "%ml_compute create cluster cpu-cluster --min-nodes 0 --max-nodes 2 --idle-seconds 60")
    try:
        assert target.name == "cpu-cluster"
        _run(ip, "%ml_compute list")
        out = capsys.readouterr().out
        assert "cpu-cluster" in out and "0-2 nodes" in out
    finally:
        _run(ip, "%ml_compute detach cpu-cluster")
    assert ws.store.get_compute("cpu-cluster") is None
