"""The AutoML parent run's driver: the single coordinator, inside the parent's supervisor process.

It holds the search (Optuna, in memory) and launches every iteration as a child run ``<parent>_<n>`` on
the compute target through the shared child loop (`nbml.runs.children`), at most
``max_concurrent_iterations`` at once. With a time limit, a cheap baseline (a regularised linear model
on a row subsample) goes first, so a model exists long before the limit. It stops on the iteration count,
the experiment timeout, early stopping, the exit score or a cancel; then runs the ensembles over the
finished iterations, and the explanation of the best model.

A coordinator started for a parent that already has children (its supervisor died and a new one took
over) resumes: finished iterations are results and rebuild the study, running ones are adopted,
iteration numbers go on, and ensembles and the explanation run once.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from nbml.automl.child import (
    ENSEMBLE_INIT,
    ENSEMBLE_ROUNDS,
    MODEL_FILE,
    PREDICTIONS_FILE,
    SCORES_FILE,
    WARM_DATA_FILE,
    WARM_PRELOAD,
)
from nbml.automl.estimators import pipeline_name, size_of
from nbml.automl.metrics import CLASSIFICATION, goal, is_better, is_blend, wins_tie
from nbml.automl.search import AskAhead, PastTrial, Proposal, SearchStrategy
from nbml.compute.base import EnvSpec, JobSpec
from nbml.runs.children import ChildLoop, child_config, existing_children
from nbml.runs.context import SupervisorContext
from nbml.runs.status import CANCELED, COMPLETED, FAILED, FINALIZING, RUNNING, TERMINAL
from nbml.runs.warm import warm_backend
from nbml.snapshot import load_manifest

SPEC_FILE = "automl_spec.json"
CHILD_KIND = "automl_iteration"
EXPLAIN_KIND = "automl_explain"
ENSEMBLE_LIBRARY = 12  # best iterations an ensemble may draw from
BASELINE_ROWS = 5000  # the baseline fits on at most this many rows
ETA = 3  # successive halving: a screen is promoted when it is in the best 1/ETA of the screens so far
SCREEN_MIN_ITERATIONS = 50  # screening runs only in time-limited searches allowed at least this many iterations
BAG_MAX_ROWS = 10_000  # up to this many training rows, an iteration's model keeps its CV fold fits (bagging)
SCREEN_ROWS = 8000  # on more training rows than this, a screen fits on a quarter of them (at least this many)


@dataclasses.dataclass
class Result:
    iteration: int
    run_id: str
    pipeline: str
    status: str
    score: float | None
    ensemble: bool = False
    screen: bool = False  # a low-fidelity screen: never the best model, never an ensemble member
    blend: bool = False  # an ensemble of at least two iterations (wins a tie on the primary metric)


def _spec(rec: dict[str, Any]) -> dict[str, Any]:
    return child_config(rec).get("automl_spec") or {}  # type: ignore[no-any-return]


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
        # what each algorithm's finished iterations cost: (algorithm, screen) -> [(trees or rounds, seconds)]
        self.costs: dict[tuple[str, bool], list[tuple[float, float]]] = collections.defaultdict(list)
        self.rung: list[float] = []  # the scores of the finished screens
        self.promotions: collections.deque[Proposal] = collections.deque()
        self.skipped = 0  # proposals not started because they could not finish in the time left
        timeout = self.settings.get("experiment_timeout_minutes")
        self.deadline = self.created_at + float(timeout) * 60 if timeout else None
        it_timeout = self.settings.get("iteration_timeout_minutes")
        self.iteration_timeout = float(it_timeout) * 60 if it_timeout else None
        self.fidelity = self._screen_fidelity()
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

    def _job(self, run_id: str, spec: dict[str, Any], extra: dict[str, bytes] | None = None) -> JobSpec:
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
            timeout_seconds=None,  # the child loop enforces the limits, with errors that name the user's setting
            resources=dict(self.cfg.get("resources") or {}),
        )

    def _record_child(self, run_id: str, iteration: int | None, kind: str, name: str, spec: dict[str, Any],
                      props: dict[str, Any], trial: dict[str, Any] | None = None) -> None:
        self.store.insert_run(run_id, self.experiment, kind, self.target,
                              {"automl_spec": spec, "primary_metric": self.metric, "search_trial": trial},
                              snapshot_id=self.cfg["snapshot_id"], parent_id=self.parent, iteration=iteration,
                              display_name=name)
        self.store.add_properties(run_id, props)

    def _scores(self, run_id: str) -> dict[str, float] | None:
        path = self.ctx.run_dir(run_id) / "outputs" / SCORES_FILE
        try:
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def _limit(self, what: str, started: float, default: float | None = None,
               until: float | None = None) -> tuple[float | None, str]:
        """Seconds `what` may run from `started` (and at most until `until`), and the error it ends with."""
        limit = self.iteration_timeout or default
        if self.iteration_timeout:
            reason = (f"{what} exceeded iteration_timeout_minutes={self.settings.get('iteration_timeout_minutes')}"
                      " and was stopped; raise iteration_timeout_minutes if iterations need longer.")
        else:
            reason = f"{what} ran longer than {default or 0:g} s and was stopped."
        if until is not None and (limit is None or until - started < limit):
            limit = max(5.0, until - started)
            kept = f" (the last {self._reserve():.0f} s are kept for the ensembles)" if self._reserve() else ""
            reason = (f"{what} was stopped: experiment_timeout_minutes="
                      f"{self.settings.get('experiment_timeout_minutes')} ran out{kept}.")
        return limit, reason

    def _search_end(self) -> float | None:
        return None if self.deadline is None else self.deadline - self._reserve()

    # -- search ----------------------------------------------------------------------------------
    def _remaining(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.time()

    def _reserve(self) -> float:
        """Seconds kept at the end of a time-limited search for the ensembles: a tenth of the time, 3 to 60 s.

        Ensembles blend out-of-fold predictions the search already has: the coordinator selects the members
        (a fraction of a second) and each ensemble child loads only those models, about 1 s on a 30 s search.
        """
        if self.deadline is None or not self._n_ensembles():
            return 0.0
        return min(60.0, max(3.0, 0.1 * (self.deadline - self.created_at)))

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

    def _screen_fidelity(self) -> dict[str, Any] | None:
        """What a low-fidelity screen runs: a third of the CV folds, and on large data a quarter of the rows.

        None when the search does not screen: no time limit, few iterations allowed, or nothing cheaper to run
        (a holdout on small data)."""
        if self.deadline is None or int(self.settings["iterations"]) < SCREEN_MIN_ITERATIONS:
            return None
        n_cv = int(self.cfg.get("n_cross_validations") or 0)
        n_rows = int(self.cfg.get("n_rows") or 0)
        folds = max(1, n_cv // ETA) if n_cv >= ETA else None
        rows = max(SCREEN_ROWS, n_rows // 4) if n_rows > 2 * SCREEN_ROWS else None
        if folds is None and rows is None:
            return None
        share = (folds / n_cv if folds else 1.0) * (min(1.0, rows / n_rows) if rows else 1.0)
        if folds:
            share *= n_cv / (n_cv + 1)  # a screen fits no model on all rows
        return {"folds": folds, "rows": rows, "share": round(share, 3)}

    def _estimate(self, p: Proposal) -> float | None:
        """Seconds `p` should take, from its algorithm's finished iterations (per tree or round where the
        algorithm builds them); None while that algorithm has none."""
        size = size_of(p.algorithm, p.hyperparameters)
        seen = self.costs.get((p.algorithm, p.screen))
        scale = 1.0
        if not seen and self.fidelity:  # the other fidelity's cost, scaled by the share of the work
            seen = self.costs.get((p.algorithm, not p.screen))
            scale = self.fidelity["share"] if p.screen else 1.0 / self.fidelity["share"]
        if not seen:
            return None
        return scale * statistics.median(seconds / max(s, 1.0) for s, seconds in seen) * max(size, 1.0)

    def _fits(self, p: Proposal) -> bool:
        """Whether `p`, started now, should finish before the search's time is up."""
        end = self._search_end()
        estimate = self._estimate(p)
        return end is None or estimate is None or time.time() + estimate < end

    def _promote(self, score: float | None) -> bool:
        """Successive halving (asynchronous): promote a screen in the best 1/ETA of the screens so far."""
        if score is None:
            return False
        self.rung.append(score)
        better = sum(1 for s in self.rung if is_better(s, score, self.metric))
        return better < math.ceil(len(self.rung) / ETA)

    async def _next(self, search: AskAhead) -> Proposal | None:
        """The next pipeline to start: a promoted screen first, then the search's proposals (library defaults
        and TPE's alike screened at low fidelity when the search screens); None when what it proposes cannot
        finish in the time left."""
        while self.promotions:
            p = self.promotions.popleft()
            if self._fits(p):
                return p
            search.tell(p.trial, None)  # no time left for its full-fidelity run
        for _ in range(3):
            p = await search.ask()
            if self.fidelity and p.record:
                p.fidelity = dict(self.fidelity)
            if self._fits(p):
                return p
            self.skipped += 1
            search.tell(p.trial, None)
        return None

    def _baseline(self) -> Proposal | None:
        """A regularised linear model on a row subsample: seconds on any data, so a model always exists."""
        cls = self.task == CLASSIFICATION
        options = (("LogisticRegression", {"C": 0.1}), ("ElasticNet", {"alpha": 0.1, "l1_ratio": 0.5}),
                   ("SGD", {"alpha": 1e-3, "loss": "modified_huber" if cls else "huber", "penalty": "l2"}))
        for algo, params in options:
            if algo in self.cfg["algorithms"]:  # the user's allowed/blocked models hold for it too
                return Proposal(None, algo, "StandardScalerWrapper", params, baseline=True)
        return None

    def _launch(self, loop: ChildLoop[Proposal], p: Proposal, n: int, started: float | None = None,
                spec: dict[str, Any] | None = None) -> None:
        run_id = f"{self.parent}_{n}"
        if spec is None:
            spec = {**self._base_spec(), "kind": "iteration", "iteration": n, "algorithm": p.algorithm,
                    "scaler": p.scaler, "hyperparameters": p.hyperparameters, "baseline": p.baseline,
                    "early_stopping": True}
            if p.baseline:
                spec["max_train_rows"] = BASELINE_ROWS
            if p.fidelity:
                spec["fidelity"] = p.fidelity
            elif int(self.cfg.get("n_rows") or 0) <= BAG_MAX_ROWS:
                spec["bag"] = True  # the model predicts with its fold fits too (nbml.automl.model.AutoMLModel)
        if started is None:  # a new iteration (else one adopted from an earlier coordinator)
            name = pipeline_name(p.scaler, p.algorithm)
            share = p.fidelity["share"] if p.fidelity else 1.0
            self._record_child(run_id, n, CHILD_KIND, name + (f" [screen {share:.0%}]" if p.fidelity else ""), spec, {
                "iteration": str(n), "run_preprocessor": p.scaler, "run_algorithm": p.algorithm,
                "hyperparameters": json.dumps(p.hyperparameters), "pipeline_name": name,
                "primary_metric": self.metric, **({"baseline": "True"} if p.baseline else {}),
                "fidelity": f"{share:g}", **({"promoted_from": p.promoted_from} if p.promoted_from else {}),
            }, p.record)
        # The quick baseline may outlive the search when nothing else has finished (see _spare), never longer
        # than twice the experiment's time
        until = self._search_end() if not p.baseline or self.deadline is None \
            else self.deadline + max(60.0, self.deadline - self.created_at)
        timeout, reason = self._limit(f"Iteration {n}", started or time.time(), until=until)
        loop.launch(run_id, self._job(run_id, spec), p, timeout=timeout, timeout_reason=reason, started_at=started)

    def _finish(self, n: int, run_id: str, name: str, status: str, ensemble: bool = False,
                replay: bool = False, p: Proposal | None = None) -> Result:
        """Count a finished child; `replay` (a child an earlier coordinator saw end) writes nothing new."""
        scores = self._scores(run_id) if status == COMPLETED else None
        score = scores.get(self.metric) if scores else None
        if score is not None and math.isnan(score):
            score = None
        screen = bool(p and p.screen)
        result = Result(n, run_id, name, status, score, ensemble, screen)
        rec = self.store.get_run(run_id)
        if status == COMPLETED and not ensemble and rec and rec.get("ended_at"):
            took = float(rec["ended_at"]) - float(rec.get("started_at") or rec["created_at"])
            if not screen:
                self.durations.append(took)
            if p is not None and not p.baseline:
                self.costs[(p.algorithm, screen)].append((size_of(p.algorithm, p.hyperparameters), took))
        self.results[n] = result
        if screen:
            return result  # a screen's score is on part of the data: it ranks screens, nothing else
        # Ties go to an ensemble of several iterations, then to the earlier iteration, as in
        # AutoMLRun.get_best_child, so the model explained is the one get_output() returns (a stack ensemble that
        # falls back to the blend scores exactly as the blend, which comes first). On saturated data (many
        # iterations at AUC 1.0 out of fold) the ensemble, averaging several of them, is the safer model.
        if ensemble and status == COMPLETED:
            result.blend = is_blend(self.store.get_properties(run_id))
        if score is not None and (self.best is None or is_better(score, self.best.score, self.metric) or (
                score == self.best.score and wins_tie(result.blend, n, self.best.blend, self.best.iteration))):
            if self.best is None or is_better(score, self.best.score, self.metric):
                self.since_improvement = 0  # only a better score counts for early stopping, not a tie
            self.best = result
            if not replay:
                self.store.add_properties(self.parent, {"best_child_run_id": run_id, "best_score": str(score)})
                self.store.log_metric(self.parent, self.metric, "scalar", score, None)  # the best so far
            target = self.settings.get("experiment_exit_score")
            if target is not None and not is_better(float(target), score, self.metric):
                self.exit_reached = True
                self.ctx.log(f"exit score {target} reached by iteration {n} ({score})")
        else:
            self.since_improvement += 1
        return result

    def _proposal(self, rec: dict[str, Any], spec: dict[str, Any], number: int | None) -> Proposal:
        """The proposal an earlier coordinator launched as child `rec`."""
        props = self.store.get_properties(rec["run_id"])
        return Proposal(number, spec["algorithm"], spec["scaler"], spec["hyperparameters"],
                        child_config(rec).get("search_trial"), baseline=bool(spec.get("baseline")),
                        fidelity=spec.get("fidelity"), promoted_from=props.get("promoted_from"))

    async def search(self, loop: ChildLoop[Proposal], found: list[dict[str, Any]]) -> None:
        history: list[PastTrial] = []
        adopt: list[tuple[dict[str, Any], dict[str, Any], int | None]] = []
        for rec in found:  # iterations of an earlier coordinator of this run, in order
            spec, trial = _spec(rec), child_config(rec).get("search_trial")
            screen = bool(spec.get("fidelity"))
            if rec["status"] in TERMINAL:
                score = self._finish(int(rec["iteration"]), rec["run_id"], rec.get("display_name") or "",
                                     rec["status"], replay=True, p=self._proposal(rec, spec, None)).score
                if screen and score is not None:
                    self.rung.append(score)
                if trial:
                    history.append(PastTrial(trial, score, screen=screen))
            else:
                adopt.append((rec, spec, len(history) if trial else None))
                if trial:
                    history.append(PastTrial(trial, running=True, screen=screen))
        strategy = SearchStrategy(self.task, self.metric, self.cfg["algorithms"], self.cfg["n_rows"],
                                  self.cfg["n_features"], seed=int(self.settings.get("seed", 0)), history=history)
        for rec, spec, index in adopt:
            p = self._proposal(rec, spec, strategy.restored[index] if index is not None else None)
            self._launch(loop, p, int(rec["iteration"]), started=float(rec.get("started_at") or rec["created_at"]),
                         spec=spec)
        n_search = max(1, int(self.settings["iterations"]) - self._n_ensembles())
        launched = len(found)
        # under a time limit, a quick model first (unless the user asked for a single iteration)
        baseline = self._baseline() if self.deadline is not None and not found and n_search >= 2 else None
        search = AskAhead(strategy, lambda exc: self.ctx.log(f"the search failed to take a result in: {exc!r}"))
        try:
            await self._search_loop(loop, search, launched, n_search, baseline)
        finally:
            search.close()

    async def _search_loop(self, loop: ChildLoop[Proposal], search: AskAhead, launched: int, n_search: int,
                           baseline: Proposal | None) -> None:
        stopping = False
        while True:
            while not self._should_stop(launched, n_search) and loop.free:
                start = baseline or await self._next(search)
                baseline = None
                if start is None:
                    break  # nothing proposed can finish in the time left: wait for the running ones
                self._launch(loop, start, self.next_iteration)
                self.next_iteration += 1
                launched += 1
            if not len(loop):
                if self.skipped:
                    self.ctx.log(f"{self.skipped} proposed pipelines were not started: by the cost of their "
                                 "algorithm's finished iterations, they could not finish in the time left")
                return
            if not stopping and (self.exit_reached or self._cancelled() or self._remaining() - self._reserve() <= 0):
                stopping = True
                # out of time (or done): end the iterations still running; out of time, those the experiment's
                # limit stops end Failed naming it, as when their own limit comes first
                out_of_time = not (self.exit_reached or self._cancelled())
                loop.cancel_all(expire_before=time.time() + 1.0 if out_of_time else None,
                                spare=self._spare if out_of_time else None)
            for done in await loop.wait(0.5):
                p = done.payload
                n = int(done.run_id.rsplit("_", 1)[1])
                result = self._finish(n, done.run_id, pipeline_name(p.scaler, p.algorithm), done.status, p=p)
                if p.screen:
                    promote = not stopping and self._promote(result.score)
                    search.report_screen(p.trial, result.score, promote)
                    if promote:  # the same configuration at full fidelity, before any new proposal
                        self.promotions.append(dataclasses.replace(p, fidelity=None, promoted_from=done.run_id))
                else:
                    search.tell(p.trial, result.score)

    def _spare(self, p: Proposal) -> bool:
        """Out of time with no model yet (a loaded machine, slow data loading): the running baseline goes on
        until it ends, so the run still has a model; a user who asked for a time limit gets a model a little
        late rather than none. Every other iteration stops at the limit."""
        if not p.baseline or any(r.score is not None for r in self.results.values() if not r.screen):
            return False
        self.ctx.log("experiment_timeout_minutes ran out before any iteration finished: the baseline model "
                     "goes on until it ends, so the run has a model")
        return True

    # -- ensembles and explanation ----------------------------------------------------------------
    def _library(self) -> list[Result]:
        done = [r for r in self.results.values() if r.score is not None and not r.ensemble and not r.screen]
        sign = 1.0 if goal(self.metric) == "maximize" else -1.0
        done.sort(key=lambda r: -sign * float(r.score))  # type: ignore[arg-type]
        return done[:ENSEMBLE_LIBRARY]

    def _member_files(self, members: list[dict[str, Any]]) -> dict[str, bytes]:
        files = {}
        for m in members:
            out = self.ctx.run_dir(f"{self.parent}_{m['iteration']}") / "outputs"
            files[m["model"]] = (out / MODEL_FILE).read_bytes()
            files[m["predictions"]] = (out / PREDICTIONS_FILE).read_bytes()
        return files

    def _select(self, library: list[Result]) -> tuple[list[Result], list[float]] | None:
        """Caruana selection over the library's out-of-fold predictions, made once for both ensembles.

        Only the members it keeps (often 3-6 of 12) are shipped to the ensemble children: the models are the
        heavy part (a bagged forest is tens of MB) and each child would otherwise load every one of them.
        None when a member's predictions can't be read as this version writes them; the children then select.
        """
        import numpy as np

        from nbml.automl import ensemble

        preds, y_true, classes = [], None, None
        try:
            for r in library:
                with np.load(self.ctx.run_dir(r.run_id) / "outputs" / PREDICTIONS_FILE, allow_pickle=False) as npz:
                    preds.append(np.asarray(npz["pred"], dtype=float))
                    if y_true is None:
                        y_true, classes = npz["y_true"], npz["classes"]
        except (OSError, KeyError, ValueError):
            self.ctx.log_exception("ensemble selection: the members' predictions could not be read")
            return None
        if y_true is None or any(p.shape != preds[0].shape for p in preds) or len(y_true) != len(preds[0]) \
                or (self.task == CLASSIFICATION and (classes is None or not len(classes))):
            return None  # not predictions of the same rows: the children select, as before
        # normalized regression metrics divide by a constant: which members win doesn't depend on it
        weights, _ = ensemble.caruana(self.task, self.metric, y_true, preds,
                                      classes if self.task == CLASSIFICATION else None,
                                      rounds=ENSEMBLE_ROUNDS, init_size=ENSEMBLE_INIT)
        chosen = sorted(weights)
        return [library[i] for i in chosen], [weights[i] for i in chosen]

    async def ensembles(self, loop: ChildLoop[Proposal], found: list[dict[str, Any]]) -> None:
        kinds = [k for k, on in (("VotingEnsemble", self.settings.get("enable_voting_ensemble")),
                                 ("StackEnsemble", self.settings.get("enable_stack_ensemble"))) if on]
        names: dict[str, tuple[int, str]] = {}
        for rec in found:  # ensembles an earlier coordinator of this run recorded: each runs once
            spec, n = _spec(rec), int(rec["iteration"])
            names[rec["run_id"]] = (n, spec["ensemble"])
            kinds = [k for k in kinds if k != spec["ensemble"]]
            if rec["status"] in TERMINAL:
                self._finish(n, rec["run_id"], spec["ensemble"], rec["status"], ensemble=True, replay=True)
            else:
                await self._start_ensemble(loop, rec["run_id"], spec,
                                           float(rec.get("started_at") or rec["created_at"]))
        library = self._library()
        if kinds and self._n_ensembles() and len(library) >= 2 and not self._cancelled():
            t0 = time.monotonic()
            selected = await asyncio.to_thread(self._select, library)
            chosen = selected[0] if selected else library
            self.ctx.log(f"ensemble selection kept {len(chosen)} of the {len(library)} best iterations "
                         f"({time.monotonic() - t0:.2f} s)" if selected else "the ensembles select their members")
            members = [{"iteration": r.iteration, "model": f"members/{r.iteration}/{MODEL_FILE}",
                        "predictions": f"members/{r.iteration}/{PREDICTIONS_FILE}"} for r in chosen]
            for kind in kinds:
                n = self.next_iteration
                self.next_iteration += 1
                run_id = f"{self.parent}_{n}"
                spec = {**self._base_spec(), "kind": "ensemble", "ensemble": kind, "iteration": n, "members": members,
                        **({"weights": selected[1]} if selected else {})}
                self._record_child(run_id, n, CHILD_KIND, kind, spec, {
                    "iteration": str(n), "run_preprocessor": "", "run_algorithm": kind, "pipeline_name": kind,
                    "hyperparameters": json.dumps({"ensembled_iterations": [m["iteration"] for m in members]}),
                    "primary_metric": self.metric,
                })
                names[run_id] = (n, kind)
                await self._start_ensemble(loop, run_id, spec, None)
        for done in await loop.drain():
            n, kind = names[done.run_id]
            self._finish(n, done.run_id, kind, done.status, ensemble=True)

    async def _start_ensemble(self, loop: ChildLoop[Proposal], run_id: str, spec: dict[str, Any],
                              started: float | None) -> None:
        timeout, reason = self._limit(f"The {spec['ensemble']}", started or time.time(), 600.0, until=self.deadline)
        t0 = time.monotonic()
        files = await asyncio.to_thread(self._member_files, spec["members"])
        self.ctx.log(f"{spec['ensemble']}: {len(spec['members'])} members' files read, "
                     f"{sum(map(len, files.values())) / 1e6:.1f} MB ({time.monotonic() - t0:.2f} s)")
        job = self._job(run_id, spec, files)
        loop.launch(run_id, job, Proposal(None, spec["ensemble"], "", {}), timeout=timeout, timeout_reason=reason,
                    started_at=started)

    async def explain(self, loop: ChildLoop[Proposal], rec: dict[str, Any] | None) -> None:
        run_id = f"{self.parent}_explain"
        if rec is not None and rec["status"] in TERMINAL:  # explained before this coordinator took over
            status = rec["status"]
            best_id = _spec(rec).get("explained_run_id")
        else:
            if self.best is None or self._cancelled():
                return
            best_id = _spec(rec).get("explained_run_id") if rec else self.best.run_id
            spec = {**self._base_spec(), "kind": "explain", "model": f"explained/{MODEL_FILE}",
                    "explained_run_id": best_id}
            if rec is None:
                self._record_child(run_id, None, EXPLAIN_KIND, "ModelExplain", spec, {"explained_run_id": best_id})
            model = (self.ctx.run_dir(str(best_id)) / "outputs" / MODEL_FILE).read_bytes()
            started = float(rec.get("started_at") or rec["created_at"]) if rec else None
            timeout, reason = self._limit("The model explanation", started or time.time(), 1200.0)
            loop.launch(run_id, self._job(run_id, spec, {f"explained/{MODEL_FILE}": model}),
                        Proposal(None, "explain", "", {}), timeout=timeout, timeout_reason=reason, started_at=started)
            ended = await loop.drain()
            status = ended[0].status if ended else FAILED
        if status == COMPLETED and best_id:
            self.store.add_properties(str(best_id), {"model_explanation_run_id": run_id})
            self.store.add_properties(self.parent, {"model_explanation_run_id": run_id})

    # -- the whole run ---------------------------------------------------------------------------
    async def run(self) -> None:
        self.store.set_status(self.parent, RUNNING)
        found = existing_children(self.ctx, self.parent)
        # a continuation (AutoMLRun.continue_experiment) numbers its iterations on from the earlier run's
        self.next_iteration = max(found.next_iteration, int(self.cfg.get("first_iteration") or 0))
        groups: dict[str, list[dict[str, Any]]] = {"iteration": [], "ensemble": [], "explain": []}
        for rec in found.all:
            groups.setdefault(_spec(rec).get("kind", "iteration"), []).append(rec)
        concurrent = int(self.settings.get("max_concurrent_iterations") or 1)
        # Iterations run in warm workers where the target has them: imports and the training data once per
        # worker, not once per iteration (nbml.runs.warm); each iteration is still a child run of its own.
        # A data script may import its neighbours in the snapshot: its iterations load the data themselves.
        source = self.cfg["data"]
        pickled = "pickle" in source
        backend = warm_backend(self.ctx, self.ctx.backend_for(self.target), concurrent,
                               shared={source["pickle"]} if pickled else set(), preload=WARM_PRELOAD,
                               setup="nbml.automl.child:warm_setup" if pickled else None,
                               setup_files={WARM_DATA_FILE: json.dumps({"data": source, "n_jobs": self.cfg.get("n_jobs", 1)}).encode()}
                               if pickled else None,
                               config=self.cfg)
        loop: ChildLoop[Proposal] = ChildLoop(self.ctx, backend, concurrent)
        try:
            await self.search(loop, groups["iteration"])
            await self.ensembles(loop, groups["ensemble"])
            if self.settings.get("model_explainability"):
                await self.explain(loop, groups["explain"][0] if groups["explain"] else None)
        finally:
            await loop.close()
            await backend.close()
        self._conclude()

    def _conclude(self) -> None:
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
