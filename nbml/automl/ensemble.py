"""Ensembles built from the iterations' out-of-fold predictions (Caruana et al., 2004).

Voting: greedy forward selection with replacement, starting from the average of the best few models (sorted
initialisation: less overfitting of the selection to the out-of-fold rows than starting from one), adding at
each step the model whose inclusion most improves the primary metric of the averaged predictions; when
nothing beats the best single model, the blend is that model alone. Stacking: a
regularised linear meta-learner over the selected models' out-of-fold predictions, its own score measured
by cross-validation on those predictions (so it is not scored on what it was fitted to).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from nbml.automl import metrics
from nbml.automl.metrics import CLASSIFICATION


def caruana(
    task: str,
    metric: str,
    y_true: np.ndarray,
    oof: list[np.ndarray],
    classes: Any = None,
    rounds: int = 40,
    init_size: int = 1,
    y_range: float | None = None,
) -> tuple[dict[int, float], float]:
    """Weights (index into `oof` → weight summing to 1) and the ensemble's score on `metric`."""
    if not oof:
        raise ValueError("ensemble selection needs at least one model's predictions")

    def score(pred: np.ndarray) -> float:
        return metrics.score_one(task, metric, y_true, pred, classes, y_range)

    sign = 1.0 if metrics.goal(metric) == "maximize" else -1.0
    single = [score(p) for p in oof]
    ranked = sorted(range(len(oof)), key=lambda i: -sign * np.nan_to_num(single[i], nan=-sign * np.inf))
    chosen: list[int] = ranked[: max(1, init_size)]
    total: np.ndarray = sum(oof[i] for i in chosen)  # type: ignore[assignment]
    best_score = score(total / len(chosen))
    best_chosen = list(chosen)
    for _ in range(rounds):
        candidate_scores = [score((total + p) / (len(chosen) + 1)) for p in oof]
        k = int(np.nanargmax(sign * np.asarray(candidate_scores, dtype=float)))
        chosen.append(k)
        total = total + oof[k]
        if metrics.is_better(candidate_scores[k], best_score, metric):
            best_score, best_chosen = candidate_scores[k], list(chosen)
    if metrics.is_better(single[ranked[0]], best_score, metric):
        # the sorted initialisation (the `init_size` best averaged) scored below the best model alone, and no
        # step made up for it: the best single model, so the blend is never worse than it on this score
        best_score, best_chosen = single[ranked[0]], [ranked[0]]
    counts = Counter(best_chosen)
    n = sum(counts.values())
    return {i: c / n for i, c in sorted(counts.items())}, float(best_score)


def stack_or_blend(task: str, metric: str, y_true: np.ndarray, oof: list[np.ndarray], weights: dict[int, float],
                   classes: Any = None, y_range: float | None = None, seed: int = 0) -> tuple[Any, np.ndarray]:
    """The stack ensemble over the blend's members, or the blend itself when stacking doesn't score better.

    Returns (meta-learner or None for the blend, out-of-fold predictions). The blend is Caruana selection,
    which starts from the best single model, so whichever is returned is never worse than the best single
    model on the out-of-fold score.
    """
    chosen = sorted(weights)
    blend: np.ndarray = sum(weights[i] * oof[i] for i in chosen)  # type: ignore[assignment]
    meta, stacked = fit_stack(task, y_true, [oof[i] for i in chosen], classes, seed=seed)
    stack_score = metrics.score_one(task, metric, y_true, stacked, classes, y_range)
    blend_score = metrics.score_one(task, metric, y_true, blend, classes, y_range)
    if metrics.is_better(stack_score, blend_score, metric):
        return meta, stacked
    return None, blend


def fit_stack(
    task: str,
    y_true: np.ndarray,
    oof: list[np.ndarray],
    classes: Any,
    n_folds: int = 5,
    seed: int = 0,
) -> tuple[Any, np.ndarray]:
    """A meta-learner fitted on all out-of-fold predictions, and its own cross-validated predictions."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    from nbml.automl.model import stack_features

    features = stack_features(task, oof)
    if task == CLASSIFICATION:
        codes = np.searchsorted(classes, y_true)
        min_count = int(np.bincount(codes).min())
        folds = StratifiedKFold(max(2, min(n_folds, min_count)), shuffle=True, random_state=seed)
        meta = LogisticRegression(C=1.0, max_iter=2000)
        pred = cross_val_predict(meta, features, codes, cv=folds, method="predict_proba")
        meta.fit(features, codes)
        return meta, pred
    meta = RidgeCV(alphas=np.logspace(-3, 3, 13))
    pred = cross_val_predict(meta, features, y_true, cv=KFold(n_folds, shuffle=True, random_state=seed))
    meta.fit(features, y_true)
    return meta, np.asarray(pred, dtype=float)
