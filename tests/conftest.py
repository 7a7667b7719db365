"""Fixtures shared by every test folder: an isolated workspace and a project folder to submit from."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nbml import Workspace


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A fresh embedded-default workspace (NBML_HOME points at it, as a user's would)."""
    root = tmp_path / "nbml-home"
    monkeypatch.setenv("NBML_HOME", str(root))
    monkeypatch.delenv("NBML_WORKSPACE", raising=False)
    workspace = Workspace.from_config(tmp_path)
    yield workspace
    # Stop whatever a test left running, and wait for those supervisors to exit, so none outlives its test.
    import psutil

    from nbml.runs.status import ACTIVE

    supervisors = []
    for rec in workspace.store.list_runs(status=list(ACTIVE), limit=10_000):
        workspace.store.request_cancel(rec["run_id"])
        pid = int(rec.get("supervisor_pid") or 0)
        if pid <= 0:
            continue
        try:
            proc = psutil.Process(pid)
            if "nbml.supervisor" in " ".join(proc.cmdline()):
                supervisors.append(proc)
        except psutil.Error:
            continue
    psutil.wait_procs(supervisors, timeout=30)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write files into a project folder (the source directory) and chdir there: project(**{"a.py": src})."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)

    def write(**files: str) -> Path:
        for name, text in files.items():
            path = folder / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return folder

    return write


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("NBML_HEARTBEAT_SECONDS", "1")
    if os.environ.get("NBML_TEST_LEAK_CHECK", "1") != "0" and not hasattr(config, "workerinput"):
        from leakcheck import LeakCheck

        config.stash[_LEAKS] = LeakCheck()  # before any test: every process it starts carries the mark


_LEAKS = pytest.StashKey["object"]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session if a process it started outlives it (then stop those processes)."""
    check = session.config.stash.get(_LEAKS, None)
    if check is None or session.config.option.collectonly:
        return
    leaked = check.leaked()  # type: ignore[attr-defined]
    if not leaked:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(leaked)} process(es) started by the tests outlived the session (now stopped):",
             *(f"  pid {pid}: {cmd}" for pid, cmd in leaked)]
    if reporter is not None:
        reporter.write_sep("=", "processes left running", red=True)
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line)
    check.clean_up([pid for pid, _ in leaked])  # type: ignore[attr-defined]
    if session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
