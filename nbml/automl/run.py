"""AutoMLRun: the parent run of an AutoML experiment, as the notebook sees it.

Everything is read from the store and the run folders, so ``AutoMLRun(experiment, run_id)`` in a new
kernel gives the same answers as the object `submit` returned.
"""

from __future__ import annotations

import json
import math
import pickle
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from nbml._progress import Progress
from nbml.automl.child import MODEL_FILE
from nbml.automl.coordinator import CHILD_KIND, EXPLAIN_KIND
from nbml.automl.metrics import is_better, is_blend, is_screen, wins_tie
from nbml.errors import UserErrorException
from nbml.runs.kinds import register
from nbml.runs.run import Run
from nbml.runs.status import COMPLETED, FAILED, TERMINAL

_RULE = "*" * 95
HEADER = f"""{_RULE}
ITERATION: The iteration being evaluated.
PIPELINE:  A summary description of the pipeline being evaluated.
DURATION: Time taken for the current iteration.
METRIC: The result of computing score on the fitted pipeline.
BEST: The best observed score thus far.
{_RULE}

 ITERATION   PIPELINE                                       DURATION      METRIC      BEST"""


def _duration(rec: dict[str, Any]) -> str:
    start = float(rec.get("started_at") or rec.get("created_at") or 0.0)
    end = float(rec.get("ended_at") or time.time())
    secs = max(0, round(end - start))
    return f"{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"


def _fmt(value: float | None) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


class AutoMLRun(Run):
    """The parent run of an AutoML experiment (``Experiment.submit(AutoMLConfig(...))`` returns one)."""

    @property
    def primary_metric(self) -> str:
        return str(self.get_properties().get("primary_metric") or self.config["settings"]["primary_metric"])

    @property
    def task(self) -> str:
        return str(self.config["settings"]["task"])

    def _iterations(self, own_only: bool = False) -> list[dict[str, Any]]:
        """This run's iterations; unless `own_only`, after those of the runs it continues (continue_experiment),
        so that, as in the SDK's one continued run, ``get_output(iteration=3)`` and the best model cover all."""
        own = [c for c in self._store.children(self.id) if c["kind"] == CHILD_KIND]
        if own_only:
            return own
        earlier: list[dict[str, Any]] = []
        seen = {self.id}
        parent = self.config.get("continued_from")
        while parent and parent not in seen:
            seen.add(parent)
            earlier = [c for c in self._store.children(parent) if c["kind"] == CHILD_KIND] + earlier
            rec = self._store.get_run(parent)
            parent = json.loads(rec["config_json"]).get("continued_from") if rec else None
        return earlier + own

    def _score(self, run_id: str, metric: str) -> float | None:
        value = self._store.get_metrics(run_id, metric).get(metric)
        if isinstance(value, list):
            value = value[-1] if value else None
        try:
            value = float(value)  # a name logged with other kinds too holds values that aren't scores
        except (TypeError, ValueError):
            return None
        return None if math.isnan(value) else value

    def _screen(self, run_id: str) -> bool:
        """Whether a child was a low-fidelity screen of the search (property ``fidelity`` below 1)."""
        return is_screen(self._store.get_properties(run_id))

    def get_best_child(self, metric: str | None = None, onnx_compatible: bool = False, **_: Any) -> Run:
        """The completed iteration with the best `metric` (the primary metric by default)."""
        metric = metric or self.primary_metric
        best_rec, best, best_blend, best_order = None, None, False, -1
        # in iteration order (a continued run's earlier iterations first), so the position orders ties
        for order, rec in enumerate(self._iterations()):
            if rec["status"] != COMPLETED:
                continue
            props = self._store.get_properties(rec["run_id"])
            if is_screen(props):
                continue  # a low-fidelity screen is scored on part of the data and has no model
            score = self._score(rec["run_id"], metric)
            if score is None:
                continue
            blend = is_blend(props)
            # on a tie: an ensemble of several iterations, then the earlier iteration (the coordinator's rule)
            if best is None or is_better(score, best, metric) or (
                    score == best and wins_tie(blend, order, best_blend, best_order)):
                best_rec, best, best_blend, best_order = rec, score, blend, order
        if best_rec is None:
            status = self.get_status()
            raise UserErrorException(
                f"AutoML run {self.id} ({status}) has no completed iteration with metric {metric!r} yet"
                + ("; wait for it with run.wait_for_completion()." if status not in TERMINAL else ".")
            )
        return Run(self.experiment, best_rec["run_id"], best_rec)

    def get_output(self, iteration: int | None = None, metric: str | None = None,
                   return_onnx_model: bool = False, **_: Any) -> tuple[Run, Any]:
        """``(best_run, fitted_model)``: the best iteration by `metric`, or the given `iteration`.

        The fitted model is the pipeline refitted on all training rows (``predict``, ``predict_proba``).
        """
        if iteration is not None:
            rec = next((r for r in self._iterations() if r["iteration"] == int(iteration)), None)
            if rec is None:
                raise UserErrorException(f"AutoML run {self.id} has no iteration {iteration}.")
            if rec["status"] != COMPLETED:
                raise UserErrorException(f"iteration {iteration} of {self.id} is {rec['status']}; it has no model.")
            if self._screen(rec["run_id"]):
                raise UserErrorException(
                    f"iteration {iteration} of {self.id} was a low-fidelity screen (property fidelity="
                    f"{self._store.get_properties(rec['run_id']).get('fidelity')}): it has no model; its "
                    "configuration, if promoted, ran again at full fidelity (property promoted_from names it).")
            child = Run(self.experiment, rec["run_id"], rec)
        else:
            child = self.get_best_child(metric)
        path = self.workspace.run_dir(child.id) / "outputs" / MODEL_FILE
        if not path.is_file():
            raise UserErrorException(f"iteration {child.id} completed but its model file is missing ({path}).")
        with open(path, "rb") as fh:
            model = pickle.load(fh)
        return child, model

    def register_model(self, model_name: str | None = None, model_path: str | None = None,  # type: ignore[override]
                       tags: dict[str, Any] | None = None, description: str | None = None,
                       iteration: int | None = None, metric: str | None = None, **kwargs: Any) -> Any:
        """Register the best iteration's model (or `iteration`'s) as a model version; returns the Model."""
        child, _ = self.get_output(iteration=iteration, metric=metric)
        name = model_name or f"{self.experiment.name}-automl"
        self.model_id = name
        return child.register_model(name, model_path or f"outputs/{MODEL_FILE}", tags=tags, description=description,
                                    model_framework="ScikitLearn", **kwargs)

    def continue_experiment(self, X: Any = None, y: Any = None, X_valid: Any = None, y_valid: Any = None,
                            data_script: str | None = None, show_output: bool = False,
                            experiment_timeout_minutes: float | None = None, iterations: int | None = None,
                            training_data: Any = None, validation_data: Any = None,
                            label_column_name: str | None = None, **_: Any) -> AutoMLRun:
        """Run more iterations: a new AutoML run of this experiment with this run's settings, numbering its
        iterations on from this one's (the SDK reopens the same run; here the continuation is its own run,
        with property ``continued_from``; it answers for this run's iterations too: ``get_output(iteration=n)``,
        the best model, ``get_children_metrics()``). Without data it reuses this run's training data.

        `iterations` is how many more to run (default: this run's count again).
        """
        from nbml.automl.config import AutoMLConfig
        from nbml.automl.submit import DATA_FILE, submit_automl

        if self.get_status() not in TERMINAL:
            raise UserErrorException(f"AutoML run {self.id} is still {self.get_status()}; wait for it (or cancel it) "
                                     "before continue_experiment.")
        cfg = self.config
        settings = dict(cfg.get("settings") or {})
        if iterations is not None:
            settings["iterations"] = int(iterations)
        if experiment_timeout_minutes is not None:
            settings["experiment_timeout_minutes"] = experiment_timeout_minutes
        data: dict[str, Any] = {"X": X, "y": y, "X_valid": X_valid, "y_valid": y_valid,
                                "training_data": training_data, "validation_data": validation_data,
                                "data_script": data_script}
        if all(v is None for v in data.values()):
            source = cfg.get("data") or {}
            if "pickle" in source:
                with open(self.workspace.run_dir(self.id) / "automl" / DATA_FILE, "rb") as fh:
                    ds = pickle.load(fh)
                data.update(X=ds.X, y=ds.y, X_valid=ds.X_valid, y_valid=ds.y_valid)
            elif cfg.get("data_script_copy") or (cfg.get("source_directory") and "script" in source):
                data["data_script"] = cfg.get("data_script_copy") or str(Path(cfg["source_directory"]) / source["script"])
            else:
                raise UserErrorException(f"AutoML run {self.id} kept no training data to continue with; pass X and y "
                                         "(or training_data) to continue_experiment.")
        config = AutoMLConfig(**settings, **data, label_column_name=label_column_name, path=cfg.get("source_directory"),
                              compute_target=self._rec["compute_target"])
        done = [r["iteration"] for r in self._iterations() if r.get("iteration") is not None]
        first = max(int(cfg.get("first_iteration") or 0), max(done, default=-1) + 1)
        return submit_automl(self.experiment, config, show_output=show_output, first_iteration=first,
                             continued_from=self.id)

    def clean_preprocessor_cache(self) -> None:
        """Nothing to clean: nbml keeps no preprocessor cache (the SDK's call is accepted for its notebooks)."""

    def cancel_iteration(self, iteration: int) -> None:
        """Stop one running iteration; the search goes on with the others."""
        rec = next((r for r in self._iterations() if r["iteration"] == int(iteration)), None)
        if rec is None:
            raise UserErrorException(f"AutoML run {self.id} has no iteration {iteration} (yet).")
        self._store.request_cancel(rec["run_id"])

    def get_metrics(self, name: str | None = None, recursive: bool = False, run_type: str | None = None,
                    populate: bool = False) -> dict[str, Any]:
        """The parent's own metrics (the best score so far); with `recursive`, as the SDK answers for an AutoML
        run: {iteration run id: its metrics}, which notebooks key by the iteration number after the last ``_``."""
        if not recursive:
            return super().get_metrics(name)
        return {rec["run_id"]: self._store.get_metrics(rec["run_id"], name) for rec in self._iterations()}

    def get_children_metrics(self) -> Any:
        """A pandas DataFrame: one row per iteration (pipeline, status, duration, every metric)."""
        import pandas as pd

        rows = []
        for rec in self._iterations():
            props = self._store.get_properties(rec["run_id"])
            metrics = {k: (v[-1] if isinstance(v, list) and v else v)
                       for k, v in self._store.get_metrics(rec["run_id"]).items()}
            rows.append({"iteration": rec["iteration"], "run_id": rec["run_id"],
                         "pipeline": props.get("pipeline_name") or rec.get("display_name"),
                         "algorithm": props.get("run_algorithm"), "status": rec["status"],
                         "duration_s": (rec["ended_at"] or time.time()) - (rec["started_at"] or rec["created_at"]),
                         **metrics})
        frame = pd.DataFrame(rows)
        return frame.set_index("iteration").sort_index() if not frame.empty else frame

    # -- progress --------------------------------------------------------------------------------
    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True, timeout_seconds: float | None = None) -> dict[str, Any]:
        """Wait for the experiment; with show_output, print one table row as each iteration finishes."""
        if show_output:
            self._print_progress(sys.stdout, timeout_seconds)
        return super().wait_for_completion(show_output=False, raise_on_error=raise_on_error,
                                           timeout_seconds=timeout_seconds)

    def _print_progress(self, out: TextIO, timeout_seconds: float | None = None, poll: float = 0.5) -> None:
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        target = self._rec["compute_target"]
        out.write(f"Running on {'local machine' if target == 'local' else 'remote compute: ' + target}\n"
                  f"Parent Run ID: {self.id}\n{HEADER}\n")
        out.flush()
        printed: set[str] = set()
        metric = self.primary_metric
        best: float | None = None
        total = (self.config.get("settings") or {}).get("iterations")
        with Progress("Iterations", total=int(total) if total else None, unit="done") as progress:
            self._follow(out, progress, printed, metric, best, deadline, poll)

    def _follow(self, out: TextIO, progress: Progress, printed: set[str], metric: str, best: float | None,
                deadline: float | None, poll: float) -> None:
        from nbml.runs.follow import idle

        while True:
            status = self.get_status()
            finished = [r for r in self._iterations(own_only=True) if r["status"] in TERMINAL and r["run_id"] not in printed]
            for rec in sorted(finished, key=lambda r: r["ended_at"] or 0):
                printed.add(rec["run_id"])
                score = self._score(rec["run_id"], metric) if rec["status"] == COMPLETED else None
                if score is not None and not self._screen(rec["run_id"]) and (best is None or is_better(score, best, metric)):
                    best = score
                shown = _fmt(score) if rec["status"] == COMPLETED else rec["status"]
                name = (rec.get("display_name") or "")[:45]
                row = f" {rec['iteration']:>9}   {name:<45}  {_duration(rec):>9}  {shown:>10}  {_fmt(best):>8}\n"
                if rec["status"] == FAILED and rec.get("error"):
                    last = [ln for ln in str(rec["error"]).splitlines() if ln.strip()]
                    row += f"{'':>13}ERROR: {last[-1][:200] if last else ''}\n"
                progress.write(row, out)
                progress.update(1)
            if status in TERMINAL:
                return
            if deadline is not None and time.monotonic() > deadline:
                return
            idle(poll)


def explanation_folder(run: Run) -> Path | None:
    """Where the explanation of `run` (an AutoML iteration) was stored, or None."""
    store = run.workspace.store
    rid = store.get_properties(run.id).get("model_explanation_run_id")
    if rid is None:
        parent = store.get_run(run.id) or {}
        for child in store.children(parent.get("parent_id") or run.id):
            props = store.get_properties(child["run_id"])
            if child["kind"] == EXPLAIN_KIND and props.get("explained_run_id") == run.id:
                rid = child["run_id"]
    return None if rid is None else run.workspace.run_dir(rid) / "outputs"


register("automl", AutoMLRun)
