"""What RunDetails shows, computed from store rows: pure functions and small state holders, no widgets.

The live widget feeds these from incremental store reads (new metric rows, changed children) and
asks them what changed, so that only the affected parts of the view are redrawn.
"""

from __future__ import annotations

import dataclasses
import functools
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

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("iteration", "Iteration"),
    ("pipeline", "Pipeline"),
    ("metric", "Iteration metric"),
    ("best", "Best metric"),
    ("status", "Status"),
    ("duration", "Duration"),
    ("started", "Started"),
    ("run_id", "Run Id"),
)


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


def properties_rows(run: Mapping[str, Any], metrics: MetricsState) -> list[tuple[str, str]]:
    """The properties table: status, start time, duration, arguments, then each non-list metric."""
    rows = [
        ("Status", str(run.get("status") or "")),
        ("Start time", format_time(run.get("started_at"))),
        ("Duration", format_duration(run_duration(run))),
        ("Arguments", run_arguments(run)),
    ]
    if run.get("error"):
        rows.append(("Error", str(run["error"])))
    for name, value in sorted(metrics.scalars().items()):
        rows.append((name, format_value(value)))
    for name, values in sorted(metrics.series().items()):
        rows.append((name, f"{len(values)} values, last {format_value(values[-1])}"))
    return rows


def table_html(rows: Iterable[tuple[str, str]], css_class: str = "nbml-props") -> str:
    """Name/value pairs in compact columns that wrap with the width of the output area."""
    cells = "".join(
        "<div style='display:flex;gap:1em;justify-content:space-between;padding:1px 0;"
        "border-bottom:1px solid var(--jp-border-color2,#e0e0e0)'>"
        f"<b>{esc(k)}</b><span style='text-align:right;overflow-wrap:anywhere'>{esc(v)}</span></div>"
        for k, v in rows)
    return (f'<div class="{esc(css_class)}" style="display:grid;grid-template-columns:repeat(auto-fill,'
            f'minmax(22em,1fr));column-gap:2em;font-size:92%;margin:4px 0">{cells}</div>')


def files_html(files: Sequence[tuple[str, int]], empty: str = "No outputs yet.") -> str:
    if not files:
        return f"<i>{esc(empty)}</i>"
    items = "".join(f"<li><code>{esc(p)}</code> ({size:,} bytes)</li>" for p, size in files)
    return f'<ul class="nbml-outputs">{items}</ul>'


def log_html(text: str, truncated: bool) -> str:
    note = "<i>(earlier lines not shown)</i>\n" if truncated else ""
    return (f'<pre class="nbml-log" style="max-height:24em;overflow:auto;white-space:pre-wrap;'
            f'font-size:90%">{note}{esc(text)}</pre>')


@dataclasses.dataclass
class IterationRow:
    """One child run as the parent's table shows it."""

    run_id: str
    iteration: int | None
    pipeline: str
    status: str
    metric: float | None = None
    best: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration: float | None = None

    def cells(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration, "pipeline": self.pipeline,
            "metric": None if self.metric is None else round(self.metric, 6),
            "best": None if self.best is None else round(self.best, 6),
            "status": self.status, "duration": format_duration(self.duration),
            "started": format_time(self.started_at), "run_id": self.run_id,
            "_colour": status_colour(self.status),
        }


def pipeline_name(props: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    pre = props.get("run_preprocessor") or ""
    algo = props.get("run_algorithm") or ""
    name = " ".join(str(p) for p in (pre, algo) if p)
    return name or str(run.get("display_name") or "")


class ChildrenState:
    """The iterations of a parent run (AutoML, HyperDrive), updated from changed child records."""

    def __init__(self, primary_metric: str | None = None, goal: str | None = None) -> None:
        self.primary_metric = primary_metric
        self.goal = goal_for(primary_metric, goal)
        self.rows: dict[str, IterationRow] = {}
        self.metrics: dict[str, dict[str, Any]] = {}
        self.explained_by: dict[str, str] = {}  # iteration run id -> the run that explained its model
        self._order: list[str] = []
        self._ordered: list[IterationRow] | None = None
        self._metric_names: set[str] = set()

    def set_primary_metric(self, metric: str | None, goal: str | None = None) -> bool:
        if metric == self.primary_metric and goal_for(metric, goal) == self.goal:
            return False
        self.primary_metric, self.goal = metric, goal_for(metric, goal)
        for rid, row in self.rows.items():
            row.metric = self._score(self.metrics.get(rid, {}))
        self._recompute_best()
        return True

    def apply(self, runs: Sequence[Mapping[str, Any]], props: Mapping[str, Mapping[str, Any]],
              metrics: Mapping[str, Mapping[str, Any]]) -> set[str]:
        """Merge changed children (records, their properties and metrics); returns the changed run ids."""
        changed: set[str] = set()
        for run in runs:
            rid = str(run["run_id"])
            if rid in metrics:
                self.metrics[rid] = dict(metrics[rid])
                self._metric_names.update(n for n, v in metrics[rid].items() if is_number(v))
            p = props.get(rid, {})
            if p.get("explained_run_id"):
                self.explained_by[str(p["explained_run_id"])] = rid
            if p.get("model_explanation_run_id"):
                self.explained_by[rid] = str(p["model_explanation_run_id"])
            row = IterationRow(
                run_id=rid, iteration=run.get("iteration"), pipeline=pipeline_name(p, run),
                status=str(run.get("status")), metric=self._score(self.metrics.get(rid, {})),
                started_at=run.get("started_at"), ended_at=run.get("ended_at"), duration=run_duration(run),
            )
            old = self.rows.get(rid)
            if old is None:
                self._order.append(rid)
            if old != row:
                if old is not None and not row.pipeline:
                    row.pipeline = old.pipeline
                self.rows[rid] = row
                self._ordered = None
                changed.add(rid)
        if changed:
            changed |= self._recompute_best()
        return changed

    def tick(self, now: float | None = None) -> set[str]:
        """Advance the durations of running iterations."""
        changed = set()
        for rid, row in self.rows.items():
            if row.status not in TERMINAL and row.started_at:
                row.duration = (now or time.time()) - row.started_at
                changed.add(rid)
        return changed

    def _score(self, metrics: Mapping[str, Any]) -> float | None:
        if not self.primary_metric:
            return None
        value = metrics.get(self.primary_metric)
        if isinstance(value, list):
            value = value[-1] if value else None
        return float(value) if value is not None and is_number(value) else None

    def ordered(self) -> list[IterationRow]:
        """Rows by iteration number (then creation order); cached until the set of rows changes."""
        if self._ordered is None or len(self._ordered) != len(self.rows):
            rows = [self.rows[r] for r in self._order]
            self._ordered = sorted(rows, key=lambda r: (r.iteration is None,
                                                        r.iteration if r.iteration is not None else 0))
        return self._ordered

    def iterations(self) -> list[IterationRow]:
        """The rows that are iterations of the search (children with an iteration number)."""
        return [r for r in self.ordered() if r.iteration is not None]

    def _recompute_best(self) -> set[str]:
        changed, best = set(), None
        better = (lambda a, b: a > b) if self.goal == "maximize" else (lambda a, b: a < b)
        for row in self.ordered():
            if row.metric is not None and row.status == COMPLETED and (best is None or better(row.metric, best)):
                best = row.metric
            if row.best != best:
                row.best = best
                changed.add(row.run_id)
        return changed

    def best_run(self) -> IterationRow | None:
        done = [r for r in self.ordered() if r.metric is not None and r.status == COMPLETED]
        if not done:
            return None
        return (max if self.goal == "maximize" else min)(done, key=lambda r: r.metric or 0.0)

    def metric_names(self) -> list[str]:
        """Numeric metrics logged by any iteration, the primary metric first."""
        ordered = sorted(self._metric_names)
        if self.primary_metric in self._metric_names:
            ordered.remove(self.primary_metric)
            ordered.insert(0, self.primary_metric)
        return ordered

    def metric_series(self, name: str) -> tuple[list[int], list[float], list[float]]:
        """(iterations, values, best so far) of one metric over the completed iterations."""
        goal = self.goal if name == self.primary_metric else goal_for(name)
        xs, ys, best_ys, best = [], [], [], None
        for row in self.ordered():
            value = self.metrics.get(row.run_id, {}).get(name)
            if row.iteration is None or row.status != COMPLETED or value is None or not is_number(value):
                continue  # runs without an iteration number (an explanation run) aren't points of the search
            v = float(value)
            best = v if best is None else (max(best, v) if goal == "maximize" else min(best, v))
            xs.append(row.iteration)
            ys.append(v)
            best_ys.append(best)
        return xs, ys, best_ys

    def status_cells(self) -> list[list[Any]]:
        """One cell per iteration for the status bar: [iteration, status, colour, title]."""
        rows = self.iterations()
        scores = [r.metric for r in rows if r.metric is not None and r.status == COMPLETED]
        lo, hi = (min(scores), max(scores)) if scores else (0.0, 0.0)
        cells = []
        for row in rows:
            colour = status_colour(row.status)
            title = f"Iteration {row.iteration}: {row.status}"
            if row.status == COMPLETED and row.metric is not None:
                frac = 1.0 if hi == lo else (row.metric - lo) / (hi - lo)
                if self.goal == "minimize":
                    frac = 1.0 - frac
                colour = _green(frac)
                title += f", {self.primary_metric} {row.metric:.4g}"
            cells.append([row.iteration, row.status, colour, title])
        return cells


def _green(frac: float) -> str:
    """Light green for the worst score to deep green for the best (in 50 shades)."""
    return _shade(round(min(max(frac, 0.0), 1.0) * 50))


@functools.lru_cache(maxsize=64)
def _shade(level: int) -> str:
    frac = level / 50
    light, dark = (200, 230, 201), (27, 94, 32)
    rgb = [round(a + (b - a) * frac) for a, b in zip(light, dark, strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def sort_and_page(rows: Sequence[IterationRow], sort_by: str, descending: bool, page: int,
                  page_size: int) -> tuple[list[dict[str, Any]], int]:
    """The visible page of the iterations table; empty values sort last either way. Returns (cells, pages)."""
    key_map = {"metric": "metric", "best": "best", "iteration": "iteration", "pipeline": "pipeline",
               "status": "status", "duration": "duration", "started": "started_at", "run_id": "run_id"}
    attr = key_map.get(sort_by, "iteration")
    present = [r for r in rows if getattr(r, attr) is not None]
    missing = [r for r in rows if getattr(r, attr) is None]
    present.sort(key=lambda r: getattr(r, attr), reverse=descending)
    ordered = present + missing
    pages = max(1, math.ceil(len(ordered) / page_size))
    page = min(max(page, 0), pages - 1)
    return [r.cells() for r in ordered[page * page_size:(page + 1) * page_size]], pages


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


def is_failed(status: str | None) -> bool:
    return status in (FAILED, CANCELED)
