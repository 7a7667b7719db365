"""What RunDetails shows of one run, computed from store rows: pure functions and state holders, no widgets.

The live widget feeds these from incremental store reads (new metric rows, log bytes) and asks them
what changed, so that only the affected parts of the view are redrawn. Iterations of a parent run are
in _iterations.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nbml.runs.status import CANCELED, COMPLETED, FAILED, RUNNING, TERMINAL
from nbml.store.metrics import aggregate

STATUS_COLOURS: dict[str, str] = {
    COMPLETED: "#2e7d32",
    FAILED: "#c62828",
    CANCELED: "#757575",
    RUNNING: "#1565c0",
    "CancelRequested": "#ef6c00",
    "Finalizing": "#1565c0",
}
PENDING_COLOUR = "#f9a825"

# Metrics where lower is better; everything else is maximised (the SDK's convention for AutoML).
_MINIMISE_HINTS = ("error", "loss", "mse", "mae", "rmse", "mape", "deviance")

def esc(value: Any) -> str:
    """Text made safe to place inside HTML (a log line with ``<script>`` shows as text)."""
    return html.escape("" if value is None else str(value), quote=True)


def status_colour(status: str | None) -> str:
    return STATUS_COLOURS.get(status or "", PENDING_COLOUR)


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_time(ts: float | None) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def format_time_short(ts: float | None, now: float | None = None) -> str:
    """The time of day for a time today, else the date and minute: a table column stays narrow."""
    if not ts:
        return ""
    local, today = time.localtime(ts), time.localtime(now if now is not None else time.time())
    if local[:3] == today[:3]:
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%Y-%m-%d %H:%M", local)


def run_duration(run: Mapping[str, Any], now: float | None = None) -> float | None:
    start = run.get("started_at")
    if not start:
        return None
    end = run.get("ended_at") or (None if run.get("status") in TERMINAL else (now or time.time()))
    return None if end is None else float(end) - float(start)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
        return text if len(text) <= 200 else text[:197] + "..."
    return "" if value is None else str(value)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def goal_for(metric: str | None, explicit: str | None = None) -> str:
    """'maximize' or 'minimize' for a metric name (an explicit goal from the run wins)."""
    if explicit in ("maximize", "minimize"):
        return explicit
    name = (metric or "").lower()
    return "minimize" if any(h in name for h in _MINIMISE_HINTS) else "maximize"


def run_arguments(run: Mapping[str, Any]) -> str:
    try:
        config = json.loads(run.get("config_json") or "{}")
    except ValueError:
        return ""
    args = config.get("arguments") or config.get("script_args") or []
    script = config.get("script") or ""
    parts = [str(script), *(str(a) for a in args)] if script else [str(a) for a in args]
    return " ".join(p for p in parts if p)


def run_config(run: Mapping[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(run.get("config_json") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclasses.dataclass
class Header:
    run_id: str
    status: str
    colour: str
    compute_target: str
    duration: str
    link: str
    experiment: str
    kind: str

    @classmethod
    def from_run(cls, run: Mapping[str, Any], base_url: str = "/") -> Header:
        rid = str(run["run_id"])
        return cls(
            run_id=rid, status=str(run.get("status")), colour=status_colour(run.get("status")),
            compute_target=str(run.get("compute_target") or ""), duration=format_duration(run_duration(run)),
            link=base_url.rstrip("/") + "/nbml/runs/" + rid, experiment=str(run.get("experiment") or ""),
            kind=str(run.get("kind") or ""),
        )

    def html(self) -> str:
        return (
            '<div class="nbml-header" style="display:flex;gap:1.2em;align-items:baseline;flex-wrap:wrap">'
            f'<b>Run <span class="nbml-run-id">{esc(self.run_id)}</span></b>'
            f'<span class="nbml-status" style="color:#fff;background:{esc(self.colour)};padding:1px 8px;'
            f'border-radius:8px">{esc(self.status)}</span>'
            f"<span>Experiment: {esc(self.experiment)}</span>"
            f"<span>Compute target: {esc(self.compute_target)}</span>"
            f"<span>Duration: {esc(self.duration)}</span>"
            f'<a href="{esc(self.link)}" target="_blank" rel="noopener">Open run page</a></div>'
        )


class MetricsState:
    """A run's metrics folded from rows read incrementally (``Store.metric_rows(after_id=...)``)."""

    def __init__(self) -> None:
        self.after_id = 0
        self._rows: dict[str, list[tuple[str, str, Any]]] = {}
        self.values: dict[str, Any] = {}

    def apply(self, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        """Add new rows; returns the names whose value changed."""
        changed: set[str] = set()
        for r in rows:
            self.after_id = max(self.after_id, int(r["id"]))
            self._rows.setdefault(r["name"], []).append((r["name"], r["kind"], r["value"]))
            changed.add(r["name"])
        for name in changed:
            self.values[name] = aggregate(self._rows[name]).get(name)
        return changed

    def series(self) -> dict[str, list[float]]:
        """Metrics that are lists of numbers: each gets a chart."""
        return {n: v for n, v in self.values.items() if isinstance(v, list) and v and all(is_number(x) for x in v)}

    def scalars(self) -> dict[str, Any]:
        return {n: v for n, v in self.values.items() if not isinstance(v, list) or not v or not all(
            is_number(x) for x in v)}


def properties_rows(run: Mapping[str, Any], metrics: MetricsState,
                    properties: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """The properties table: status, start time, duration, arguments, the job's own facts (distributed
    layout, Spark application), then each non-list metric.

    Rows without a value are left out (a run not started yet has no start time; AutoML and HyperDrive
    parents have no script arguments).
    """
    rows = [
        ("Status", str(run.get("status") or "")),
        ("Start time", format_time(run.get("started_at"))),
        ("Duration", format_duration(run_duration(run))),
        ("Arguments", run_arguments(run)),
    ]
    distributed = _distributed_summary(run)
    if distributed:
        rows.append(("Distributed", distributed))
    props = properties or {}
    if props.get("spark_application_id"):
        rows.append(("Spark application", str(props["spark_application_id"])))
    if props.get("spark_ui_url"):
        rows.append(("Spark UI", str(props["spark_ui_url"])))
    if run.get("error"):
        rows.append(("Error", str(run["error"])))
    for name, value in sorted(metrics.scalars().items()):
        rows.append((name, format_value(value)))
    for name, values in sorted(metrics.series().items()):
        rows.append((name, f"{len(values)} values, last {format_value(values[-1])}"))
    return [(k, v) for k, v in rows if v != ""]


def _distributed_summary(run: Mapping[str, Any]) -> str:
    """"pytorch (gloo): 2 nodes x 2 processes" for a distributed run (each rank's log is in the log list)."""
    try:
        d = json.loads(run.get("config_json") or "{}").get("distributed")
    except (ValueError, AttributeError):
        return ""
    if not d:
        return ""
    comm = f" ({d['communication_backend']})" if d.get("communication_backend") else ""
    return (f"{d['backend']}{comm}: {d['node_count']} node{'s' if d['node_count'] != 1 else ''} × "
            f"{d['process_count_per_node']} process{'es' if d['process_count_per_node'] != 1 else ''}")


SHORT_VALUE = 24  # characters: a number, a date and time, a duration


def table_html(rows: Iterable[tuple[str, str]], css_class: str = "nbml-props") -> str:
    """Name/value pairs in compact columns that wrap with the width of the output area.

    A value never breaks inside itself (a number split over two lines reads as two numbers). A short value
    (a number, a time) is never cut either: a long name gives way to it, ending in an ellipsis; a long value
    (a pipeline, a path) ends in an ellipsis itself. Cut text has the whole of it in its tooltip.
    """
    def cell(k: str, v: str) -> str:
        short = len(v) <= SHORT_VALUE
        name_style = "white-space:nowrap" + (";overflow:hidden;text-overflow:ellipsis;min-width:0" if short else "")
        value_style = "text-align:right;white-space:nowrap;" + (
            "flex-shrink:0" if short else "overflow:hidden;text-overflow:ellipsis;min-width:0")
        return ("<div class='nbml-prop' style='display:flex;gap:1em;justify-content:space-between;padding:1px 0;"
                "border-bottom:1px solid var(--jp-border-color2,#e0e0e0);min-width:0'>"
                f"<b class='nbml-prop-name' title='{esc(k)}' style='{name_style}'>{esc(k)}</b>"
                f"<span class='nbml-prop-value' title='{esc(v)}' style='{value_style}'>{esc(v)}</span></div>")

    cells = "".join(cell(k, v) for k, v in rows if v != "")
    return (f'<div class="{esc(css_class)}" style="display:grid;grid-template-columns:repeat(auto-fill,'
            f'minmax(24em,1fr));column-gap:2em;font-size:92%;margin:4px 0">{cells}</div>')


def files_html(files: Sequence[tuple[str, int]], empty: str = "No outputs yet.") -> str:
    if not files:
        return f"<i>{esc(empty)}</i>"
    items = "".join(f"<li><code>{esc(p)}</code> ({size:,} bytes)</li>" for p, size in files)
    return f'<ul class="nbml-outputs">{items}</ul>'


def log_html(text: str, truncated: bool) -> str:
    note = "<i>(earlier lines not shown)</i>\n" if truncated else ""
    return (f'<pre class="nbml-log" style="max-height:24em;overflow:auto;white-space:pre-wrap;'
            f'font-size:90%">{note}{esc(text)}</pre>')


def feature_importance(data: Any) -> tuple[list[str], list[float]] | None:
    """Feature names and importances from an explanation record, most important first.

    Accepts AutoML's explanation.json (``overall_imp`` names with ``overall_summary`` values),
    ``{"feature_names": [...], "importance": [...]}``, or a mapping of feature name to importance.
    """
    if not isinstance(data, Mapping):
        return None
    names = data.get("overall_imp") or data.get("feature_names") or data.get("features")
    values = None
    for key in ("overall_summary", "importance", "importances", "global_importance_values", "overall_importance",
                "values"):
        if key in data:
            values = data[key]
            break
    if names is None or values is None:
        pairs = {k: v for k, v in data.items() if is_number(v)}
        if not pairs:
            return None
        names, values = list(pairs), list(pairs.values())
    if not isinstance(names, list) or not isinstance(values, list) or len(names) != len(values):
        return None
    if not all(is_number(v) for v in values):
        return None
    pairs_sorted = sorted(zip((str(n) for n in names), (float(v) for v in values), strict=True),
                          key=lambda p: abs(p[1]), reverse=True)
    return [p[0] for p in pairs_sorted], [p[1] for p in pairs_sorted]
