"""The run page at /nbml/runs/<run_id>: the RunDetails content for a browser tab.

Rendered with Jinja2 and autoescaping on, so every name, tag, metric and log line from the store is
HTML-escaped. The page reloads itself every few seconds until the run reaches a terminal state.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import quote

import jinja2
import tornado.web
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join

from nbml.server.files import UnsafePath
from nbml.server.manager import NbmlManager, RunMissing

#: How much of the end of each log file the page shows.
LOG_TAIL_BYTES = 64 * 1024
REFRESH_SECONDS = 5


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def series(value: Any) -> list[float] | None:
    """The numeric series of a metric logged more than once, else None."""
    if isinstance(value, list) and len(value) > 1:
        nums = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(nums) == len(value) and all(math.isfinite(v) for v in nums):
            return [float(v) for v in nums]
    return None


def sparkline(values: Sequence[float], width: int = 160, height: int = 32) -> str:
    """SVG polyline points for a small chart of `values` (numbers only, so nothing to escape)."""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = width / max(1, len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - (v - lo) / span * (height - 2) - 1:.1f}" for i, v in enumerate(values))


def metric_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: latest value, count, and a sparkline for numeric series; tables shown whole."""
    rows = []
    for name, value in metrics.items():
        row: dict[str, Any] = {"name": name, "points": None, "table": None}
        if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):  # a table, not a dict value
            row["table"] = {"columns": list(value), "rows": list(zip(*value.values(), strict=False))}
            row["latest"], row["count"] = "", max((len(v) for v in value.values()), default=0)
        elif isinstance(value, list):
            row["latest"] = _value(value[-1]) if value else ""
            row["count"] = len(value)
            numbers = series(value)
            row["points"] = sparkline(numbers) if numbers else None
        else:
            row["latest"], row["count"] = _value(value), 1
        rows.append(row)
    return rows


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nbml.server", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(when=_when, duration=_duration, value=_value)
    return env


def render_run_page(model: Mapping[str, Any], logs: Mapping[str, str], base_url: str) -> str:
    """HTML of the run page for the model built by nbml.server.models.run_details."""
    api = url_path_join(base_url, "nbml", "api", "runs", quote(model["run_id"], safe=""))
    return _environment().get_template("run.html").render(
        run=model,
        logs=logs,
        metrics=metric_rows(model["metrics"]),
        api=api,
        page_base=url_path_join(base_url, "nbml", "runs"),
        quote=lambda s: quote(str(s), safe="/"),
        refresh=None if model["is_terminal"] else REFRESH_SECONDS,
        tail_bytes=LOG_TAIL_BYTES,
    )


class RunPageHandler(JupyterHandler):
    """``GET /nbml/runs/<run_id>``; an unauthenticated browser is sent to the login page."""

    @property
    def manager(self) -> NbmlManager:
        return self.settings["nbml_manager"]  # type: ignore[no-any-return]

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        try:
            model = await self.manager.run(run_id)
            logs = {}
            for entry in model["log_files"]:
                offset = max(0, entry["size"] - LOG_TAIL_BYTES)
                try:
                    chunk = await self.manager.log_chunk(run_id, entry["path"], offset, LOG_TAIL_BYTES)
                except FileNotFoundError:  # removed since it was listed
                    continue
                logs[entry["path"]] = chunk["content"]
        except (RunMissing, UnsafePath) as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
        self.finish(render_run_page(model, logs, self.base_url))


def page_routes(base_url: str) -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    return [(url_path_join(base_url, "nbml", "runs", r"(?P<run_id>[^/]+)"), RunPageHandler)]
