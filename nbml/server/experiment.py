"""The experiment page's data: every run of an experiment (or a parent's children) with its tags, parameters
and latest metrics, read in two SQL statements whatever the number of runs, plus a cheap change token.

- runs: one SELECT on ``runs`` (the ``runs_by_experiment`` / ``runs_by_parent`` indexes), the primary metric's
  name and the arguments taken out of ``config_json`` by SQLite's JSON functions (no Python JSON decode of an
  AutoML iteration's whole spec);
- everything else: one UNION ALL over ``metric_latest`` (the latest number of each metric, kept current by the
  store on every write), ``tags`` and the ``hyperparameters`` property (HyperDrive and AutoML children), each
  keyed by its primary key's run_id prefix.

The version token (counts and last ids of runs, status changes, metrics and tags in scope) lets a poller ask
"anything new since?" for the price of one small indexed query.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nbml.runs.status import ACTIVE, TERMINAL
from nbml.server.models import run_page_path

#: Most runs one answer holds (newest first); the page says when there are more.
MAX_RUNS = 5000

_PRIMARY = ("COALESCE(json_extract(config_json, '$.primary_metric'), json_extract(config_json, "
            "'$.primary_metric_name'), json_extract(config_json, '$.primary_metric_config.name'),"
            " json_extract(config_json, '$.settings.primary_metric'))")
_RUN_COLUMNS = (f"run_id, parent_id, kind, status, display_name, iteration, created_at, started_at, ended_at, "
                f"{_PRIMARY}, json_extract(config_json, '$.primary_metric_goal'), "
                f"json_extract(config_json, '$.arguments'), compute_target, error")


def scope_sql(experiment: str, parent_id: str | None, children: bool) -> tuple[str, list[Any]]:
    """WHERE clause (on ``runs``) of the runs the page shows, and its parameters."""
    if parent_id is not None:
        return "experiment = ? AND parent_id = ?", [experiment, parent_id]
    if children:
        return "experiment = ?", [experiment]
    return "experiment = ? AND parent_id IS NULL", [experiment]


def version_sql(where: str) -> str:
    """One row that changes whenever a run in scope is added, changes status, logs a metric or gets a tag."""
    scope = f"SELECT run_id FROM runs WHERE {where}"
    return (
        f"SELECT (SELECT COUNT(*) || ':' || TOTAL(COALESCE(ended_at, 0)) || ':' || TOTAL(cancel_requested)"
        f" FROM runs WHERE {where}),"
        f" (SELECT MAX(rowid) FROM status_history WHERE run_id IN ({scope})),"
        f" (SELECT MAX(last_id) || ':' || COUNT(*) FROM metric_latest WHERE run_id IN ({scope})),"
        f" (SELECT COUNT(*) || ':' || TOTAL(length(value)) FROM tags WHERE run_id IN ({scope}))"
    )


def runs_sql(where: str) -> str:
    return f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY created_at DESC, run_id DESC LIMIT ?"


def details_sql(where: str) -> str:
    """Metrics (latest number, count), tags and hyperparameters of the runs in scope, in one statement."""
    scope = f"SELECT run_id FROM runs WHERE {where} ORDER BY created_at DESC, run_id DESC LIMIT ?"
    return (
        f"SELECT 0, run_id, name, value_num, count FROM metric_latest WHERE run_id IN ({scope})"
        f" UNION ALL SELECT 1, run_id, key, value, NULL FROM tags WHERE run_id IN ({scope})"
        f" UNION ALL SELECT 2, run_id, key, value, NULL FROM properties"
        f" WHERE key = 'hyperparameters' AND run_id IN ({scope})"
    )


def _scalar(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else str(value)
    return json.dumps(value, sort_keys=True)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested hyperparameters as dotted names with scalar values (lists kept as their JSON text)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = _scalar(value)
    return out


def _number_or_text(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def arguments_params(arguments: Any) -> dict[str, Any]:
    """``--name value`` pairs of a script run's arguments (a JSON list, or one string) as parameters."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = arguments.split()
    if not isinstance(arguments, list):
        return {}
    args = [str(a) for a in arguments]
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            name = arg.lstrip("-")
            if "=" in name:
                name, value = name.split("=", 1)
                out[name] = _number_or_text(value)
            elif i + 1 < len(args) and (not args[i + 1].startswith("-") or _is_number(args[i + 1])):
                out[name] = _number_or_text(args[i + 1])
                i += 1
            else:
                out[name] = True
        i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _duration(started: float | None, ended: float | None, status: str, now: float) -> float | None:
    if started is None:
        return None
    end = ended if ended is not None else (now if status not in TERMINAL else started)
    return max(0.0, float(end) - float(started))


def _ordered(counts: Mapping[str, int]) -> list[str]:
    """Names most runs have first, then by name."""
    return sorted(counts, key=lambda n: (-counts[n], n))


def table_model(
    experiment: str,
    parent: Mapping[str, Any] | None,
    runs: Sequence[tuple[Any, ...]],
    details: Iterable[tuple[Any, ...]],
    version: str,
    now: float,
    limit: int,
) -> dict[str, Any]:
    """``GET /nbml/api/experiments/<name>/runs``: rows as (run columns) from `runs_sql`, `details_sql`'s rows."""
    shown = runs[:limit]
    by_id: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for (run_id, parent_id, kind, status, display_name, iteration, created, started, ended, primary, goal,
         arguments, target, error) in shown:
        row = {
            "run_id": run_id, "parent_id": parent_id, "kind": kind or "script", "status": status,
            "display_name": display_name, "iteration": iteration, "created_at": created, "started_at": started,
            "ended_at": ended, "duration_seconds": _duration(started, ended, status, now),
            "compute_target": target, "primary_metric": primary, "goal": goal,
            "error": (error or "").strip().splitlines()[-1][:300] if error else None,
            "tags": {}, "params": arguments_params(arguments) if arguments else {}, "metrics": {},
            "series": [], "page": run_page_path(run_id),
        }
        by_id[run_id] = row
        out.append(row)
    metric_counts: dict[str, int] = {}
    tag_counts: dict[str, int] = {}
    param_counts: dict[str, int] = {}
    for source, run_id, name, value, count in details:
        found = by_id.get(run_id)
        if found is None:
            continue
        row = found
        if source == 0:
            row["metrics"][name] = value if value is None or math.isfinite(value) else str(value)
            if count and count > 1:
                row["series"].append(name)
            metric_counts[name] = metric_counts.get(name, 0) + 1
        elif source == 1:
            row["tags"][name] = value
            tag_counts[name] = tag_counts.get(name, 0) + 1
        else:
            try:
                params = json.loads(value or "{}")
            except ValueError:
                params = {}
            if isinstance(params, Mapping):
                row["params"] = {**row["params"], **flatten(params)}
    for row in out:
        for name in row["params"]:
            param_counts[name] = param_counts.get(name, 0) + 1
    primary = None
    if parent is not None:
        primary = {"name": parent.get("primary_metric"), "goal": parent.get("goal")}
    else:
        names = [r["primary_metric"] for r in out if r["primary_metric"]]
        if names:
            primary = {"name": max(set(names), key=names.count), "goal": None}
    return {
        "experiment": experiment,
        "parent": dict(parent) if parent is not None else None,
        "version": version,
        "runs": out,
        "has_more": len(runs) > limit,
        "active": sum(1 for r in out if r["status"] in ACTIVE),
        "metric_names": _ordered(metric_counts),
        "param_names": _ordered(param_counts),
        "tag_keys": _ordered(tag_counts),
        "statuses": sorted({r["status"] for r in out}),
        "primary_metric": primary,
    }


def series_sql(n_runs: int) -> str:
    """Numeric values of one metric for several runs, in logging order (index metrics_by_run)."""
    marks = ",".join("?" * n_runs)
    return ("SELECT id, run_id, value_num, step, logged_at FROM metrics"
            f" WHERE run_id IN ({marks}) AND name = ? AND id > ? ORDER BY id")


def series_model(metric: str, run_ids: Sequence[str], rows: Iterable[tuple[Any, ...]], after: int) -> dict[str, Any]:
    """``GET /nbml/api/series?metric=&run=...``: per run, the points (x by step and by time) of one metric."""
    series: dict[str, dict[str, list[Any]]] = {r: {"step": [], "time": [], "value": []} for r in run_ids}
    last = after
    for rid, run_id, value, step, logged_at in rows:
        last = max(last, rid)
        if value is None or not math.isfinite(value):
            continue
        s = series[run_id]
        s["step"].append(step)  # None: the reader numbers the points in logging order
        s["time"].append(logged_at)
        s["value"].append(value)
    return {"metric": metric, "after": after, "last_id": last, "runs": series}
