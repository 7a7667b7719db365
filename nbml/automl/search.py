"""The search strategy: Optuna ask-and-tell, held in memory by the coordinator.

The space is conditional: an ``algorithm`` choice, then that algorithm's scaler and hyperparameters under
names prefixed by the algorithm. TPE runs multivariate with ``group=True`` (each algorithm's parameters
are modelled together, apart from the others) and ``constant_liar=True`` (iterations still running count
as bad results, so concurrent asks don't all land on the same spot). Every algorithm's default
configuration is enqueued first, cheapest and usually strongest first, so good models appear early.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import optuna

from nbml.automl import estimators
from nbml.automl.metrics import goal


@dataclasses.dataclass
class Proposal:
    """One pipeline to try."""

    trial: int
    algorithm: str
    scaler: str
    hyperparameters: dict[str, Any]


def _suggest(trial: optuna.Trial, algo: str, task: str, n_rows: int) -> tuple[str, dict[str, Any]]:
    scaler = trial.suggest_categorical(f"{algo}__scaler", list(estimators.scalers_for(algo)))
    params: dict[str, Any] = {}
    for name, (kind, low, high, log) in estimators.space(algo, task, n_rows).items():
        key = f"{algo}__{name}"
        if kind == "int":
            params[name] = trial.suggest_int(key, low, high, log=log)
        elif kind == "float":
            params[name] = trial.suggest_float(key, low, high, log=log)
        else:
            params[name] = trial.suggest_categorical(key, low)
    return str(scaler), params


class SearchStrategy:
    """Proposes pipelines and learns from their scores.

    Parameters
    ----------
    task, metric : str
        The AutoML task and the primary metric (its direction sets the study's).
    algorithms : list of str
        Names from `nbml.automl.estimators.ALGORITHMS`, in the order their defaults are tried.
    n_rows, n_features : int
        Size of the training data (some ranges and defaults depend on it).
    seed : int
        Seed of the sampler, so a rerun with the same results proposes the same pipelines.
    """

    def __init__(self, task: str, metric: str, algorithms: list[str], n_rows: int, n_features: int,
                 seed: int = 0) -> None:
        if not algorithms:
            raise ValueError("no algorithm left to search: check allowed_models / blocked_models")
        self.task = task
        self.metric = metric
        self.algorithms = list(algorithms)
        self.n_rows = n_rows
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=True,
                n_startup_trials=len(self.algorithms) + 4, n_ei_candidates=48,
            )
        self.study = optuna.create_study(direction=goal(metric), sampler=sampler)  # type: ignore[arg-type]
        self._trials: dict[int, optuna.Trial] = {}
        for algo in self.algorithms:
            scaler = "StandardScalerWrapper" if estimators.ALGORITHMS[algo].scale_sensitive else "MaxAbsScaler"
            params = estimators.default_config(algo, task, n_rows, n_features)
            fixed = {"algorithm": algo, f"{algo}__scaler": scaler, **{f"{algo}__{k}": v for k, v in params.items()}}
            self.study.enqueue_trial(fixed, skip_if_exists=False)

    def ask(self) -> Proposal:
        """The next pipeline to try (enqueued defaults first, then TPE's proposals)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = self.study.ask()
            algo = str(trial.suggest_categorical("algorithm", self.algorithms))
            scaler, params = _suggest(trial, algo, self.task, self.n_rows)
        self._trials[trial.number] = trial
        return Proposal(trial.number, algo, scaler, params)

    def tell(self, trial: int, value: float | None) -> None:
        """Report a finished trial's score; None (failed, timed out, canceled) marks it failed."""
        t = self._trials.pop(trial, None)
        if t is None:
            return
        if value is None or value != value:  # NaN
            self.study.tell(t, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(t, float(value))

    @property
    def pending(self) -> int:
        return len(self._trials)
