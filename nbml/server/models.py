"""Pure functions that build the JSON models the REST API answers with.

They take store records (dicts) and return plain JSON-able dicts; no I/O happens here, so they are
tested without a server and the TypeScript interfaces in labextension/src/models.ts mirror them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nbml.runs.status import TERMINAL
from nbml.store.metric_values import aggregate, fold

#: Config keys that name the metric a run is judged by (AutoML, HyperDrive and the SDK's spellings).
PRIMARY_METRIC_KEYS = ("primary_metric", "primary_metric_name", "primary_metric_config")
#: Run kinds whose children are iterations (the sidebar shows their progress and best metric).
PARENT_KINDS = ("automl", "hyperdrive")
#: Child kinds that are not iterations of their parent (AutoML's model explanation run).
NOT_ITERATIONS = ("automl_explain", "explain")
#: Where a parent's planned number of iterations is written: config keys, then property names (the SDK's too).
_PLANNED_CONFIG = (("settings", "iterations"), ("iterations",), ("max_total_runs",))
_PLANNED_PROPERTIES = ("iterations", "num_iterations", "max_total_runs")


def _number(value: Any) -> Any:
    """A JSON-safe scalar: NaN and infinities become their names (JSON has no literal for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def run_config(row: Mapping[str, Any]) -> dict[str, Any]:
    """The run's config_json as a dict ({} when unreadable)."""
    return _config(row)


def _config(row: Mapping[str, Any]) -> dict[str, Any]:
    raw = row.get("config_json")
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _last_scalar(value: Any) -> Any:
    """The latest scalar of an aggregated metric (a value, or a list of logged values)."""
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float, str)):
        return _number(value)
    return None


def primary_metric_name(config: Mapping[str, Any]) -> str | None:
    """The name of the metric a run is judged by, from its config (None for a plain script run)."""
    settings = config.get("settings")
    sources = [config, settings] if isinstance(settings, Mapping) else [config]
    for source in sources:
        for key in PRIMARY_METRIC_KEYS:
            name = source.get(key)
            if isinstance(name, Mapping):
                name = name.get("name")
            if name:
                return str(name)
    return None


def planned_iterations(config: Mapping[str, Any], properties: Mapping[str, Any]) -> int | None:
    """How many iterations a parent will run (AutoML's `iterations`, HyperDrive's `max_total_runs`)."""
    candidates: list[Any] = []
    for path in _PLANNED_CONFIG:
        value: Any = config
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        candidates.append(value)
    candidates += [properties.get(key) for key in _PLANNED_PROPERTIES]
    for value in candidates:
        try:
            n = int(value)
        except (TypeError, ValueError):
            continue
        if n > 0:
            return n
    return None


def parent_facts(
    *, done: int, started: int, planned: int | None, metric: str | None, best_value: Any, best_run_id: str | None
) -> dict[str, Any]:
    """What a listing adds to an AutoML or HyperDrive parent: its progress and its best child's primary metric.

    `done` of `started` iterations have ended; the total is the planned number, or the number started when
    that is more (or unknown). `best` is None until a child has a number for the primary metric.
    """
    total = max(planned or 0, started)
    best = None
    if metric and best_value is not None:
        best = {"name": metric, "value": _number(best_value), "best_run_id": best_run_id}
    return {"progress": {"done": min(done, total), "total": total}, "best": best}


def primary_metric(config: Mapping[str, Any], metrics: Mapping[str, Any],
                   parent_metric: str | None = None) -> dict[str, Any] | None:
    """The metric the sidebar shows for a run.

    The run's configured primary metric when it has one (AutoML, HyperDrive), else its parent's (a HyperDrive
    child is judged by the sweep's metric), else the last metric logged that has a number value (not the
    first: scripts log their settings first); its latest value either way.
    """
    name = primary_metric_name(config) or parent_metric
    if name and name in metrics:
        return {"name": str(name), "value": _last_scalar(metrics[name])}
    for metric, value in reversed(list(metrics.items())):  # the metric logged last (a script logs its score last)
        scalar = _last_scalar(value)
        if scalar is not None and not isinstance(scalar, str):
            return {"name": metric, "value": scalar}
    return None


def duration(row: Mapping[str, Any], now: float) -> float | None:
    """Seconds from start to end (to `now` while the run is active); None before it started."""
    started = row.get("started_at")
    if started is None:
        return None
    ended = row.get("ended_at")
    end = ended if ended is not None else (now if row.get("status") not in TERMINAL else started)
    return max(0.0, float(end) - float(started))


def run_page_path(run_id: str) -> str:
    """The run page's path relative to the server's base URL."""
    from urllib.parse import quote

    return "nbml/runs/" + quote(run_id, safe="")


def experiment_page_path(name: str, parent_id: str | None = None) -> str:
    """The experiment page's path relative to the server's base URL (a parent's children with `parent_id`)."""
    from urllib.parse import quote

    path = "nbml/experiments/" + quote(name, safe="")
    return path + ("?parent=" + quote(parent_id, safe="") if parent_id else "")


def run_summary(
    row: Mapping[str, Any], metrics: Mapping[str, Any], now: float, parent: Mapping[str, Any] | None = None,
    parent_metric: str | None = None,
) -> dict[str, Any]:
    """One run as listed by the sidebar and the runs endpoint.

    `parent`: `parent_facts` of an AutoML or HyperDrive parent, whose primary metric is then its best child's
    (with `best_run_id`), and whose `progress` counts iterations ended of the total (None for other runs).
    `parent_metric`: the primary metric of the run's parent, shown when the run has none of its own.
    """
    status = str(row["status"])
    best = parent.get("best") if parent else None
    return {
        "run_id": row["run_id"],
        "experiment": row["experiment"],
        "parent_id": row.get("parent_id"),
        "iteration": row.get("iteration"),
        "kind": row.get("kind") or "script",
        "display_name": row.get("display_name"),
        "status": status,
        "is_terminal": status in TERMINAL,
        "cancel_requested": bool(row.get("cancel_requested")),
        "compute_target": row.get("compute_target"),
        "created_at": row.get("created_at"),
        "started_at": row.get("started_at"),
        "ended_at": row.get("ended_at"),
        "duration_seconds": duration(row, now),
        "primary_metric": best if best is not None else primary_metric(_config(row), metrics, parent_metric),
        "progress": parent.get("progress") if parent else None,
        "error": row.get("error"),
        "page": run_page_path(str(row["run_id"])),
    }


def run_list(
    rows: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, Any]],
    now: float,
    *,
    limit: int,
    offset: int,
    parents: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A page of runs; `rows` holds up to limit + 1 records, the extra one only telling that more exist."""
    page = rows[:limit]
    parents = parents or {}
    return {
        "runs": [run_summary(r, metrics.get(r["run_id"], {}), now, parents.get(r["run_id"])) for r in page],
        "limit": limit,
        "offset": offset,
        "has_more": len(rows) > limit,
        "next_offset": offset + len(page) if len(rows) > limit else None,
    }


def experiment_model(
    record: Mapping[str, Any],
    latest: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, Any]],
    now: float,
    parents: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """An experiment with its latest top-level runs (`parents`: `parent_facts` by run id)."""
    parents = parents or {}
    return {
        "name": record["name"],
        "created_at": record.get("created_at"),
        "run_count": int(record.get("run_count") or 0),
        "last_run_at": record.get("last_run_at"),
        "page": experiment_page_path(str(record["name"])),
        "latest_runs": [run_summary(r, metrics.get(r["run_id"], {}), now, parents.get(r["run_id"])) for r in latest],
    }


def compute_model(record: Mapping[str, Any], status: Mapping[str, Any] | None) -> dict[str, Any]:
    """A compute target with the live status its backend reported (None: not asked)."""
    status = status or {}
    nodes = status.get("nodes")
    return {
        "name": record["name"],
        "kind": record["kind"],
        "state": record.get("state") or "Succeeded",
        "status": str(status.get("state") or "Unknown"),
        "nodes": {str(k): int(v) for k, v in nodes.items()} if isinstance(nodes, Mapping) else None,
        "error": None if status.get("error") is None else str(status["error"]),
    }


def file_entries(files: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"path": path, "size": size} for path, size in sorted(files)]


def run_details(
    row: Mapping[str, Any],
    *,
    metrics: Mapping[str, Any],
    tags: Mapping[str, Any],
    properties: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    children: Sequence[Mapping[str, Any]],
    child_metrics: Mapping[str, Mapping[str, Any]],
    log_files: Iterable[tuple[str, int]],
    output_files: Iterable[tuple[str, int]],
    now: float,
    parent: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the run page and RunDetails show about one run (`parent`: see `run_summary`)."""
    model = run_summary(row, metrics, now, parent)
    config = _config(row)
    model.update(
        {
            "config": config,
            "snapshot_id": row.get("snapshot_id"),
            "iteration": row.get("iteration"),
            "tags": dict(tags),
            "properties": dict(properties),
            "status_history": [
                {"status": h["status"], "at": h["at"], "detail": h.get("detail")} for h in history
            ],
            "metrics": jsonable_metrics(metrics),
            "children": [run_summary(c, child_metrics.get(c["run_id"], {}), now, parent_metric=primary_metric_name(config))
                         for c in children],
            "log_files": file_entries(log_files),
            "output_files": file_entries(output_files),
        }
    )
    return model


def _all_finite_numbers(values: list[Any]) -> bool:
    """Whether a list holds only finite ints/floats, checked in C (a 100,000-value series costs a few ms)."""
    if not set(map(type, values)) <= {int, float}:
        return False
    try:
        return math.isfinite(math.fsum(values))
    except (OverflowError, ValueError):  # huge values, or inf and -inf together: the slow path looks at each
        return False


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return value if _all_finite_numbers(value) else [_clean(v) for v in value]
    return _number(value)


def jsonable_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Aggregated metrics with NaN/inf spelled out, so the answer stays strict JSON."""
    return {name: _clean(value) for name, value in metrics.items()}


def _clean_row(row: Mapping[str, Any]) -> Mapping[str, Any]:
    value = row["value"]
    if value.__class__ in (int, str, bool, type(None)) or (value.__class__ is float and math.isfinite(value)):
        return row  # the common case, checked without a call or a copy per row
    return {**row, "value": _clean(value)}


def metrics_model(run_id: str, rows: Sequence[Mapping[str, Any]], after: int | None) -> dict[str, Any]:
    """``GET /nbml/api/runs/<id>/metrics[?after=N]``.

    Without `after`: every row (`rows`), their fold as get_metrics() shows it (`metrics`) and `last_id`.
    With `after=N`: only the rows with id > N and the new `last_id` (N when nothing is new), no fold, so a
    poller's cost is what changed, not what the run logged in all.
    """
    model: dict[str, Any] = {
        "run_id": run_id,
        "rows": [_clean_row(r) for r in rows],
        "last_id": rows[-1]["id"] if rows else (after or 0),
    }
    if after is None:
        model["metrics"] = jsonable_metrics(aggregate((r["name"], r["kind"], r["value"]) for r in rows))
    else:
        model["after"] = after
    return model


def _strict(text: str) -> str:
    """A stored value's JSON made strict: NaN/Infinity (only ever in the text when in a value) spelled out."""
    if "NaN" not in text and "Infinity" not in text:
        return text
    return json.dumps(_clean(json.loads(text)), allow_nan=False)


def _json_number(value: Any) -> str:
    return json.dumps(_number(value), allow_nan=False)


def metrics_json(run_id: str, records: Sequence[tuple[int, str, str, str, Any, Any]], after: int | None) -> str:
    """`metrics_model` as JSON text, built from the rows' stored JSON (``Store.metric_records``).

    Values are spliced in as stored rather than decoded and encoded again; that is what keeps the full
    list of a 100,000-metric run within a second. json.loads of the answer equals `metrics_model`'s.
    """
    quoted: dict[str, str] = {}

    def q(text: str) -> str:
        out = quoted.get(text)
        if out is None:
            out = quoted[text] = json.dumps(text)
        return out

    rows: list[str] = []
    by_name: dict[str, list[tuple[str, str]]] = {}
    for rid, name, kind, text, step, logged_at in records:
        value = _strict(text)
        step_text = "null" if step is None else (str(step) if step.__class__ is int else _json_number(step))
        t_text = repr(logged_at) if logged_at.__class__ is float and math.isfinite(logged_at) else _json_number(
            logged_at)
        rows.append(f'{{"id":{rid},"name":{q(name)},"kind":{q(kind)},"value":{value},"step":{step_text},'
                    f'"logged_at":{t_text}}}')
        if after is None:
            by_name.setdefault(name, []).append((kind, value))
    last_id = records[-1][0] if records else (after or 0)
    head = f'{{"run_id":{json.dumps(run_id)},"rows":[{",".join(rows)}],"last_id":{last_id}'
    if after is not None:
        return f'{head},"after":{after}}}'
    folded = []
    for name, entries in by_name.items():
        if all(kind == "scalar" for kind, _ in entries):  # a series: its values as logged, in a list
            text = entries[0][1] if len(entries) == 1 else "[" + ",".join(v for _, v in entries) + "]"
        else:
            text = json.dumps(_clean(fold([(kind, json.loads(v)) for kind, v in entries])), allow_nan=False)
        folded.append(f"{q(name)}:{text}")
    return f'{head},"metrics":{{{",".join(folded)}}}}}'


def decode_chunk(data: bytes, at_eof: bool) -> tuple[str, int]:
    """Text of a log chunk and how many bytes it used.

    A UTF-8 character cut at the end of the chunk is left for the next read, unless the file ends there.
    """
    if not at_eof:
        for cut in range(0, min(4, len(data)) + 1):
            try:
                end = len(data) - cut
                return data[:end].decode("utf-8"), end
            except UnicodeDecodeError as exc:
                if exc.start < len(data) - 4:  # invalid in the middle: not a cut character
                    break
    return data.decode("utf-8", errors="replace"), len(data)
