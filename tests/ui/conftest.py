"""Browser-test fixtures: a real JupyterLab server and a headless Chromium page logged into it.

Reusable by any UI test (sidebar, widgets):

- ``lab_server``: JupyterLab on a free loopback port with a token, its root folder holding an nbml
  workspace (``.nbml/``) that notebooks' ``Workspace.from_config()`` and the server extension both find.
  ``lab_server.write_file`` / ``write_notebook`` put files there; ``lab_server.api`` calls its REST API.
- ``browser``: Debian's Chromium driven by the Python playwright package (never a downloaded browser).
- ``lab_page``: a page with JupyterLab loaded and the app object at ``window.jupyterapp``;
  ``lab_command(page, id, args)`` runs a JupyterLab command in it.
- ``shoot(page, label)``: a screenshot in ``test-output/ui/<test name>-<label>.png`` (the folder is
  ``$NBML_UI_SCREENSHOTS`` when set); the server logs go there too, so a CI run keeps them as files.
- ``LAPTOP``: the window size of a common laptop (1366 x 768) the page and sidebar tests draw at.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("NBML_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
OUTPUT = Path(os.environ.get("NBML_UI_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "test-output" / "ui")
LAPTOP = {"width": 1366, "height": 768}
START_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    url: str  # ends with "/"
    token: str
    root: Path
    workspace: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """Call the server's REST API with the token; returns the parsed JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path.lstrip("/"), data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def write_file(self, name: str, content: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return path

    def write_notebook(self, name: str, cells: list[str]) -> Path:
        """A notebook of code cells (not run)."""
        nb = {
            "cells": [
                {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                 "source": source}
                for source in cells
            ],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        return self.write_file(name, json.dumps(nb, indent=1))

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _wait_ready(server: LabServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            server.api("api/status")
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer within {START_TIMEOUT:.0f} s:\n{server.log_tail()}")


def _cancel_active_runs(ws: Any) -> None:
    """Leave no run of a test going after it (a failed test may stop before it waits for its runs)."""
    from nbml.runs.status import ACTIVE

    for rec in ws.store.list_runs(status=list(ACTIVE), limit=10_000):
        ws.store.request_cancel(rec["run_id"])


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A JupyterLab server (one per test module) on a free loopback port, with an nbml workspace."""
    from nbml import Workspace

    root = tmp_path_factory.mktemp("lab")
    home = tmp_path_factory.mktemp("home")
    ws = Workspace.create("ui-tests", path=root)
    port, token = _free_port(), secrets.token_hex(16)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log_path = root.parent / f"jupyterlab-{port}.log"
    env = {
        **os.environ,
        "NBML_HOME": str(home / ".nbml"),  # never the user's default workspace
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),  # no user config leaks in
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
    }
    env.pop("NBML_WORKSPACE", None)
    # No "get notified about Jupyter news?" toast over the screenshots.
    notification = home / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    built = Path(__file__).resolve().parents[2] / "nbml" / "labextension"
    if (built / "package.json").exists():
        # Serve this checkout's build of the sidebar (ahead of any copy installed in the environment).
        data = home / "jupyter-data"
        (data / "labextensions").mkdir(parents=True)
        (data / "labextensions" / "nbml-labextension").symlink_to(built)
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(data), os.environ.get("JUPYTER_PATH")) if p)
    argv = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.jpserver_extensions=nbml.server=True",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}/", token, root, ws.path, process, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        _cancel_active_runs(ws)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Keep the server log with the screenshots.
        (OUTPUT / log_path.name).write_bytes(log_path.read_bytes())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (playwright's own browser downloads are never used)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: install it with `apt-get install chromium` (see .ci/steps/40-browser.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def lab_context(browser: Any, lab_server: LabServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=lab_server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab_server.url.rstrip("/"))
    context.set_default_timeout(30_000)
    try:
        yield context
    finally:
        context.close()


def open_lab(page: Any, server: LabServer, path: str = "lab") -> None:
    """Load JupyterLab (`lab` or `lab/tree/<file>`) logged in with the token, and wait until it is ready."""
    page.goto(f"{server.url}{path}?token={server.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp.restored !== undefined")
    page.evaluate("() => window.jupyterapp.restored")
    page.wait_for_selector("#jp-main-dock-panel")


@pytest.fixture
def lab_page(lab_context: Any, lab_server: LabServer) -> Any:
    """A page with JupyterLab loaded."""
    page = lab_context.new_page()
    open_lab(page, lab_server)
    return page


def lab_command(page: Any, command: str, args: dict[str, Any] | None = None) -> Any:
    """Run a JupyterLab command (the same a menu item or shortcut runs) and return its result."""
    return page.evaluate("([c, a]) => window.jupyterapp.commands.execute(c, a)", [command, args or {}])


@pytest.fixture
def shoot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """``shoot(page, label, full_page=False)`` saves a screenshot of the window (or the whole page) in OUTPUT."""
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def _shoot(page: Any, label: str, full_page: bool = False) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{test}-{label}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return _shoot
