"""Bad input is refused at submit with an error that names the problem and the fix, leaving no run behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from nbml import Environment, Experiment, ScriptRunConfig, UserErrorException
from nbml.errors import EnvironmentBuildError, WorkspaceError


def _no_runs(ws) -> bool:
    return ws.store.list_runs(limit=10) == [] and not any((ws.path / "runs").iterdir())


def test_missing_script_names_the_close_match(ws, project):
    project(**{"train.py": "print(1)\n"})
    with pytest.raises(UserErrorException, match=r"'trian.py' not found.*Did you mean 'train.py'"):
        Experiment(ws, "e").submit(ScriptRunConfig(".", "trian.py"))
    assert _no_runs(ws)


def test_missing_source_directory(ws, project):
    project()
    with pytest.raises(UserErrorException, match="source_directory .* doesn't exist"):
        Experiment(ws, "e").submit(ScriptRunConfig("nowhere", "train.py"))
    assert _no_runs(ws)


def test_syntax_error_is_reported_with_line(ws, project):
    project(**{"train.py": "x = 1\nif x == 1\n    print(x)\n"})
    with pytest.raises(UserErrorException, match="syntax error at line 2"):
        Experiment(ws, "e").submit(ScriptRunConfig(".", "train.py"))
    assert _no_runs(ws)


def test_unknown_environment_package_fails_the_submit(ws, project):
    project(**{"train.py": "print(1)\n"})
    env = Environment("broken")
    env.pip_requirements = ["nbml-surely-no-such-package-4711"]
    with pytest.raises(EnvironmentBuildError, match="nbml-surely-no-such-package-4711") as info:
        Experiment(ws, "e").submit(ScriptRunConfig(".", "train.py", environment=env))
    assert "Fix the package name" in str(info.value)
    assert _no_runs(ws)
    assert not [p for p in (ws.path / "envs").iterdir() if p.is_dir()]  # no half-built env is kept


def test_unknown_compute_target(ws, project):
    project(**{"train.py": "print(1)\n"})
    from nbml import ComputeTargetException

    with pytest.raises(ComputeTargetException, match="No compute target named 'gpu-cluster'"):
        Experiment(ws, "e").submit(ScriptRunConfig(".", "train.py", compute_target="gpu-cluster"))
    assert _no_runs(ws)


def test_bad_experiment_name(ws):
    with pytest.raises(UserErrorException, match="Experiment name"):
        Experiment(ws, "my experiment!")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_unwritable_workspace_folder_is_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    code = textwrap.dedent(f"""
        import os, sys
        from nbml.workspace import Workspace  # imported first: nobody can't read root's Python install
        os.setgid(65534); os.setuid(65534)  # nobody: a user who can't write into root's folder
        try:
            Workspace(path={str(locked / 'ws')!r})
        except Exception as exc:
            print(type(exc).__name__, exc)
    """)
    tmp_path.chmod(0o755)
    env = dict(os.environ, HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd="/", check=False)
    assert "WorkspaceError" in out.stdout, out.stdout + out.stderr
    assert "isn't writable" in out.stdout and "NBML_HOME" in out.stdout
    assert not (locked / "ws").exists()


def test_workspace_path_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WorkspaceError, match="isn't writable"):
        from nbml import Workspace

        Workspace(path=blocker / "ws")
