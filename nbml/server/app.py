"""Wires the manager and the routes into a running Jupyter server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from traitlets import Unicode
from traitlets.config import Configurable

from nbml.server.handlers import api_routes
from nbml.server.manager import NbmlManager
from nbml.server.page import page_routes
from nbml.server.static import static_routes
from nbml.workspace import Workspace


class NbmlServer(Configurable):
    """Settings of the nbml server extension (``c.NbmlServer.<name>`` in jupyter_server_config.py)."""

    workspace = Unicode(
        "",
        help="Folder of the workspace to show. Default: $NBML_WORKSPACE, else the workspace found "
        "from the server's root folder (as Workspace.from_config() does), else the default workspace.",
    ).tag(config=True)


def open_workspace(workspace: str, root_dir: str) -> Workspace:
    """The workspace to serve (see NbmlServer.workspace)."""
    folder = workspace or os.environ.get("NBML_WORKSPACE")
    if folder:
        return Workspace(path=Path(folder))
    return Workspace.from_config(path=root_dir)


def load(serverapp: Any) -> None:
    settings = NbmlServer(parent=serverapp)
    manager = NbmlManager(open_workspace(settings.workspace, serverapp.root_dir))
    web_app = serverapp.web_app
    web_app.settings["nbml_manager"] = manager
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", api_routes(base_url) + page_routes(base_url) + static_routes(base_url))
    serverapp.log.info("nbml: serving workspace %r (%s) at %snbml/api/", manager.name, manager.root, base_url)
