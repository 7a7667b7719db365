"""The jupyter_server extension: REST API under /nbml/api/ and run pages under /nbml/runs/.

Enabled on install by jupyter-config/server-config/nbml.json. The workspace it serves is, in order:
``c.NbmlServer.workspace`` (a folder), ``$NBML_WORKSPACE``, the workspace found from the server's root
folder, else the default workspace.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "nbml.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from nbml.server.app import load

    load(serverapp)
