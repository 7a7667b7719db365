"""Cost-aware search: boosting fits stop early inside each fold, screens run at low fidelity and keep no
model, and screened trials that are not promoted end pruned in the study."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, make_regression
from threadpoolctl import threadpool_limits

from nbml import Experiment, Workspace
from nbml.automl import AutoMLConfig, estimators
from nbml.automl._early import EarlyStopped
from nbml.automl.child import run_iteration
from nbml.automl.data import from_sources
from nbml.automl.search import PastTrial, SearchStrategy
from nbml.errors import UserErrorException


def _spec(task: str, algo: str, params: dict, **extra: object) -> dict:
    return {"task": task, "algorithm": algo, "scaler": "MaxAbsScaler", "featurization": False, "seed": 0,
            "hyperparameters": params, "validation": {"n_cross_validations": 3}, **extra}


@pytest.mark.parametrize("algo", ["LightGBM", "XGBoost", "HistGradientBoosting"])
def test_boosting_stops_early_in_the_folds_and_refits_with_the_rounds_they_chose(algo: str) -> None:
    X, y = make_regression(n_samples=1200, n_features=8, noise=30.0, random_state=0)
    ds = from_sources(X=X, y=y)
    rounds = estimators.ROUNDS[algo]
    params = {**estimators.default_config(algo, "regression", 1200, 8), rounds: 1000, "learning_rate": 0.3}
    with threadpool_limits(limits=1):
        model, scores, _, _, notes = run_iteration(_spec("regression", algo, params, early_stopping=True), ds)
    # 1000 rounds at a high learning rate on noisy data: the validation split stops it long before
    assert 1 <= notes["refit_rounds"] < 500
    final = model.pipeline.steps[-1][1]
    assert not isinstance(final, EarlyStopped)  # the model kept is a plain booster on all rows
    assert final.get_params()[rounds] == notes["refit_rounds"]
    assert scores["r2_score"] > 0.5


def test_a_small_fold_fits_without_a_validation_split() -> None:
    X, y = load_digits(return_X_y=True)
    ds = from_sources(X=X[:300], y=y[:300])  # 200 training rows per fold: 20 would be held out, too few
    params = {**estimators.default_config("LightGBM", "classification", 300, 64), "n_estimators": 60}
    with threadpool_limits(limits=1):
        model, _, _, _, notes = run_iteration(_spec("classification", "LightGBM", params, early_stopping=True), ds)
    assert "refit_rounds" not in notes
    assert model.pipeline.steps[-1][1].get_params()["n_estimators"] == 60


def test_a_screen_scores_a_share_of_the_folds_and_keeps_no_model() -> None:
    X, y = load_digits(return_X_y=True)
    ds = from_sources(X=X, y=y)
    params = estimators.default_config("RandomForest", "classification", len(y), 64)
    spec = _spec("classification", "RandomForest", {**params, "n_estimators": 20},
                 fidelity={"folds": 1, "rows": None, "share": 0.25})
    with threadpool_limits(limits=1):
        model, scores, pred, index, _ = run_iteration(spec, ds)
    assert model is None
    assert len(index) == len(pred) == pytest.approx(len(y) / 3, abs=2)  # one of the three folds
    assert scores["AUC_weighted"] > 0.9


def test_screened_trials_end_pruned_unless_promoted_and_survive_a_new_coordinator() -> None:
    algos = ["LightGBM", "RandomForest"]
    s = SearchStrategy("classification", "AUC_weighted", algos, 500, 10)
    defaults = [s.ask() for _ in algos]
    for p in defaults:
        s.tell(p.trial, 0.9)
    kept, dropped = s.ask(), s.ask()
    s.report_screen(kept.trial, 0.95, promoted=True)
    s.report_screen(dropped.trial, 0.7, promoted=False)
    assert s.pending == 1  # the promoted one waits for its full-fidelity score
    s.tell(kept.trial, 0.93)
    states = {t.number: (t.state.name, t.intermediate_values) for t in s.study.trials}
    assert states[kept.trial] == ("COMPLETE", {0: 0.95})
    assert states[dropped.trial] == ("PRUNED", {0: 0.7})
    # a coordinator that takes over rebuilds a finished screen as pruned, and a running one can still be pruned
    later = SearchStrategy("classification", "AUC_weighted", algos, 500, 10, history=[
        PastTrial(dropped.record, 0.7, screen=True), PastTrial(kept.record, running=True, screen=True)])
    later.report_screen(later.restored[1], 0.6, promoted=False)
    assert [t.state.name for t in later.study.trials[:2]] == ["PRUNED", "PRUNED"]
    assert later.pending == 0
    assert later.ask().algorithm in algos


def test_fit_cost_counts_trees_and_rounds() -> None:
    assert estimators.size_of("LightGBM", {"n_estimators": 300}) == 300
    assert estimators.size_of("HistGradientBoosting", {"max_iter": 40}) == 40
    assert estimators.size_of("KNN", {"n_neighbors": 5}) == 1
    assert estimators.with_rounds("XGBoost", {"n_estimators": 500}, [100, 120]) == {"n_estimators": 121}
    assert estimators.with_rounds("XGBoost", {"n_estimators": 50}, [100]) == {"n_estimators": 50}
    assert np.isclose(estimators.with_rounds("KNN", {"n_neighbors": 3}, [7])["n_neighbors"], 3)


@pytest.mark.slow
def test_a_time_limited_search_screens_proposals_and_only_a_full_fidelity_model_is_best(ws: Workspace) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    cfg = AutoMLConfig(task="classification", X=X, y=y, n_cross_validations=6, experiment_timeout_minutes=1.25,
                       allowed_models=["KNN", "LogisticRegression"], max_concurrent_iterations=2,
                       enable_stack_ensemble=False)
    run = Experiment(ws, "screens").submit(cfg)
    run.wait_for_completion(raise_on_error=True)
    kids = {c.id: c for c in run.get_children() if c.type == "automl_iteration"}
    props = {rid: c.get_properties() for rid, c in kids.items()}
    screens = [rid for rid, p in props.items() if float(p.get("fidelity") or 1) < 1]
    assert screens, "TPE's proposals run first as low-fidelity screens"
    first = kids[screens[0]]
    assert props[screens[0]]["fidelity"] == "0.286"  # 2 of 6 folds, no refit: 2 of 7 fits
    assert "[screen 29%]" in first.display_name
    assert first.get_status() == "Completed" and "AUC_weighted" in first.get_metrics()
    with pytest.raises(UserErrorException, match="low-fidelity screen"):
        run.get_output(iteration=int(props[screens[0]]["iteration"]))
    for p in props.values():  # a promoted configuration names the screen it was promoted from
        if p.get("promoted_from"):
            assert p["promoted_from"] in screens and p["fidelity"] == "1"
            assert p["hyperparameters"] == props[p["promoted_from"]]["hyperparameters"]
    best, model = run.get_output()
    assert float(best.get_properties().get("fidelity") or 1) == 1
    assert run.get_properties()["best_child_run_id"] not in screens
    assert model.predict(X[:3]).shape == (3,)


def test_on_small_data_the_model_predicts_with_its_fold_fits_too() -> None:
    import pickle

    X, y = load_breast_cancer(return_X_y=True)
    ds = from_sources(X=X[:300], y=y[:300])
    params = {**estimators.default_config("LightGBM", "classification", 300, 30), "n_estimators": 30}
    with threadpool_limits(limits=1):
        plain, _, _, _, plain_notes = run_iteration(_spec("classification", "LightGBM", params), ds)
        bagged, scores, _, _, notes = run_iteration(_spec("classification", "LightGBM", params, bag=True), ds)
    assert plain.fold_pipelines == [] and "bagged" not in plain_notes
    assert notes["bagged"] == len(bagged.fold_pipelines) == 3  # one fit per CV fold, besides the refit on all rows
    # the refit on all rows is the same in both; the bagged model averages it with the fold fits
    rows = X[300:360]
    np.testing.assert_allclose(bagged.pipeline.predict_proba(rows), plain.predict_proba(rows))
    fold_mean = np.mean([p.predict_proba(rows) for p in [bagged.pipeline, *bagged.fold_pipelines]], axis=0)
    np.testing.assert_allclose(bagged.predict_proba(rows), fold_mean)
    assert not np.allclose(bagged.predict_proba(rows), plain.predict_proba(rows))
    assert list(bagged.predict(rows)) == list(bagged.classes_[np.argmax(fold_mean, axis=1)])
    restored = pickle.loads(pickle.dumps(bagged))  # what get_output() loads
    np.testing.assert_allclose(restored.predict_proba(rows), bagged.predict_proba(rows))
    assert "bagged with 3 fold fits" in repr(bagged)
    # a user's refit replaces the model: the fold fits of the search don't survive into its predictions
    refit = pickle.loads(pickle.dumps(bagged)).fit(X[:300], y[:300])
    assert refit.fold_pipelines == []
    np.testing.assert_allclose(refit.predict_proba(rows), refit.pipeline.predict_proba(rows))
    # a model pickled before bagging existed (no fold_pipelines attribute) still predicts with its one pipeline
    del restored.__dict__["fold_pipelines"]
    np.testing.assert_allclose(restored.predict_proba(rows), plain.predict_proba(rows))
    # a screen keeps no model, bagged or not
    screen = _spec("classification", "LightGBM", params, bag=True, fidelity={"folds": 1, "rows": None, "share": 0.25})
    with threadpool_limits(limits=1):
        assert run_iteration(screen, ds)[0] is None
    assert scores["AUC_weighted"] > 0.9


def test_the_search_proposes_each_default_once_then_tpe() -> None:
    algos = ["LightGBM", "RandomForest", "KNN"]
    s = SearchStrategy("classification", "AUC_weighted", algos, 500, 10)
    firsts = [s.ask() for _ in algos]
    assert [p.algorithm for p in firsts] == algos
    assert all(p.record and p.record["default"] for p in firsts)
    assert not s.ask().record["default"]  # TPE's proposals after the defaults


def test_ask_ahead_asks_off_the_event_loop_in_order_and_reports_errors() -> None:
    import asyncio
    import threading
    import time

    from nbml.automl.search import AskAhead

    algos = ["LightGBM", "RandomForest", "KNN"]
    s = SearchStrategy("classification", "AUC_weighted", algos, 500, 10)
    asked_on: list[str] = []
    real_ask, real_tell = s.ask, s.tell

    def slow_ask() -> object:  # a spy: the real ask, slowed to show the event loop is not held meanwhile
        asked_on.append(threading.current_thread().name)
        time.sleep(0.2)
        return real_ask()

    s.ask = slow_ask  # type: ignore[method-assign]
    errors: list[BaseException] = []

    async def go() -> tuple[list, int]:
        ahead = AskAhead(s, errors.append)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        first = await ahead.ask()
        ahead.tell(first.trial, 0.9)
        rest = [await ahead.ask() for _ in range(3)]
        ticker.cancel()

        def broken_tell(trial: object, value: object) -> None:  # named fake: a study that fails to take a result
            raise RuntimeError("study refused the result")

        s.tell = broken_tell  # type: ignore[method-assign]
        ahead.tell(rest[0].trial, 0.5)
        await asyncio.sleep(0.5)  # the tell runs after the ask asked ahead
        ahead.close()
        s.tell = real_tell  # type: ignore[method-assign]
        return [first, *rest], ticks

    proposals, ticks = asyncio.run(go())
    assert [p.algorithm for p in proposals[:3]] == algos
    assert [bool(p.record["default"]) for p in proposals] == [True, True, True, False]
    assert set(asked_on) == {"nbml-search_0"}  # every ask on the search's own thread, none on the loop's
    assert len(asked_on) >= 5  # the fifth asked ahead, while nothing waited for it
    assert ticks >= 40, "the event loop went on while the search asked (4 asks x 0.2 s)"
    assert s.study.trials[proposals[0].trial].value == 0.9  # the tell reached the study
    assert [str(e) for e in errors] == ["study refused the result"]
