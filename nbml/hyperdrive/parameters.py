"""Parameter expressions (choice, uniform, ...) and the three samplings (random, grid, Bayesian).

Expressions keep the SDK's shape, ``["uniform", [0.05, 0.1]]``, and the SDK's meaning: ``loguniform(a, b)``
and ``qloguniform`` take exponents (``exp(uniform(a, b))``), ``randint(upper)`` draws from ``0..upper-1``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np

Expression = list[Any]  # [name, [args...]]


def choice(*options: Any) -> Expression:
    """One of the given values (a single list or range argument is unpacked)."""
    if len(options) == 1 and isinstance(options[0], (list, tuple, range)):
        options = tuple(options[0])
    if not options:
        raise ValueError("choice() needs at least one value")
    return ["choice", [list(options)]]


def randint(upper: int) -> Expression:
    """An integer in 0 .. upper-1."""
    return ["randint", [int(upper)]]


def uniform(min_value: float, max_value: float) -> Expression:
    return ["uniform", [float(min_value), float(max_value)]]


def quniform(min_value: float, max_value: float, q: float) -> Expression:
    return ["quniform", [float(min_value), float(max_value), float(q)]]


def loguniform(min_value: float, max_value: float) -> Expression:
    """exp(uniform(min_value, max_value)): the bounds are exponents, as in the SDK."""
    return ["loguniform", [float(min_value), float(max_value)]]


def qloguniform(min_value: float, max_value: float, q: float) -> Expression:
    return ["qloguniform", [float(min_value), float(max_value), float(q)]]


def normal(mu: float, sigma: float) -> Expression:
    return ["normal", [float(mu), float(sigma)]]


def qnormal(mu: float, sigma: float, q: float) -> Expression:
    return ["qnormal", [float(mu), float(sigma), float(q)]]


def lognormal(mu: float, sigma: float) -> Expression:
    return ["lognormal", [float(mu), float(sigma)]]


def qlognormal(mu: float, sigma: float, q: float) -> Expression:
    return ["qlognormal", [float(mu), float(sigma), float(q)]]


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def sample_one(expr: Expression, rng: np.random.Generator) -> Any:
    kind, args = expr
    if kind == "choice":
        return _py(args[0][int(rng.integers(len(args[0])))])
    if kind == "randint":
        return int(rng.integers(args[0]))
    if kind == "uniform":
        return float(rng.uniform(args[0], args[1]))
    if kind == "loguniform":
        return float(math.exp(rng.uniform(args[0], args[1])))
    if kind == "normal":
        return float(rng.normal(args[0], args[1]))
    if kind == "lognormal":
        return float(math.exp(rng.normal(args[0], args[1])))
    base = {"quniform": "uniform", "qloguniform": "loguniform", "qnormal": "normal", "qlognormal": "lognormal"}
    if kind in base:
        q = args[2]
        return float(round(sample_one([base[kind], args[:2]], rng) / q) * q)
    raise ValueError(f"unknown parameter expression {kind!r}")


def _check_space(space: dict[str, Any]) -> dict[str, Expression]:
    if not isinstance(space, dict) or not space:
        raise ValueError("the parameter space must be a non-empty dict like {'--lr': uniform(0.01, 0.1)}")
    for name, expr in space.items():
        if not (isinstance(expr, (list, tuple)) and len(expr) == 2 and isinstance(expr[0], str)):
            raise ValueError(f"parameter {name!r}: use an expression such as choice(...) or uniform(...)")
    return {k: list(v) for k, v in space.items()}


class _Sampling:
    sampling_name = ""
    supports_early_termination = True

    def __init__(self, parameter_space: dict[str, Any], properties: dict[str, Any] | None = None) -> None:
        self.parameter_space = _check_space(parameter_space)
        self.properties = dict(properties or {})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.sampling_name, "parameter_space": self.parameter_space, "properties": self.properties}

    def max_runs(self) -> int | None:
        return None


class RandomParameterSampling(_Sampling):
    """Independent random draws from every expression."""

    sampling_name = "RANDOM"


class GridParameterSampling(_Sampling):
    """Every combination of `choice` values, in order."""

    sampling_name = "GRID"

    def __init__(self, parameter_space: dict[str, Any], properties: dict[str, Any] | None = None) -> None:
        super().__init__(parameter_space, properties)
        bad = [k for k, v in self.parameter_space.items() if v[0] != "choice"]
        if bad:
            raise ValueError(f"grid sampling needs choice(...) for every parameter; {bad} are not choices")

    def max_runs(self) -> int:
        return math.prod(len(v[1][0]) for v in self.parameter_space.values())


class BayesianParameterSampling(_Sampling):
    """Each run's parameters chosen from the results so far (Optuna TPE, constant liar for concurrency)."""

    sampling_name = "BAYESIAN"
    supports_early_termination = False
    _ALLOWED = ("choice", "uniform", "quniform", "loguniform", "qloguniform", "randint")

    def __init__(self, parameter_space: dict[str, Any], properties: dict[str, Any] | None = None) -> None:
        from nbml._extras import require

        require("hyperdrive", "optuna")
        super().__init__(parameter_space, properties)
        bad = [k for k, v in self.parameter_space.items() if v[0] not in self._ALLOWED]
        if bad:
            raise ValueError(f"Bayesian sampling supports {', '.join(self._ALLOWED)}; {bad} use other expressions")


class Sampler:
    """The coordinator's side of a sampling: ask for parameters, tell the final metric."""

    def __init__(self, sampling: dict[str, Any], goal: str, seed: int = 0) -> None:
        self.kind = sampling["name"]
        self.space: dict[str, Expression] = sampling["parameter_space"]
        self.rng = np.random.default_rng(seed)
        self._grid = itertools.product(*(v[1][0] for v in self.space.values())) if self.kind == "GRID" else None
        self._trials: dict[int, int] = {}  # token -> Optuna trial number, while it runs (Bayesian)
        self.records: dict[int, dict[str, Any]] = {}  # token -> what rebuilds its trial (Bayesian)
        self._n = 0
        if self.kind == "BAYESIAN":
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
            self.study = optuna.create_study(direction=goal, sampler=sampler)  # type: ignore[arg-type]

    def _suggest(self, trial: Any, name: str, expr: Expression) -> Any:
        kind, args = expr
        if kind == "choice":
            return _py(args[0][trial.suggest_int(name + "#index", 0, len(args[0]) - 1)]) if len(args[0]) > 1 \
                else _py(args[0][0])
        if kind == "randint":
            return trial.suggest_int(name, 0, args[0] - 1)
        if kind == "uniform":
            return trial.suggest_float(name, args[0], args[1])
        if kind == "quniform":
            return float(round(trial.suggest_float(name, args[0], args[1]) / args[2]) * args[2])
        value = trial.suggest_float(name, math.exp(args[0]), math.exp(args[1]), log=True)
        return float(round(value / args[2]) * args[2]) if kind == "qloguniform" else value

    def ask(self) -> tuple[int, dict[str, Any]] | None:
        """(token, parameters), or None when a grid is exhausted."""
        self._n += 1
        if self._grid is not None:
            combo = next(self._grid, None)
            return None if combo is None else (self._n, {k: _py(v) for k, v in zip(self.space, combo, strict=True)})
        if self.kind == "BAYESIAN":
            trial = self.study.ask()
            params = {k: self._suggest(trial, k, v) for k, v in self.space.items()}
            self._trials[self._n] = trial.number
            self.records[self._n] = {"params": dict(trial.params), "distributions": {
                k: optuna_json(d) for k, d in trial.distributions.items()}}
            return self._n, params
        return self._n, {k: sample_one(v, self.rng) for k, v in self.space.items()}

    def resume(self, past: list[tuple[dict[str, Any] | None, float | None, bool]]) -> list[int]:
        """Replay an earlier coordinator's draws, (record, final value, still running) each, in order.

        Random and grid draws are a pure function of the seed and their count, so they are drawn again and
        dropped; Bayesian trials are re-added to the study from their records. Returns each draw's token.
        """
        tokens = []
        for record, value, running in past:
            if self.kind != "BAYESIAN" or record is None:
                asked = self.ask()
                tokens.append(asked[0] if asked else self._n)
                continue
            import optuna

            self._n += 1
            state = optuna.trial.TrialState.RUNNING if running else (
                optuna.trial.TrialState.FAIL if value is None else optuna.trial.TrialState.COMPLETE)
            dists = {k: optuna.distributions.json_to_distribution(v) for k, v in record["distributions"].items()}
            self.study.add_trial(optuna.trial.create_trial(params=record["params"], distributions=dists, state=state,
                                                           value=None if running or value is None else value))
            if running:
                self._trials[self._n] = len(self.study.trials) - 1
            tokens.append(self._n)
        return tokens

    def tell(self, token: int | None, value: float | None) -> None:
        trial = self._trials.pop(token, None) if token is not None else None
        if trial is None:
            return
        import optuna

        if value is None or value != value:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, float(value))


def optuna_json(distribution: Any) -> str:
    import optuna

    return optuna.distributions.distribution_to_json(distribution)
