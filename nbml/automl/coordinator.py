"""The AutoML parent run's driver: the single coordinator, inside the parent's supervisor process.

It holds the search (Optuna, in memory) and launches every iteration as a child run ``<parent>_<n>`` on
the compute target through the job executor, at most ``max_concurrent_iterations`` at once. It stops on
the iteration count, the experiment timeout, early stopping, the exit score or a cancel; then runs the
ensembles over the finished iterations, and the explanation of the best model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from nbml.automl.child import MODEL_FILE, PREDICTIONS_FILE, SCORES_FILE
from nbml.automl.metrics import goal, is_better
from nbml.automl.model import pipeline_name
from nbml.automl.search import Proposal, SearchStrategy
from nbml.compute.base import ComputeBackend, EnvSpec, JobSpec
from nbml.runs.context import SupervisorContext
from nbml.runs.executor import execute
from nbml.runs.status import CANCELED, COMPLETED, FAILED, FINALIZING, RUNNING
from nbml.snapshot import load_manifest

SPEC_FILE = "automl_spec.json"
CHILD_KIND = "automl_iteration"
EXPLAIN_KIND = "automl_explain"
ENSEMBLE_LIBRARY = 12  # best iterations an ensemble may draw from


@dataclasses.dataclass
class Result:
    iteration: int
    run_id: str
    pipeline: str
    status: str
    score: float | None
    trial: int | None = None


class Coordinator:
    def __init__(self, ctx: SupervisorContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.parent = ctx.run_id
        rec = ctx.record
        self.experiment = rec["experiment"]
        self.target = rec["compute_target"]
        self.created_at = float(rec["created_at"])
        self.cfg = ctx.config
        self.settings: dict[str, Any] = self.cfg["settings"]
        self.task: str = self.settings["task"]
        self.metric: str = self.settings["primary_metric"]
        self.results: dict[int, Result] = {}
        self.next_iteration = 0
        self.best: Result | None = None
        self.since_improvement = 0
        self.exit_reached = False
        self.durations: list[float] = []  # seconds taken by completed search iterations
        timeout = self.settings.get("experiment_timeout_minutes")
        self.deadline = self.created_at + float(timeout) * 60 if timeout else None
        it_timeout = self.settings.get("iteration_timeout_minutes")
        self.iteration_timeout = float(it_timeout) * 60 if it_timeout else None
        self._manifest = load_manifest(ctx.ws_root, self.cfg["snapshot_id"])
        self._data_files = self._load_data_files()

    # -- jobs ------------------------------------------------------------------------------------
    def _load_data_files(self) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        source = self.cfg["data"]
        if "pickle" in source:
            # In the manifest, content-addressed like snapshot files: each target receives it once, not per child.
            from nbml.data._files import file_blob

            pickle_path = self.ctx.run_dir(self.parent) / "automl" / source["pickle"]
            blob = file_blob(self.ctx.ws_root / "snapshots" / "blobs", pickle_path)
            self._manifest = {**self._manifest, source["pickle"]: blob}
        elif self.cfg.get("data_script_copy"):
            files[source["script"]] = Path(self.cfg["data_script_copy"]).read_bytes()
        return files

    def _base_spec(self) -> dict[str, Any]:
        return {
            "task": self.task, "primary_metric": self.metric, "seed": self.settings.get("seed", 0),
            "featurization": self.settings.get("featurization") == "auto", "data": self.cfg["data"],
            "n_jobs": self.cfg.get("n_jobs", 1),
            "validation": {"n_cross_validations": self.cfg.get("n_cross_validations"),
                           "validation_size": self.cfg.get("validation_size")},
        }

    def _job(self, run_id: str, spec: dict[str, Any], extra: dict[str, bytes] | None = None,
             timeout: float | None = None) -> JobSpec:
        threads = str(self.cfg.get("n_jobs", 1))
        return JobSpec(
            run_id=run_id,
            argv=["-m", "nbml.automl.child", SPEC_FILE],
            env=EnvSpec.from_dict(self.cfg["env"]),
            files=self._manifest,
            blob_dir=self.ctx.ws_root / "snapshots" / "blobs",
            environ={"NBML_EXPERIMENT": self.experiment, "NBML_WORKSPACE": str(self.ctx.ws_root),
                     "NBML_PARENT_RUN_ID": self.parent, "OMP_NUM_THREADS": threads,
                     "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONWARNINGS": "ignore"},
            extra_files={SPEC_FILE: json.dumps(spec).encode(), **self._data_files, **(extra or {})},
            timeout_seconds=timeout,
        )

    def _record_child(self, run_id: str, iteration: int | None, kind: str, name: str, spec: dict[str, Any],
                      props: dict[str, Any]) -> None:
        self.store.insert_run(run_id, self.experiment, kind, self.target,
                              {"automl_spec": spec, "primary_metric": self.metric},
                              snapshot_id=self.cfg["snapshot_id"], parent_id=self.parent, iteration=iteration,
                              display_name=name)
        self.store.add_properties(run_id, props)

    def _scores(self, run_id: str) -> dict[str, float] | None:
        path = self.ctx.run_dir(run_id) / "outputs" / SCORES_FILE
        try:
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    # -- search ----------------------------------------------------------------------------------
    def _remaining(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.time()

    def _reserve(self) -> float:
        """Seconds kept at the end of a time-limited search for the ensembles."""
        if self.deadline is None or not self._n_ensembles():
            return 0.0
        return min(60.0, max(6.0, 0.12 * (self.deadline - self.created_at)))

    def _n_ensembles(self) -> int:
        n = int(bool(self.settings.get("enable_voting_ensemble"))) + int(bool(self.settings.get("enable_stack_ensemble")))
        return n if self.settings["iterations"] >= n + 2 else 0

    def _cancelled(self) -> bool:
        return self.ctx.is_cancelled(self.parent)

    def _should_stop(self, launched: int, n_search: int) -> bool:
        if self._cancelled() or self.exit_reached or launched >= n_search:
            return True
        left = self._remaining() - self._reserve()
        if left <= 0:
            return True
        if self.durations and left < 0.5 * statistics.median(self.durations):
            return True  # an iteration started now would most likely be stopped unfinished
        n_algos = len(self.cfg["algorithms"])
        return bool(self.settings.get("enable_early_stopping") and len(self.results) >= n_algos
                    and self.since_improvement >= int(self.settings.get("early_stopping_n_iters", 10)))

    def _launch(self, search: SearchStrategy, backend: ComputeBackend) -> tuple[asyncio.Task[str], Proposal, int]:
        n = self.next_iteration
        self.next_iteration += 1
        p = search.ask()
        run_id = f"{self.parent}_{n}"
        spec = {**self._base_spec(), "kind": "iteration", "iteration": n, "algorithm": p.algorithm,
                "scaler": p.scaler, "hyperparameters": p.hyperparameters}
        name = pipeline_name(p.scaler, p.algorithm)
        self._record_child(run_id, n, CHILD_KIND, name, spec, {
            "iteration": str(n), "run_preprocessor": p.scaler, "run_algorithm": p.algorithm,
            "hyperparameters": json.dumps(p.hyperparameters), "pipeline_name": name,
            "primary_metric": self.metric,
        })
        timeout = self.iteration_timeout
        if self.deadline is not None:
            left = max(5.0, self._remaining() - self._reserve())
            timeout = min(timeout, left) if timeout else left
        task = asyncio.create_task(execute(self.ctx, run_id, self._job(run_id, spec, timeout=timeout), backend))
        return task, p, n

    def _finish(self, n: int, run_id: str, name: str, status: str, trial: int | None) -> Result:
        scores = self._scores(run_id) if status == COMPLETED else None
        score = scores.get(self.metric) if scores else None
        if score is not None and math.isnan(score):
            score = None
        result = Result(n, run_id, name, status, score, trial)
        rec = self.store.get_run(run_id)
        if status == COMPLETED and rec and rec.get("ended_at"):
            self.durations.append(float(rec["ended_at"]) - float(rec["created_at"]))
        self.results[n] = result
        if score is not None and (self.best is None or is_better(score, self.best.score, self.metric)):
            self.best = result
            self.since_improvement = 0
            self.store.add_properties(self.parent, {"best_child_run_id": run_id, "best_score": str(score)})
            self.store.log_metric(self.parent, self.metric, "scalar", score, None)  # the best so far, as a series
            target = self.settings.get("experiment_exit_score")
            if target is not None and not is_better(float(target), score, self.metric):
                self.exit_reached = True
                self.ctx.log(f"exit score {target} reached by iteration {n} ({score})")
        else:
            self.since_improvement += 1
        return result

    async def search(self, backend: ComputeBackend) -> None:
        search = SearchStrategy(self.task, self.metric, self.cfg["algorithms"], self.cfg["n_rows"],
                                self.cfg["n_features"], seed=int(self.settings.get("seed", 0)))
        n_search = max(1, int(self.settings["iterations"]) - self._n_ensembles())
        limit = int(self.settings.get("max_concurrent_iterations") or 1)
        running: dict[asyncio.Task[str], tuple[Proposal, int]] = {}
        launched = 0
        stopped: set[int] = set()
        try:
            while True:
                stop = self._should_stop(launched, n_search)
                while not stop and len(running) < limit:
                    task, proposal, n = self._launch(search, backend)
                    running[task] = (proposal, n)
                    launched += 1
                    stop = self._should_stop(launched, n_search)
                if not running:
                    return
                if self.exit_reached or self._cancelled() or self._remaining() - self._reserve() <= 0:
                    for _, n in running.values():  # out of time (or done): end the iterations still running
                        if n not in stopped:
                            stopped.add(n)
                            self.store.request_cancel(f"{self.parent}_{n}")
                done, _ = await asyncio.wait(running, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    proposal, n = running.pop(task)
                    status = task.result()
                    result = self._finish(n, f"{self.parent}_{n}", pipeline_name(proposal.scaler, proposal.algorithm),
                                          status, proposal.trial)
                    search.tell(proposal.trial, result.score)
        finally:
            for _, n in running.values():
                self.store.request_cancel(f"{self.parent}_{n}")
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    # -- ensembles and explanation ----------------------------------------------------------------
    def _library(self) -> list[Result]:
        done = [r for r in self.results.values() if r.score is not None and r.trial is not None]
        sign = 1.0 if goal(self.metric) == "maximize" else -1.0
        done.sort(key=lambda r: -sign * float(r.score))  # type: ignore[arg-type]
        return done[:ENSEMBLE_LIBRARY]

    def _member_files(self, members: list[Result]) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        listing, files = [], {}
        for r in members:
            out = self.ctx.run_dir(r.run_id) / "outputs"
            model, preds = f"members/{r.iteration}/{MODEL_FILE}", f"members/{r.iteration}/{PREDICTIONS_FILE}"
            files[model] = (out / MODEL_FILE).read_bytes()
            files[preds] = (out / PREDICTIONS_FILE).read_bytes()
            listing.append({"iteration": r.iteration, "model": model, "predictions": preds})
        return listing, files

    async def ensembles(self, backend: ComputeBackend) -> None:
        kinds = [k for k, on in (("VotingEnsemble", self.settings.get("enable_voting_ensemble")),
                                 ("StackEnsemble", self.settings.get("enable_stack_ensemble"))) if on]
        library = self._library()
        if not self._n_ensembles() or len(library) < 2 or self._cancelled():
            return
        members, files = self._member_files(library)
        jobs = []
        for kind in kinds:
            n = self.next_iteration
            self.next_iteration += 1
            run_id = f"{self.parent}_{n}"
            spec = {**self._base_spec(), "kind": "ensemble", "ensemble": kind, "iteration": n, "members": members}
            self._record_child(run_id, n, CHILD_KIND, kind, spec, {
                "iteration": str(n), "run_preprocessor": "", "run_algorithm": kind, "pipeline_name": kind,
                "hyperparameters": json.dumps({"ensembled_iterations": [m["iteration"] for m in members]}),
                "primary_metric": self.metric,
            })
            timeout = self.iteration_timeout or 600.0
            jobs.append((n, run_id, kind, self._job(run_id, spec, files, timeout=timeout)))
        limit = int(self.settings.get("max_concurrent_iterations") or 1)
        for i in range(0, len(jobs), limit):
            batch = jobs[i:i + limit]
            states = await asyncio.gather(*(execute(self.ctx, j[1], j[3], backend) for j in batch))
            for (n, run_id, kind, _), status in zip(batch, states, strict=True):
                self._finish(n, run_id, kind, status, None)

    async def explain(self, backend: ComputeBackend) -> None:
        if self.best is None or self._cancelled():
            return
        best = self.best
        run_id = f"{self.parent}_explain"
        spec = {**self._base_spec(), "kind": "explain", "model": f"explained/{MODEL_FILE}",
                "explained_run_id": best.run_id}
        model = (self.ctx.run_dir(best.run_id) / "outputs" / MODEL_FILE).read_bytes()
        self._record_child(run_id, None, EXPLAIN_KIND, "ModelExplain", spec, {"explained_run_id": best.run_id})
        status = await execute(self.ctx, run_id, self._job(run_id, spec, {f"explained/{MODEL_FILE}": model},
                                                           timeout=self.iteration_timeout or 1200.0), backend)
        if status == COMPLETED:
            self.store.add_properties(best.run_id, {"model_explanation_run_id": run_id})
            self.store.add_properties(self.parent, {"model_explanation_run_id": run_id})

    # -- the whole run ---------------------------------------------------------------------------
    async def run(self) -> None:
        self.store.set_status(self.parent, RUNNING)
        backend = self.ctx.backend_for(self.target)
        try:
            await self.search(backend)
            await self.ensembles(backend)
            if self.settings.get("model_explainability"):
                await self.explain(backend)
        finally:
            await backend.close()
        self.store.set_status(self.parent, FINALIZING)
        completed = [r for r in self.results.values() if r.status == COMPLETED]
        self.store.add_properties(self.parent, {
            "iterations_completed": str(len(completed)), "iterations_run": str(len(self.results)),
        })
        if self._cancelled():
            self.store.set_status(self.parent, CANCELED)
        elif self.best is None:
            errors = [self.store.get_run(r.run_id) for r in self.results.values()]
            first = next((e["error"] for e in errors if e and e.get("error")), "no iteration produced a score")
            self.store.set_status(self.parent, FAILED, error=f"All {len(self.results)} iterations failed; the "
                                                             f"first error:\n{first}")
        else:
            self.store.add_properties(self.parent, {"best_child_run_id": self.best.run_id,
                                                    "best_score": str(self.best.score),
                                                    "best_iteration": str(self.best.iteration)})
            self.store.set_status(self.parent, COMPLETED)


async def drive(ctx: SupervisorContext) -> None:
    """Supervisor entry point (the parent run's config names this module as its driver)."""
    await Coordinator(ctx).run()
