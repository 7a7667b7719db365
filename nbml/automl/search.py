"""The search strategy: Optuna ask-and-tell, held in memory by the coordinator.

The space is conditional: an ``algorithm`` choice, then that algorithm's scaler and hyperparameters under
names prefixed by the algorithm. TPE runs multivariate with ``group=True`` (each algorithm's parameters
are modelled together, apart from the others) and ``constant_liar=True`` (iterations still running count
as bad results, so concurrent asks don't all land on the same spot). Every algorithm's default
configuration is enqueued first, cheapest and usually strongest first, so good models appear early.

Each proposal carries a JSON record of its trial (parameters, distributions, whether it was a default);
the coordinator stores it with the child run, so a coordinator that takes over after a supervisor died
rebuilds the study from the stored children (`history`) and goes on without proposing a default twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from nbml._extras import missing_extra
from nbml.automl import estimators
from nbml.automl.metrics import goal

try:
    import optuna
except ImportError as exc:  # the automl extra is not installed
    raise missing_extra("automl", exc) from exc


@dataclasses.dataclass
class Proposal:
    """One pipeline to try."""

    trial: int | None  # None: not part of the study (the baseline)
    algorithm: str
    scaler: str
    hyperparameters: dict[str, Any]
    record: dict[str, Any] | None = None  # what rebuilds the trial in a new study (JSON)
    baseline: bool = False
    fidelity: dict[str, Any] | None = None  # a low-fidelity screen: {"folds": k, "rows": n or None, "share": s}
    promoted_from: str | None = None  # the screen (child run id) this full-fidelity run was promoted from

    @property
    def screen(self) -> bool:
        return self.fidelity is not None


@dataclasses.dataclass
class PastTrial:
    """A trial of an earlier coordinator of the same run: its record, and its score (or state)."""

    record: dict[str, Any]
    value: float | None = None
    running: bool = False
    screen: bool = False  # a low-fidelity screen: finished, it is a pruned trial with its screen score


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
    history : sequence of PastTrial
        Trials an earlier coordinator of this run proposed: finished ones are told to the study, running
        ones are added as running (their numbers, in order, are in `restored`; `tell` them when they end).
    """

    def __init__(self, task: str, metric: str, algorithms: list[str], n_rows: int, n_features: int,
                 seed: int = 0, history: Sequence[PastTrial] = ()) -> None:
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
        self._pending: set[int] = set()
        self._trials: dict[int, optuna.Trial] = {}
        self.restored: list[int] = [self._restore(past) for past in history]
        tried = {str(p.record["params"].get("algorithm")) for p in history if p.record.get("default")}
        self._defaults_left = 0
        for algo in self.algorithms:
            if algo in tried:
                continue  # its default configuration was proposed before this coordinator took over
            self._defaults_left += 1
            scaler = "StandardScalerWrapper" if estimators.ALGORITHMS[algo].scale_sensitive else "MaxAbsScaler"
            params = estimators.default_config(algo, task, n_rows, n_features)
            fixed = {"algorithm": algo, f"{algo}__scaler": scaler, **{f"{algo}__{k}": v for k, v in params.items()}}
            self.study.enqueue_trial(fixed, skip_if_exists=False)

    def _restore(self, past: PastTrial) -> int:
        params = past.record["params"]
        dists = {k: optuna.distributions.json_to_distribution(v) for k, v in past.record["distributions"].items()}
        intermediate: dict[int, float] = {}
        if past.running:
            state, value = optuna.trial.TrialState.RUNNING, None
        elif past.screen and past.value is not None and past.value == past.value:
            state, value, intermediate = optuna.trial.TrialState.PRUNED, None, {0: float(past.value)}
        elif past.value is None or past.value != past.value:
            state, value = optuna.trial.TrialState.FAIL, None
        else:
            state, value = optuna.trial.TrialState.COMPLETE, float(past.value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value,
                                                           state=state, intermediate_values=intermediate))
        number = len(self.study.trials) - 1
        if past.running:
            self._pending.add(number)
        return number

    def ask(self) -> Proposal:
        """The next pipeline to try (enqueued defaults first, then TPE's proposals)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = self.study.ask()
            algo = str(trial.suggest_categorical("algorithm", self.algorithms))
            scaler, params = _suggest(trial, algo, self.task, self.n_rows)
        self._pending.add(trial.number)
        self._trials[trial.number] = trial
        default = self._defaults_left > 0  # enqueued trials come out first, in order
        self._defaults_left = max(0, self._defaults_left - 1)
        record = {"params": dict(trial.params), "default": default,
                  "distributions": {k: optuna.distributions.distribution_to_json(d)
                                    for k, d in trial.distributions.items()}}
        return Proposal(trial.number, algo, scaler, params, record)

    def tell(self, trial: int | None, value: float | None) -> None:
        """Report a finished trial's score; None (failed, timed out, canceled) marks it failed."""
        if trial is None or trial not in self._pending:
            return
        self._pending.discard(trial)
        self._trials.pop(trial, None)
        if value is None or value != value:  # NaN
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, float(value))

    def report_screen(self, trial: int | None, value: float | None, promoted: bool) -> None:
        """A screened trial's low-fidelity score: promoted, the trial stays open until its full-fidelity
        score is told; not promoted, it ends pruned (TPE ranks pruned trials by their screen score, below
        every completed one)."""
        if trial is None or trial not in self._pending:
            return
        if value is None or value != value:
            self.tell(trial, None)
            return
        handle = self._trials.get(trial)
        if handle is None:  # a trial restored as running: a handle on it in the study
            handle = optuna.trial.Trial(self.study, self.study.trials[trial]._trial_id)
        handle.report(float(value), 0)
        if not promoted:
            self._pending.discard(trial)
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)

    @property
    def pending(self) -> int:
        return len(self._pending)


class AskAhead:
    """A `SearchStrategy` driven from an event loop: its calls run on one thread of their own, in the order
    they are made, and the next proposal is asked as soon as the previous one is taken, while iterations run.

    A TPE proposal costs tens of milliseconds of CPU, more as trials accumulate (Optuna's truncated normals
    are pure Python). Asked on the event loop, it held up every freed slot and the other slot's finalizing
    by that much; asked ahead, a freed slot takes a proposal that is ready. The proposal asked ahead has not
    seen the scores told since (constant liar counts its predecessors as running), which costs the search
    nothing it would notice. `tell` and `report_screen` return at once; an error in one goes to `on_error`.
    """

    def __init__(self, search: SearchStrategy, on_error: Callable[[BaseException], None]) -> None:
        self.search = search
        self._on_error = on_error
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nbml-search")
        self._ahead: concurrent.futures.Future[Proposal] | None = None

    async def ask(self) -> Proposal:
        ahead, self._ahead = self._ahead or self._pool.submit(self.search.ask), None
        proposal = await asyncio.wrap_future(ahead)
        self._ahead = self._pool.submit(self.search.ask)
        return proposal

    def _later(self, call: Callable[..., None], *args: Any) -> None:
        def check(done: concurrent.futures.Future[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                self._on_error(done.exception())  # type: ignore[arg-type]

        self._pool.submit(call, *args).add_done_callback(check)

    def tell(self, trial: int | None, value: float | None) -> None:
        self._later(self.search.tell, trial, value)

    def report_screen(self, trial: int | None, value: float | None, promoted: bool) -> None:
        self._later(self.search.report_screen, trial, value, promoted)

    def close(self) -> None:
        """Stop: a proposal still being asked ahead is dropped (its trial stays open in the study, unused)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
