"""Static files of the nbml pages, every one behind Jupyter auth like the rest of /nbml/.

- ``/nbml/static/plotly-widgetbundle.js``: plotly's widget bundle for RunDetails charts, fetched once per page
  (RunDetails' figures sync a small loader instead of the 5 MB bundle, see ``nbml.widgets._plotly``);
- ``/nbml/static/plotly.min.js``: plotly.js as bundled in the plotly Python package (the pages work offline);
- ``/nbml/static/pages/<name>``: the run and experiment pages' own scripts and style (``nbml/server/assets``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import tornado.web
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join

ASSETS = Path(__file__).parent / "assets"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@cache
def _plotly_file(name: str) -> bytes:
    import plotly

    return (Path(plotly.__file__).parent / "package_data" / name).read_bytes()


def _bundle() -> bytes:
    return _plotly_file("widgetbundle.js")


class PlotlyBundleHandler(JupyterHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "private, max-age=86400")
        self.finish(_bundle())


class PlotlyHandler(JupyterHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "private, max-age=86400")
        self.finish(_plotly_file("plotly.min.js"))


@cache
def _asset(name: str) -> bytes | None:
    path = ASSETS / name
    return path.read_bytes() if path.suffix in _TYPES and path.parent == ASSETS and path.is_file() else None


class AssetHandler(JupyterHandler):
    @tornado.web.authenticated
    def get(self, name: str) -> None:
        data = _asset(name)
        if data is None:
            raise tornado.web.HTTPError(404, f"No page asset {name!r}.")
        self.set_header("Content-Type", _TYPES[Path(name).suffix])
        self.set_header("Cache-Control", "private, no-cache")
        self.finish(data)


def static_routes(base_url: str) -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    static = url_path_join(base_url, "nbml", "static")
    return [
        (url_path_join(static, "plotly-widgetbundle.js"), PlotlyBundleHandler),
        (url_path_join(static, "plotly.min.js"), PlotlyHandler),
        (url_path_join(static, "pages", r"(?P<name>[A-Za-z0-9_.-]+)"), AssetHandler),
    ]
