"""``/nbml/static/plotly-widgetbundle.js``: plotly's widget bundle for RunDetails charts, fetched once per page.

RunDetails' figures sync a small loader instead of the 5 MB bundle (see ``nbml.widgets._plotly``), so a saved
notebook stays small; the loader imports the bundle from here. Authenticated like every nbml route.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import tornado.web
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join


@cache
def _bundle() -> bytes:
    import plotly

    return (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_bytes()


class PlotlyBundleHandler(JupyterHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "private, max-age=86400")
        self.finish(_bundle())


def static_routes(base_url: str) -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    return [(url_path_join(base_url, "nbml", "static", "plotly-widgetbundle.js"), PlotlyBundleHandler)]
