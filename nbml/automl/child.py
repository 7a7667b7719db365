"""The iteration executable: ``python -m nbml.automl.child spec.json``, run in a job folder on the target.

One process per child run. According to the spec's ``kind`` it

- ``iteration``: builds the pipeline, cross-validates it (or scores it on the holdout / validation data),
  refits it on all training rows, logs every metric of the task through ``Run.get_context()``;
- ``ensemble``: blends earlier iterations (voting: Caruana selection; stacking: a meta-learner) from their
  out-of-fold predictions, shipped in the job folder with their fitted models;
- ``explain``: computes SHAP explanations of a fitted model.

Everything it makes goes to ``./outputs``: ``model.pkl``, ``predictions.npz`` (out-of-fold predictions and
their row indices), ``scores.json``, and for explanations ``explanation.npz``/``explanation.json``.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

OUTPUTS = Path("outputs")
MODEL_FILE = "model.pkl"
PREDICTIONS_FILE = "predictions.npz"
SCORES_FILE = "scores.json"
#: Caruana selection starts from the average of this many best members (sorted initialisation)
ENSEMBLE_INIT = 5
#: Caruana selection's forward steps
ENSEMBLE_ROUNDS = 40


#: What a warm worker imports once, before it runs any iteration (nbml.runs.warm_worker).
WARM_PRELOAD = ["numpy", "pandas", "scipy.stats", "sklearn.base", "sklearn.pipeline", "sklearn.preprocessing",
                "sklearn.metrics", "sklearn.ensemble", "sklearn.linear_model", "sklearn.neighbors", "sklearn.tree",
                "sklearn.model_selection", "threadpoolctl", "lightgbm", "xgboost", "nbml.automl.model",
                "nbml.automl.data", "nbml.automl.metrics", "nbml.automl.ensemble", "nbml.runs.script_run"]
#: The data source a warm worker loads in its setup (written in the worker's folder only).
WARM_DATA_FILE = "automl_data.json"
#: Datasets a warm worker loaded once (by data source), inherited by each iteration it forks.
_LOADED: dict[str, Any] = {}
#: The OpenMP/BLAS thread limit a warm worker set for every iteration it forks (None: each sets its own).
_THREADS: int | None = None


def _data_key(source: dict[str, Any]) -> str:
    return json.dumps(source, sort_keys=True)


def load_dataset(spec: dict[str, Any], base: Path = Path(".")) -> Any:
    """The Dataset a spec points at: a pickle shipped with the job, or the user's data script.

    In a warm worker's iteration it is the one the worker loaded (or, failing that, read from the worker's
    folder, where the data is shipped once instead of with every iteration).
    """
    from nbml.automl import data

    source = spec["data"]
    key = _data_key(source)
    if key in _LOADED:
        return _LOADED[key]
    name = source["pickle"] if "pickle" in source else source["script"]
    worker = os.environ.get("NBML_WARM_WORKER_DIR")
    if worker and not (base / name).exists():
        base = Path(worker)
    if "pickle" in source:
        with open(base / source["pickle"], "rb") as fh:
            return pickle.load(fh)
    return data.from_sources(data_script=str(base / source["script"]))


def warm_setup(folder: Path) -> None:
    """A warm worker's setup: load the training data once and size the thread pools once; every iteration it
    forks starts with both (threadpoolctl takes 40-80 ms per call, as long as many screens' fit)."""
    global _THREADS
    from threadpoolctl import threadpool_limits

    setup = json.loads((folder / WARM_DATA_FILE).read_text())
    _LOADED[_data_key(setup["data"])] = load_dataset({"data": setup["data"]}, folder)
    threadpool_limits(limits=int(setup["n_jobs"]))
    _THREADS = int(setup["n_jobs"])


def _score_rows(spec: dict[str, Any], ds: Any) -> tuple[list[tuple[np.ndarray, np.ndarray]] | None, np.ndarray]:
    """The CV/holdout splits (None with external validation data) and the labels they are scored on."""
    from nbml.automl import data

    if ds.X_valid is not None:
        return None, np.asarray(ds.y_valid)
    v = spec["validation"]
    folds = data.splits(spec["task"], ds.y, v.get("n_cross_validations"), v.get("validation_size"), spec["seed"])
    rows = np.concatenate([te for _, te in folds])
    return folds, rows


def _classes_and_range(spec: dict[str, Any], ds: Any) -> tuple[Any, float | None]:
    if spec["task"] == "classification":
        return np.unique(ds.y), None
    return None, float(np.ptp(ds.y.astype(float))) or 1.0


def run_iteration(spec: dict[str, Any], ds: Any
                  ) -> tuple[Any, dict[str, float], np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Fit and score one pipeline; returns (fitted model, metrics, predictions, their row indices, notes).

    A spec with ``fidelity`` is a low-fidelity screen: it is scored on the first ``folds`` folds only (each
    fold's training rows capped at ``rows``) and not refitted, so its model is None. With ``early_stopping``
    the boosting algorithms stop each fold's fit on a validation split of its rows, and the refit on all
    rows builds the rounds the folds chose (``notes["refit_rounds"]``). With ``bag`` (small data) the model
    keeps the fold fits too and predicts with their mean and the refit's (``notes["bagged"]``).
    """
    from nbml.automl import data, estimators, metrics
    from nbml.automl.model import AutoMLModel, make_pipeline

    task = spec["task"]
    classes, y_range = _classes_and_range(spec, ds)
    fidelity = spec.get("fidelity") or {}
    stop_early = bool(spec.get("early_stopping")) and spec["algorithm"] in estimators.ROUNDS
    rounds: list[int] = []
    notes: dict[str, Any] = {}

    def new(params: dict[str, Any], early: bool) -> AutoMLModel:
        pipe = make_pipeline(task, spec["algorithm"], spec["scaler"], params, spec.get("featurization", True),
                             spec.get("n_jobs", 1), spec["seed"], early_stopping=early)
        return AutoMLModel(task, pipe, classes)

    # the baseline fits on a subsample, so that it is quick on any data; a screen on a share of the rows
    cap = spec.get("max_train_rows") or fidelity.get("rows")

    def fit(rows: np.ndarray | None, params: dict[str, Any] | None = None, early: bool = False) -> AutoMLModel:
        params = spec["hyperparameters"] if params is None else params
        if rows is None:  # all rows
            if not cap or len(ds.y) <= cap:
                return new(params, early).fit(ds.X, ds.y)
            rows = np.arange(len(ds.y))
        if cap and len(rows) > cap:
            rows = np.sort(np.random.default_rng(spec["seed"]).choice(rows, int(cap), replace=False))
        model = new(params, early).fit(data.take(ds.X, rows), ds.y[rows])
        used = getattr(model.pipeline.steps[-1][1], "rounds_", None)
        if used is not None:
            rounds.append(int(used))
        return model

    folds, rows = _score_rows(spec, ds)
    model: AutoMLModel | None
    if folds is None:
        model = fit(None, early=stop_early)
        pred = model.raw_predictions(ds.X_valid)
        y_true, index = np.asarray(ds.y_valid), None
        if fidelity:
            model = None  # a screen (on a share of the rows) keeps no model
    else:
        if fidelity.get("folds"):
            folds = folds[: int(fidelity["folds"])]
            rows = np.concatenate([te for _, te in folds])
        width = len(classes) if classes is not None else 0
        oof = np.full((len(ds.y), width) if width else len(ds.y), np.nan)
        fold_models = []
        for train, test in folds:
            fold_model = fit(train, early=stop_early)
            oof[test] = fold_model.raw_predictions(data.take(ds.X, test))
            fold_models.append(fold_model)
        pred, y_true, index = oof[rows], ds.y[rows], rows
        if fidelity:
            model = None  # a screen: the coordinator refits only the configurations it promotes
        else:
            params = estimators.with_rounds(spec["algorithm"], spec["hyperparameters"], rounds)
            if rounds:
                notes["refit_rounds"] = params[estimators.ROUNDS[spec["algorithm"]]]
            model = fit(None, params)
            if spec.get("bag"):  # small data: predict with the refit and the fold models together
                model.bag(fold_models)
                notes["bagged"] = len(fold_models)
    scores = metrics.score(task, y_true, pred, classes, y_range)
    return model, scores, pred, index, notes


def run_ensemble(spec: dict[str, Any], ds: Any) -> tuple[Any, dict[str, float], np.ndarray, np.ndarray | None]:
    """Blend the member iterations shipped with the job (voting or stacking)."""
    from nbml.automl import ensemble, metrics
    from nbml.automl.model import EnsembleModel

    task, metric = spec["task"], spec["primary_metric"]
    classes, y_range = _classes_and_range(spec, ds)
    folds, rows = _score_rows(spec, ds)
    y_true = np.asarray(ds.y_valid) if folds is None else ds.y[rows]
    members = spec["members"]
    preds = []
    for m in members:
        with np.load(m["predictions"], allow_pickle=False) as npz:
            preds.append(np.asarray(npz["pred"], dtype=float))
    if spec.get("weights") is not None:  # selected by the coordinator, which shipped only the chosen members
        weights = dict(enumerate(float(w) for w in spec["weights"]))
    else:
        weights, _ = ensemble.caruana(task, metric, y_true, preds, classes, rounds=spec.get("rounds", ENSEMBLE_ROUNDS),
                                      init_size=spec.get("init_size", ENSEMBLE_INIT), y_range=y_range)
    chosen = sorted(weights)
    models = {}
    for i in chosen:  # the models of the members selected, only: each may be tens of MB
        with open(members[i]["model"], "rb") as fh:
            models[i] = pickle.load(fh)
    meta = None
    if spec["ensemble"] == "StackEnsemble":
        # never worse than the best single model on the out-of-fold score: the blend when stacking isn't better
        meta, pred = ensemble.stack_or_blend(task, metric, y_true, preds, weights, classes, y_range, spec["seed"])
    if meta is not None:
        model = EnsembleModel(task, [models[i] for i in chosen], [weights[i] for i in chosen], classes, meta=meta,
                              kind="StackEnsemble")
    else:
        pred = sum(weights[i] * preds[i] for i in chosen)  # type: ignore[assignment]
        model = EnsembleModel(task, [models[i] for i in chosen], [weights[i] for i in chosen], classes,
                              kind=spec["ensemble"])
    model.member_iterations = [members[i]["iteration"] for i in chosen]
    scores = metrics.score(task, y_true, pred, classes, y_range)
    return model, scores, pred, None if folds is None else rows


def run_explain(spec: dict[str, Any], ds: Any) -> dict[str, Any]:
    """SHAP explanations of the model shipped as ``spec["model"]``; returns what it wrote."""
    from nbml.automl.explain import explain_model, save_explanation

    with open(spec["model"], "rb") as fh:
        model = pickle.load(fh)
    result = explain_model(model, ds, max_rows=spec.get("max_rows", 50), seed=spec["seed"])
    save_explanation(result, OUTPUTS)
    return result


def _plain(values: Any) -> np.ndarray:
    """Labels as an array np.load reads without pickle (object labels are saved as text)."""
    arr = np.asarray([] if values is None else values)
    return arr.astype(str) if arr.dtype.kind == "O" else arr


def _save(model: Any, scores: dict[str, float], pred: np.ndarray, index: np.ndarray | None,
          y_true: Any = None, classes: Any = None) -> None:
    OUTPUTS.mkdir(exist_ok=True)
    if model is not None:  # a low-fidelity screen has no model
        with open(OUTPUTS / MODEL_FILE, "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
    # y_true and classes let the run page and RunDetails draw the iteration's charts (nbml.automl.iteration_charts)
    np.savez(OUTPUTS / PREDICTIONS_FILE, pred=pred, index=np.asarray([] if index is None else index, dtype=np.int64),
             y_true=_plain(y_true), classes=_plain(classes))
    (OUTPUTS / SCORES_FILE).write_text(json.dumps(scores, allow_nan=True))


def execute(spec: dict[str, Any], run: Any) -> dict[str, Any]:
    """Run the spec's work and log through `run` (anything with ``log`` and ``add_properties``)."""
    from threadpoolctl import threadpool_limits

    # OpenMP/BLAS pools sized to this iteration's share of the cores, whatever the environment says
    threads = int(spec.get("n_jobs", 1))
    if threads == _THREADS:  # sized already by the warm worker this iteration was forked from
        return _execute(spec, run)
    with threadpool_limits(limits=threads):
        return _execute(spec, run)


def _execute(spec: dict[str, Any], run: Any) -> dict[str, Any]:
    started = time.time()
    ds = load_dataset(spec)
    kind = spec.get("kind", "iteration")
    if kind == "explain":
        result = run_explain(spec, ds)
        run.add_properties({"model_explanation": "True", "explained_run_id": spec.get("explained_run_id", "")})
        return {"features": len(result["overall_imp"])}
    if kind == "ensemble":
        model, scores, pred, index = run_ensemble(spec, ds)
        run.add_properties({"ensembled_iterations": json.dumps(model.member_iterations),
                            "ensemble_weights": json.dumps(model.weights),
                            **({"stack_replaced_by_blend": "True"}
                               if spec["ensemble"] == "StackEnsemble" and model.meta is None else {})})
    else:
        model, scores, pred, index, notes = run_iteration(spec, ds)
        if notes.get("refit_rounds"):
            run.add_properties({"refit_rounds": str(notes["refit_rounds"])})
        if notes.get("bagged"):
            run.add_properties({"bagged_fold_models": str(notes["bagged"])})
    y_true = np.asarray(ds.y_valid) if index is None else np.asarray(ds.y)[index]
    _save(model, scores, pred, index, y_true, _classes_and_range(spec, ds)[0])
    for name, value in scores.items():
        run.log(name, value)
    run.log("fit_time", time.time() - started)
    return scores


def _note_unraisable(unraisable: Any) -> None:
    """A destructor's error, on one line with no traceback header: it must not pass for the run's error."""
    exc = unraisable.exc_value
    where = f" in {unraisable.object!r}" if unraisable.object is not None else ""
    print(f"(ignored{where}: {type(exc).__name__}: {exc})", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m nbml.automl.child SPEC.json", file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        spec = json.load(fh)
    os.environ.setdefault("OMP_NUM_THREADS", str(spec.get("n_jobs", 1)))
    from nbml import Run

    run = Run.get_context()
    sys.unraisablehook = _note_unraisable
    error: str | None = None
    try:
        scores = execute(spec, run)
    except Exception:
        error = traceback.format_exc()
    if error is not None:
        # The run's error is the last traceback of its output. Objects the failure left in reference cycles
        # (library handles, a data script's objects) are destroyed now, while their modules still work, and
        # a destructor that fails says so in one line: the real exception is printed last.
        gc.collect()
        sys.stdout.flush()
        sys.stderr.write(error)
        sys.stderr.flush()
        return 1
    metric = spec.get("primary_metric")
    if metric in scores:
        print(f"{metric}: {scores[metric]:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
