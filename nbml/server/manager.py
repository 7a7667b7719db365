"""The one object the handlers talk to: reads the workspace store and asks compute backends for status.

Store reads run in worker threads (SQLite is blocking) and are turned into JSON models by the pure
functions of nbml.server.models. Backend status checks can be slow (an SSH connect, a Dask scheduler),
so each is cached for a few seconds and refreshed in the background while the last answer is served.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.compute._ranks import rank_view
from nbml.runs import recovery
from nbml.runs.status import ACTIVE, TERMINAL
from nbml.server import experiment as exp_model
from nbml.server import files, models

if TYPE_CHECKING:
    from nbml.workspace import Workspace

LOCAL_TARGET = {"name": "local", "kind": "local", "config": {}, "state": "Succeeded"}


class RunMissing(LookupError):
    """No run with that id in the workspace."""


@dataclass
class _Cached:
    at: float
    value: dict[str, Any]


def _probe_status(record: dict[str, Any], workspace_root: Path) -> dict[str, Any]:
    """Ask a target's backend for its status (in a worker thread: backends may block)."""
    from nbml._aio import run_sync
    from nbml.compute.targets import backend_class

    try:
        backend = backend_class(record["kind"])(record["name"], record.get("config") or {}, workspace_root)
    except Exception as exc:  # a kind whose backend isn't installed here
        return {"state": "Unknown", "error": f"{type(exc).__name__}: {exc}"}

    async def _status() -> dict[str, Any]:
        try:
            return await backend.status()
        finally:
            await backend.close()

    try:
        return dict(run_sync(_status()))
    except Exception as exc:
        return {"state": "Unreachable", "error": f"{type(exc).__name__}: {exc}"}


class NbmlManager:
    """Answers the REST API from one workspace (its root folder and its store)."""

    status_ttl = 10.0
    status_wait = 3.0

    def __init__(self, workspace: Workspace) -> None:
        self.workspace_obj = workspace
        self.root = workspace.path
        self.store = workspace.store
        self.name = workspace.name
        self._status: dict[str, _Cached] = {}
        self._probing: dict[str, asyncio.Future[dict[str, Any]]] = {}

    # -- workspace and compute -----------------------------------------------------------------
    def workspace(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.root)}

    async def compute(self) -> dict[str, Any]:
        records = await asyncio.to_thread(self.store.list_compute)
        if not any(r["name"] == LOCAL_TARGET["name"] for r in records):
            records.insert(0, dict(LOCAL_TARGET))
        statuses = await asyncio.gather(*(self._target_status(r) for r in records))
        return {"targets": [models.compute_model(r, s) for r, s in zip(records, statuses, strict=True)]}

    async def _target_status(self, record: dict[str, Any]) -> dict[str, Any]:
        name = record["name"]
        cached = self._status.get(name)
        if cached is not None and time.monotonic() - cached.at < self.status_ttl:
            return cached.value
        future = self._probing.get(name)
        if future is None:
            future = asyncio.ensure_future(asyncio.to_thread(_probe_status, record, self.root))
            self._probing[name] = future

            def _done(f: asyncio.Future[dict[str, Any]], name: str = name) -> None:
                self._probing.pop(name, None)
                if not f.cancelled() and f.exception() is None:
                    self._status[name] = _Cached(time.monotonic(), f.result())

            future.add_done_callback(_done)
        if cached is not None:  # serve the last answer while a fresh one is fetched
            return cached.value
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.status_wait)
        except TimeoutError:
            return {"state": "Unknown", "error": "the status check is still running"}

    # -- experiments and runs ------------------------------------------------------------------
    async def experiments(self, latest: int) -> dict[str, Any]:
        return await asyncio.to_thread(self._experiments, latest)

    def _experiments(self, latest: int) -> dict[str, Any]:
        now = time.time()
        out = []
        for record in self.store.list_experiments():
            rows = self.store.list_runs(experiment=record["name"], top_level=True, limit=latest) if latest else []
            rows = self._recovered(rows)
            out.append(models.experiment_model(record, rows, self._latest(rows), now, self._parents(rows)))
        return {"experiments": out}

    def _recovered(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows after recovery (as Run.get_status does): a run whose supervisor died gets a new one."""
        out = []
        for row in rows:
            if row["status"] in ACTIVE and recovery.ensure_supervised(self.store, row):
                row = self.store.get_run(row["run_id"]) or row
            out.append(row)
        return out

    def _metrics(self, rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        ids = [r["run_id"] for r in rows]
        return self.store.metrics_for_runs(ids) if ids else {}

    def _latest(self, rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each run's latest number per metric, in the order last logged (what a listing shows of its metrics).

        Read from the latest-value table: a listing polled every few seconds costs the same whether a run
        logged ten values or a hundred thousand."""
        ids = [r["run_id"] for r in rows]
        latest = self.store.latest_metrics(ids) if ids else {}
        return {rid: {name: m["value"] for name, m in by_name.items()} for rid, by_name in latest.items()}

    def _parents(self, rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """`models.parent_facts` of the AutoML and HyperDrive parents among `rows`: two indexed queries each."""
        parents = [r for r in rows if r.get("kind") in models.PARENT_KINDS]
        if not parents:
            return {}
        ids = [r["run_id"] for r in parents]
        props: dict[str, dict[str, Any]] = {rid: {} for rid in ids}
        wanted = ("best_child_run_id", "best_score", "best_metric", "iterations", "num_iterations", "max_total_runs")
        for rid, key, value in self.store.db.tuples(
                f"SELECT run_id, key, value FROM properties WHERE run_id IN ({','.join('?' * len(ids))})"
                f" AND key IN ({','.join('?' * len(wanted))})", (*ids, *wanted)):
            props[rid][key] = value
        skip = models.NOT_ITERATIONS
        out = {}
        for row in parents:
            rid, config = row["run_id"], models.run_config(row)
            metric = models.primary_metric_name(config)
            started, done = self.store.db.tuples(
                f"SELECT COUNT(*), TOTAL(status IN ({','.join('?' * len(TERMINAL))})) FROM runs"
                f" WHERE parent_id = ? AND kind NOT IN ({','.join('?' * len(skip))})",
                (*sorted(TERMINAL), rid, *skip))[0]
            best_id, best_value = self._best_child(row, config, metric, props[rid])
            out[rid] = models.parent_facts(
                done=int(done), started=int(started), planned=models.planned_iterations(config, props[rid]),
                metric=metric, best_value=best_value, best_run_id=best_id)
        return out

    def _best_child(self, row: dict[str, Any], config: dict[str, Any], metric: str | None,
                    props: dict[str, Any]) -> tuple[str | None, Any]:
        """The best child and its primary metric: as its coordinator recorded it, else judged by the goal."""
        if not metric:
            return None, None
        recorded = props.get("best_score", props.get("best_metric"))
        if props.get("best_child_run_id") and recorded is not None:
            try:
                return str(props["best_child_run_id"]), float(recorded)
            except ValueError:
                pass
        goal = config.get("primary_metric_goal")
        if not goal:
            goal = "maximize"
            if row.get("kind") == "automl":
                try:
                    from nbml.automl.metrics import goal as automl_goal
                except ImportError:  # the automl extra is not installed here: AutoML metrics are mostly scores
                    pass
                else:
                    goal = automl_goal(metric)
        try:
            best = self.store.best_child(row["run_id"], metric, str(goal))
        except ValueError:  # a goal the store does not know: no verdict rather than a wrong one
            return None, None
        return (best["run_id"], best["metric_value"]) if best is not None else (None, None)

    async def runs(
        self,
        *,
        experiment: str | None,
        status: list[str] | None,
        parent_id: str | None,
        top_level: bool,
        limit: int,
        offset: int,
    ) -> dict[str, Any]:
        def _list() -> dict[str, Any]:
            rows = self._recovered(self.store.list_runs(
                experiment=experiment, status=status or None, parent_id=parent_id, top_level=top_level,
                limit=limit + 1, offset=offset,
            ))
            shown = rows[:limit]
            return models.run_list(rows, self._latest(shown), time.time(), limit=limit, offset=offset,
                                   parents=self._parents(shown))

        return await asyncio.to_thread(_list)

    async def experiment_runs(self, name: str, *, parent_id: str | None, children: bool, since: str | None,
                              limit: int = exp_model.MAX_RUNS) -> dict[str, Any]:
        """The experiment page's table (see nbml.server.experiment): two statements for any number of runs;
        with `since` equal to the current version, only ``{"version", "unchanged": true}``."""

        def _table() -> dict[str, Any]:
            parent = None
            if parent_id is not None:
                prow = self._row(parent_id)
                if prow["experiment"] != name:
                    raise RunMissing(f"Run {parent_id!r} is not in experiment {name!r}.")
                got = self.store.db.tuples(exp_model.runs_sql("run_id = ?"), (parent_id, 1))[0]
                parent = {"run_id": parent_id, "kind": got[2], "status": got[3], "display_name": got[4],
                          "primary_metric": got[9], "goal": got[10], "page": models.run_page_path(parent_id)}
            elif not self.store.db.tuples("SELECT 1 FROM experiments WHERE name = ?", (name,)):
                raise RunMissing(f"No experiment {name!r} in workspace {self.name!r}.")
            where, params = exp_model.scope_sql(name, parent_id, children)
            version = "|".join(str(v) for v in self.store.db.tuples(exp_model.version_sql(where),
                                                                     tuple(params * 4))[0])
            if since is not None and since == version:
                return {"version": version, "unchanged": True}
            rows = self.store.db.tuples(exp_model.runs_sql(where), (*params, limit + 1))
            limited = len(rows) > limit
            details = self.store.db.tuples(exp_model.details_sql(where, limited),
                                           tuple([*params, limit] * 3 if limited else params * 3))
            return exp_model.table_model(name, parent, rows, details, version, time.time(), limit)

        return await asyncio.to_thread(_table)

    async def series(self, metric: str, run_ids: list[str], after: int) -> dict[str, Any]:
        """One metric's numeric points for several runs (the compare chart), in one statement."""

        def _series() -> dict[str, Any]:
            known = {r[0] for r in self.store.db.tuples(
                f"SELECT run_id FROM runs WHERE run_id IN ({','.join('?' * len(run_ids))})", tuple(run_ids))}
            missing = [r for r in run_ids if r not in known]
            if missing:
                raise RunMissing(f"No run {missing[0]!r} in workspace {self.name!r}.")
            rows = self.store.db.tuples(exp_model.series_sql(len(run_ids)), (*run_ids, metric, after))
            return exp_model.series_model(metric, run_ids, rows, after)

        return await asyncio.to_thread(_series)

    async def run_files(self, run_id: str) -> dict[str, Any]:
        """Every file of the run, outputs (``outputs/...``) and logs, with sizes."""

        def _files() -> dict[str, Any]:
            self._row(run_id)
            outputs = [(f"{files.OUTPUTS}/{p}", s) for p, s in files.output_files(self.root, run_id)]
            return {"run_id": run_id, "files": models.file_entries(outputs + files.log_files(self.root, run_id))}

        return await asyncio.to_thread(_files)

    async def run_file(self, run_id: str, relpath: str) -> Path:
        """A file of the run (``outputs/...`` or a log file) by its path in the run folder, checked."""

        def _path() -> Path:
            self._row(run_id)
            path = files.run_file(self.root, run_id, relpath)
            if not path.is_file():
                raise FileNotFoundError(f"Run {run_id!r} has no file {relpath!r}.")
            return path

        return await asyncio.to_thread(_path)

    async def preview(self, run_id: str, relpath: str) -> dict[str, Any]:
        path = await self.run_file(run_id, relpath)
        return await asyncio.to_thread(files.preview, path, relpath)

    async def iteration_charts(self, run_id: str) -> dict[str, Any]:
        """An AutoML iteration's charts from its out-of-fold predictions, and its hyperparameters."""

        def _charts() -> dict[str, Any]:
            from nbml.automl import iteration_charts as ic

            row = self._row(run_id)
            config = models.run_config(row)
            spec = config.get("automl_spec")
            spec = spec if isinstance(spec, dict) else {}
            task = str(spec.get("task") or "")
            props = self.store.get_properties(run_id)
            try:
                params = json.loads(props.get("hyperparameters") or "{}")
            except ValueError:
                params = {}
            model: dict[str, Any] = {"run_id": run_id, "task": task, "charts": {}, "titles": {}, "error": None,
                                     "algorithm": props.get("run_algorithm"), "preprocessor":
                                     props.get("run_preprocessor"), "hyperparameters": params}
            if not task:
                model["error"] = "This run is not an AutoML iteration, so it has no iteration charts."
                return model
            path = files.run_dir(self.root, run_id) / files.OUTPUTS / "predictions.npz"
            if not path.is_file():
                model["error"] = ("No predictions yet: the charts appear when the iteration completes."
                                  if row["status"] not in TERMINAL else
                                  "This iteration left no predictions (it did not complete), so it has no charts.")
                return model
            try:
                model["charts"] = ic.charts_from_file(path, task)
            except (ic.ChartsUnavailable, ValueError, OSError) as exc:
                model["error"] = str(exc)
            model["titles"] = {k: v for k, v in ic.chart_titles(task).items() if k in model["charts"]}
            return model

        return await asyncio.to_thread(_charts)

    async def page_extras(self, model: dict[str, Any]) -> dict[str, Any]:
        """What the run page shows beyond the run's model: log_image's files, a HyperDrive parent's best run."""

        def _extras() -> dict[str, Any]:
            run_id = model["run_id"]
            images = [{"name": r[0], "kind": "image", "value": json.loads(r[1])} for r in self.store.db.tuples(
                "SELECT name, value_json FROM metrics WHERE run_id = ? AND kind = 'image' ORDER BY id", (run_id,))]
            best = None
            config = model.get("config") or {}
            metric, goal = config.get("primary_metric_name"), config.get("primary_metric_goal")
            if model["kind"] == "hyperdrive" and metric and goal:
                row = self.store.best_child(run_id, str(metric), str(goal))
                if row is not None:
                    best = {"run_id": row["run_id"], "display_name": row.get("display_name"), "metric": metric,
                            "value": row["metric_value"], "goal": goal, "page": models.run_page_path(row["run_id"]),
                            "hyperparameters": self.store.get_properties(row["run_id"]).get("hyperparameters")}
            return {"metric_rows": images, "best_child": best}

        return await asyncio.to_thread(_extras)

    def _row(self, run_id: str) -> dict[str, Any]:
        row = self.store.get_run(run_id) if files.valid_run_id(run_id) else None
        if row is None:
            raise RunMissing(f"No run {run_id!r} in workspace {self.name!r}.")
        return self._recovered([row])[0]

    async def run(self, run_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.run_details, run_id)

    def run_details(self, run_id: str) -> dict[str, Any]:
        """The run's full model (also used by the run page)."""
        row = self._row(run_id)
        children = self.store.children(run_id)
        model = models.run_details(
            row,
            metrics=self.store.get_metrics(run_id),
            tags=self.store.get_tags(run_id),
            properties=self.store.get_properties(run_id),
            history=self.store.status_history(run_id),
            children=children,
            child_metrics=self._metrics(children),
            log_files=files.log_files(self.root, run_id),
            output_files=files.output_files(self.root, run_id),
            now=time.time(),
            parent=self._parents([row]).get(run_id),
        )
        # A distributed run's nodes, processes and each rank's state (nbml.compute._ranks.rank_view).
        model["distributed"] = rank_view(files.run_dir(self.root, run_id), model["config"].get("distributed"))
        return model

    async def metrics(self, run_id: str, after: int | None = None) -> dict[str, Any]:
        """Every metric row and their fold; with `after`, only the rows logged since that id (see models)."""

        def _metrics() -> dict[str, Any]:
            self._row(run_id)
            return models.metrics_model(run_id, self.store.metric_rows(run_id, after_id=after or 0), after)

        return await asyncio.to_thread(_metrics)

    async def metrics_text(self, run_id: str, after: int | None = None) -> str:
        """`metrics` as the JSON text the route sends, spliced from the stored values (see models)."""

        def _text() -> str:
            self._row(run_id)
            return models.metrics_json(run_id, self.store.metric_records(run_id, after_id=after or 0), after)

        return await asyncio.to_thread(_text)

    async def children(self, run_id: str) -> dict[str, Any]:
        def _children() -> dict[str, Any]:
            metric = models.primary_metric_name(models.run_config(self._row(run_id)))
            rows = self.store.children(run_id)
            now, metrics, parents = time.time(), self._latest(rows), self._parents(rows)
            return {"run_id": run_id, "children": [models.run_summary(r, metrics.get(r["run_id"], {}), now,
                                                                      parents.get(r["run_id"]), metric) for r in rows]}

        return await asyncio.to_thread(_children)

    async def log_list(self, run_id: str) -> dict[str, Any]:
        def _logs() -> dict[str, Any]:
            self._row(run_id)
            return {"run_id": run_id, "files": models.file_entries(files.log_files(self.root, run_id))}

        return await asyncio.to_thread(_logs)

    async def log_chunk(self, run_id: str, relpath: str, offset: int, limit: int) -> dict[str, Any]:
        """Text of a log file from a byte offset; `next_offset` is where the next read starts."""

        def _chunk() -> dict[str, Any]:
            self._row(run_id)
            path = files.log_path(self.root, run_id, relpath)
            if not path.is_file():
                raise FileNotFoundError(f"Run {run_id!r} has no log file {relpath!r}.")
            data, size = files.read_chunk(path, offset, limit)
            start = min(offset, size)
            text, used = models.decode_chunk(data, at_eof=start + len(data) >= size)
            return {"run_id": run_id, "path": relpath, "offset": start, "next_offset": start + used,
                    "size": size, "content": text}

        return await asyncio.to_thread(_chunk)

    async def output_list(self, run_id: str) -> dict[str, Any]:
        def _outputs() -> dict[str, Any]:
            self._row(run_id)
            return {"run_id": run_id, "files": models.file_entries(files.output_files(self.root, run_id))}

        return await asyncio.to_thread(_outputs)

    async def output_file(self, run_id: str, relpath: str) -> Path:
        def _path() -> Path:
            self._row(run_id)
            path = files.output_path(self.root, run_id, relpath)
            if not path.is_file():
                raise FileNotFoundError(f"Run {run_id!r} has no output {relpath!r}.")
            return path

        return await asyncio.to_thread(_path)

    def _active_tree(self, run_id: str) -> list[dict[str, Any]]:
        pending, out = [run_id], []
        while pending:
            row = self.store.get_run(pending.pop())
            if row is not None and row["status"] in ACTIVE:
                out.append(row)
                pending += [c["run_id"] for c in self.store.children(row["run_id"])]
        return out

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Ask the run's supervisor to cancel it (and its children); returns the runs flagged."""

        def _cancel() -> dict[str, Any]:
            from nbml.runs.run import Run

            self._row(run_id)
            before = {r["run_id"] for r in self._active_tree(run_id)}
            Run.get(self.workspace_obj, run_id).cancel()
            row = self._row(run_id)
            flagged = sorted(r for r in before if self.store.cancel_requested(r) or r == run_id)
            return {"run_id": run_id, "flagged": flagged, "status": row["status"]}

        return await asyncio.to_thread(_cancel)
