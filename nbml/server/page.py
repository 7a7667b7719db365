"""The run page at /nbml/runs/<run_id>: the RunDetails content for a browser tab.

Rendered with Jinja2 and autoescaping on, so every name, tag, metric and log line from the store is
HTML-escaped; data for the page's script travels as JSON in a non-executable block (Jinja's ``tojson``
escapes ``<``, ``>`` and ``&`` in it), and the scripts (``nbml/server/assets``) only ever set text, never
markup. While the run is active the script polls the API: new points extend the charts, and a change of
status, children or files reloads the page.
"""

from __future__ import annotations

import asyncio
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

from nbml.runs.status import TERMINAL
from nbml.server.files import UnsafePath
from nbml.server.manager import NbmlManager, RunMissing

#: How much of the end of each log file the page shows.
LOG_TAIL_BYTES = 64 * 1024
REFRESH_SECONDS = 3


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
    """One row per metric: latest value and count; `series` for numeric series (charted by the page's script),
    `table` for rows/tables (shown as tables), `image` for log_image's file (shown as an image)."""
    rows = []
    for name, value in metrics.items():
        row: dict[str, Any] = {"name": name, "series": False, "table": None, "image": None}
        if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
            columns = list(value)
            height = max(len(v) for v in value.values())
            row["table"] = {"columns": columns,
                            "rows": [[value[c][i] if i < len(value[c]) else "" for c in columns] for i in range(height)]}
            row["latest"], row["count"] = "", height
        elif isinstance(value, list):
            row["latest"] = _value(value[-1]) if value else ""
            row["count"] = len(value)
            row["series"] = series(value) is not None
        else:
            row["latest"], row["count"] = _value(value), 1
        rows.append(row)
    return rows


def image_metrics(metrics: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The images logged with log_image: metric rows of kind "image", whose value is the file in the run folder."""
    latest: dict[str, str] = {}
    for r in rows:
        if r["kind"] == "image" and isinstance(r["value"], str):
            latest[r["name"]] = r["value"]
    return [{"name": name, "path": path} for name, path in latest.items() if name in metrics]


def file_tree(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Paths (a/b/c.txt) as nested folders: [{"name", "path", "size"} | {"name", "folder": [...]}], folders first."""
    root: dict[str, Any] = {}
    for e in entries:
        node = root
        parts = str(e["path"]).split("/")
        for part in parts[:-1]:
            node = node.setdefault(part + "/", {})
        node[parts[-1]] = e

    def build(node: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
        folders = [{"name": k[:-1], "path": prefix + k[:-1], "folder": build(v, prefix + k)}
                   for k, v in sorted(node.items()) if k.endswith("/")]
        leaves = [{"name": k, "path": v["path"], "size": v["size"]} for k, v in sorted(node.items())
                  if not k.endswith("/")]
        return folders + leaves

    return build(root, "")


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def automl_log(model: Mapping[str, Any], child_rows: Sequence[Mapping[str, Any]]) -> str:
    """An AutoML parent's progress as ``wait_for_completion(show_output=True)`` prints it: one row per finished
    iteration with its pipeline, duration, score and the best score so far."""
    from nbml.automl.metrics import is_better
    from nbml.automl.run import HEADER, _fmt

    metric = str(model["config"].get("settings", {}).get("primary_metric") or model["properties"].get(
        "primary_metric") or "")
    lines = [f"Parent Run ID: {model['run_id']}", HEADER]
    best: float | None = None
    finished = [c for c in child_rows if c["status"] in TERMINAL and c.get("iteration") is not None]
    for c in sorted(finished, key=lambda c: c.get("ended_at") or 0):
        pm = c.get("primary_metric") or {}
        score = pm.get("value") if pm.get("name") == metric and isinstance(pm.get("value"), (int, float)) else None
        if c["status"] == "Completed" and score is not None and is_better(score, best, metric):
            best = score
        shown = _fmt(score) if c["status"] == "Completed" else c["status"]
        name = (c.get("display_name") or "")[:45]
        lines.append(f" {c['iteration']:>9}   {name:<45}  {_duration(c.get('duration_seconds')):>9}  "
                     f"{shown:>10}  {_fmt(best):>8}")
        if c["status"] == "Failed" and c.get("error"):
            last = [ln for ln in str(c["error"]).splitlines() if ln.strip()]
            lines.append(f"{'':>13}ERROR: {last[-1][:200] if last else ''}")
    if not finished:
        lines.append("   (no iteration has finished yet)")
    return "\n".join(lines) + "\n"


#: Properties the SDK sets for its own bookkeeping (and any ``nbml.*``); shown folded away, not with the user's.
SYSTEM_PROPERTIES = ("runTemplate", "automl_spec")


def _system(key: str) -> bool:
    return key in SYSTEM_PROPERTIES or key.startswith("nbml.")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nbml.server", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(when=_when, duration=_duration, value=_value, size=_size)
    return env


def _links(base_url: str) -> dict[str, Any]:
    return {
        "page_base": url_path_join(base_url, "nbml", "runs"),
        "exp_base": url_path_join(base_url, "nbml", "experiments"),
        "static": url_path_join(base_url, "nbml", "static"),
        "api_base": url_path_join(base_url, "nbml", "api"),
        "quote": lambda s: quote(str(s), safe=""),
    }


def render_run_page(model: Mapping[str, Any], logs: Mapping[str, str], base_url: str,
                    extra: Mapping[str, Any] | None = None) -> str:
    """HTML of the run page for the model built by nbml.server.models.run_details.

    `extra`: ``metric_rows`` (the store's rows, for log_image's files), ``automl_log`` (an AutoML parent's
    progress table) and ``best_child`` (a HyperDrive parent's best run), each optional."""
    extra = extra or {}
    api = url_path_join(base_url, "nbml", "api", "runs", quote(model["run_id"], safe=""))
    metrics = metric_rows(model["metrics"])
    images = image_metrics(model["metrics"], extra.get("metric_rows", []))
    image_names = {i["name"] for i in images}
    files = [{"path": f"outputs/{f['path']}", "size": f["size"]} for f in model["output_files"]] + list(
        model["log_files"])
    config = model.get("config") or {}
    data = {
        "run_id": model["run_id"], "kind": model["kind"], "experiment": model["experiment"],
        "is_terminal": model["is_terminal"], "status": model["status"],
        "series": [m["name"] for m in metrics if m["series"]],
        "children": [c["run_id"] for c in model["children"]],
        "child_names": {c["run_id"]: c.get("display_name") or c["run_id"] for c in model["children"]},
        "primary_metric": config.get("primary_metric_name") or config.get("primary_metric")
        or (config.get("settings") or {}).get("primary_metric"),
        "goal": config.get("primary_metric_goal"),
        "automl_iteration": model["kind"] == "automl_iteration",
        "signature": page_signature(model),
        "refresh_seconds": REFRESH_SECONDS,
    }
    return _environment().get_template("run.html").render(
        run=model,
        logs=logs,
        metrics=[m for m in metrics if m["name"] not in image_names],
        images=images,
        tree=file_tree(files),
        api=api,
        data=data,
        user_properties={k: v for k, v in model["properties"].items() if not _system(k)},
        system_properties={k: v for k, v in model["properties"].items() if _system(k)},
        automl_log=extra.get("automl_log"),
        best_child=extra.get("best_child"),
        tail_bytes=LOG_TAIL_BYTES,
        **_links(base_url),
    )


def page_signature(model: Mapping[str, Any]) -> str:
    """What, when it changes, makes a live run page reload (status, children and their states, files, metrics
    that appear); new points of a charted series are added in place instead."""
    parts = [model["status"], str(len(model["metrics"])), str(len(model["output_files"])),
             str(len(model["log_files"]))]
    parts += [f"{c['run_id']}={c['status']}" for c in model["children"]]
    return "|".join(parts)


def render_experiment_page(name: str, parent: str | None, base_url: str) -> str:
    data = {"experiment": name, "parent": parent, "refresh_seconds": REFRESH_SECONDS}
    return _environment().get_template("experiment.html").render(name=name, parent=parent, data=data,
                                                                 **_links(base_url))


CSP = ("default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:")


class _PageHandler(JupyterHandler):
    @property
    def manager(self) -> NbmlManager:
        return self.settings["nbml_manager"]  # type: ignore[no-any-return]

    def send_page(self, html: str) -> None:
        # plotly.js compiles its WebGL shaders with new Function (parallel coordinates): 'unsafe-eval', still
        # only for scripts of this server; no inline script runs.
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(html)


class RunPageHandler(_PageHandler):
    """``GET /nbml/runs/<run_id>``; an unauthenticated browser is sent to the login page."""

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
            extra = await self.manager.page_extras(model)
        except (RunMissing, UnsafePath) as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        # in a worker thread: the first call imports the AutoML run machinery (seconds)
        extra["automl_log"] = (await asyncio.to_thread(automl_log, model, model["children"])
                               if model["kind"] == "automl" else None)
        self.send_page(render_run_page(model, logs, self.base_url, extra))


class ExperimentPageHandler(_PageHandler):
    """``GET /nbml/experiments/<name>[?parent=<run id>]``: the experiment's runs (or a parent's children)."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        parent = self.get_argument("parent", None) or None
        try:
            await self.manager.experiment_runs(name, parent_id=parent, children=False, since="", limit=0)
        except RunMissing as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        self.send_page(render_experiment_page(name, parent, self.base_url))


def page_routes(base_url: str) -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    return [
        (url_path_join(base_url, "nbml", "runs", r"(?P<run_id>[^/]+)"), RunPageHandler),
        (url_path_join(base_url, "nbml", "experiments", r"(?P<name>[^/]+)"), ExperimentPageHandler),
    ]
