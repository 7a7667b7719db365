"""The iterations of a parent run (AutoML, HyperDrive) as RunDetails shows them, from child records.

Pure: rows, best-so-far, the status bar's cells, per-metric series, sorting and paging.
"""

from __future__ import annotations

import array
import dataclasses
import functools
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nbml.automl.metrics import is_screen
from nbml.runs.status import COMPLETED, TERMINAL
from nbml.widgets._model import (
    format_duration,
    format_time_short,
    goal_for,
    is_number,
    run_duration,
    status_colour,
)

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


def table_columns(metric: str | None, pipeline: str = "Pipeline") -> list[list[str]]:
    """The table's columns, the two score columns named after the metric on show."""
    names = {"metric": f"{metric} (iteration)", "best": f"{metric} (best)"} if metric else {}
    names["pipeline"] = pipeline
    return [[key, names.get(key, label)] for key, label in TABLE_COLUMNS]


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
    screen: bool = False  # an AutoML low-fidelity screen: listed, never the best

    def cells(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration, "pipeline": self.pipeline,
            "metric": None if self.metric is None else round(self.metric, 6),
            "best": None if self.best is None else round(self.best, 6),
            "status": self.status, "duration": format_duration(self.duration),
            "started": format_time_short(self.started_at), "run_id": self.run_id,
            "_colour": status_colour(self.status),
        }


def pipeline_name(props: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    pre = props.get("run_preprocessor") or ""
    algo = props.get("run_algorithm") or ""
    name = " ".join(str(p) for p in (pre, algo) if p)
    if name and is_screen(props):
        name += f" [screen {float(props['fidelity']):.0%}]"
    if not name and props.get("hyperparameters"):  # a HyperDrive child: its sampled values
        name = ", ".join(f"{k} {v}" for k, v in sorted(_json_object(props["hyperparameters"]).items()))
    return name or str(run.get("display_name") or "")


class ChildrenState:
    """The iterations of a parent run (AutoML, HyperDrive), updated from changed child records."""

    def __init__(self, primary_metric: str | None = None, goal: str | None = None) -> None:
        self.primary_metric = primary_metric
        self.goal = goal_for(primary_metric, goal)
        self.chosen_metric: str | None = None  # the metric the user picked; None follows the primary metric
        # HyperDrive's children have no iteration number: they are numbered in the order they were created.
        self.number_by_order = False
        self._numbers: dict[str, int] = {}
        self._best: tuple[IterationRow, float] | None = None
        self._best_stale = True
        self.rows: dict[str, IterationRow] = {}
        self.metrics: dict[str, dict[str, Any]] = {}
        self.hyperparameters: dict[str, dict[str, Any]] = {}  # run id -> its "hyperparameters" property
        self.explained_by: dict[str, str] = {}  # iteration run id -> the run that explained its model
        self._order: list[str] = []
        self._ordered: list[IterationRow] | None = None
        self._metric_names: set[str] = set()

    def set_primary_metric(self, metric: str | None, goal: str | None = None) -> bool:
        if metric == self.primary_metric and goal_for(metric, goal) == self.goal:
            return False
        self.primary_metric, self.goal = metric, goal_for(metric, goal)
        self._best_stale = True
        self._rescore()
        return True

    @property
    def metric(self) -> str | None:
        """The metric the table's score columns and the status bar show."""
        return self.chosen_metric or self.primary_metric

    @property
    def metric_goal(self) -> str:
        return self.goal if self.metric == self.primary_metric else goal_for(self.metric)

    def choose_metric(self, name: str | None) -> bool:
        """Show `name` in the score columns (None: the primary metric); returns whether anything changed."""
        if (name or None) == self.chosen_metric:
            return False
        self.chosen_metric = name or None
        self._rescore()
        return True

    def _rescore(self) -> None:
        for rid, row in self.rows.items():
            row.metric = self._score(self.metrics.get(rid, {}))
        self._recompute_best()

    def apply(self, runs: Sequence[Mapping[str, Any]], props: Mapping[str, Mapping[str, Any]],
              metrics: Mapping[str, Mapping[str, Any]]) -> set[str]:
        """Merge changed children (records, their properties and metrics); returns the changed run ids."""
        changed: set[str] = set()
        if self.number_by_order:
            runs = sorted(runs, key=lambda r: (r.get("created_at") or 0, str(r["run_id"])))
        for run in runs:
            rid = str(run["run_id"])
            iteration = run.get("iteration")
            if iteration is None and self.number_by_order:
                iteration = self._numbers.setdefault(rid, len(self._numbers))
            if rid in metrics:
                self.metrics[rid] = dict(metrics[rid])
                self._metric_names.update(n for n, v in metrics[rid].items() if is_number(v))
            p = props.get(rid, {})
            if p.get("hyperparameters"):
                self.hyperparameters[rid] = _json_object(p["hyperparameters"])
            if p.get("explained_run_id"):
                self.explained_by[str(p["explained_run_id"])] = rid
            if p.get("model_explanation_run_id"):
                self.explained_by[rid] = str(p["model_explanation_run_id"])
            row = IterationRow(
                run_id=rid, iteration=iteration, pipeline=pipeline_name(p, run),
                status=str(run.get("status")), metric=self._score(self.metrics.get(rid, {})),
                started_at=run.get("started_at"), ended_at=run.get("ended_at"), duration=run_duration(run),
                screen=is_screen(p),
            )
            old = self.rows.get(rid)
            if old is None:
                self._order.append(rid)
            if old != row:
                if old is not None and not row.pipeline:
                    row.pipeline = old.pipeline
                if old is not None and rid not in props:
                    row.screen = old.screen
                self.rows[rid] = row
                self._ordered = None
                changed.add(rid)
        if changed:
            self._update_best_run(changed)
            changed |= self._recompute_best()
        return changed

    def _update_best_run(self, changed: set[str]) -> None:
        """Keep the best run by the primary metric up to date from the changed rows only (1,000 iterations
        would otherwise be scanned at every update)."""
        if self._best_stale:
            return
        better = (lambda a, b: a > b) if self.goal == "maximize" else (lambda a, b: a < b)
        for rid in changed:
            row = self.rows[rid]
            if self._best is not None and self._best[0].run_id == rid:  # the best itself changed: rescan
                self._best_stale = True
                return
            score = self._score(self.metrics.get(rid, {}), self.primary_metric)
            if row.status == COMPLETED and row.iteration is not None and score is not None and not row.screen and (
                    self._best is None or better(score, self._best[1])):
                self._best = (row, score)

    def tick(self, now: float | None = None) -> set[str]:
        """Advance the durations of running iterations."""
        changed = set()
        for rid, row in self.rows.items():
            if row.status not in TERMINAL and row.started_at:
                row.duration = (now or time.time()) - row.started_at
                changed.add(rid)
        return changed

    def _score(self, metrics: Mapping[str, Any], name: str | None = None) -> float | None:
        name = name or self.metric
        if not name:
            return None
        value = metrics.get(name)
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
        better = (lambda a, b: a > b) if self.metric_goal == "maximize" else (lambda a, b: a < b)
        for row in self.ordered():
            if row.metric is not None and row.status == COMPLETED and not row.screen and (best is None or better(row.metric, best)):
                best = row.metric
            if row.best != best:
                row.best = best
                changed.add(row.run_id)
        return changed

    def best_run(self) -> tuple[IterationRow, float] | None:
        """The completed iteration with the best primary metric, and that score."""
        if self._best_stale:
            scored = [(r, self._score(self.metrics.get(r.run_id, {}), self.primary_metric)) for r in self.ordered()
                      if r.status == COMPLETED and r.iteration is not None and not r.screen]
            done = [(r, s) for r, s in scored if s is not None]
            self._best = (max if self.goal == "maximize" else min)(done, key=lambda p: p[1]) if done else None
            self._best_stale = False
        return self._best

    def progress(self) -> tuple[int, int]:
        """(iterations ended, iterations known)."""
        rows = self.iterations()
        return sum(1 for r in rows if r.status in TERMINAL), len(rows)

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

    def status_bar(self, names: list[list[str]] | None = None) -> StatusBar:
        """The status bar as packed arrays; `names` ([status, colour] pairs) is extended with new statuses."""
        names = list(names or [])
        index = {status: i for i, (status, _colour) in enumerate(names)}
        rows = self.iterations()
        codes = []
        nan = math.nan
        for row in rows:
            code = index.get(row.status)
            if code is None:
                code = index[row.status] = len(names)
                names.append([row.status, status_colour(row.status)])
            codes.append(code)
        scores = [nan if r.metric is None or r.status != COMPLETED else r.metric for r in rows]
        return StatusBar(iterations=_packed("i", [r.iteration for r in rows]), statuses=_packed("B", codes),
                         scores=_packed("d", scores), names=names, run_ids=[r.run_id for r in rows])

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
                if self.metric_goal == "minimize":
                    frac = 1.0 - frac
                colour = _green(frac)
                title += f", {self.metric} {row.metric:.4g}"
            cells.append([row.iteration, row.status, colour, title])
        return cells


@dataclasses.dataclass
class StatusBar:
    """The status bar's data as packed arrays (one entry per iteration, in iteration order): the widget sends
    them as three binary buffers of a few KB, and the browser shades and titles the cells itself. A list of
    1,000 ``[iteration, status, colour, title, run id]`` cells cost more to build, compare and serialise than
    all the rest of an update."""

    iterations: bytes  # int32, little-endian
    statuses: bytes  # uint8: index into `names`
    scores: bytes  # float64, little-endian; NaN: no score (yet)
    names: list[list[str]]  # [status, colour] per index
    run_ids: list[str]

    def __len__(self) -> int:
        return len(self.run_ids)


def _packed(kind: str, values: Sequence[Any]) -> bytes:
    packed = array.array(kind, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(str(value))
    except ValueError:
        return {"value": str(value)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


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
