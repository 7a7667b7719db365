"""Termination policies and samplings, as pure functions of metric series."""

from __future__ import annotations

import numpy as np
import pytest

from nbml.hyperdrive import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    MedianStoppingPolicy,
    RandomParameterSampling,
    TruncationSelectionPolicy,
    choice,
    loguniform,
    normal,
    uniform,
)
from nbml.hyperdrive.parameters import Sampler
from nbml.hyperdrive.policy import to_terminate


def test_bandit_stops_runs_outside_the_slack_of_the_best() -> None:
    policy = BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=1).to_dict()
    running = {"a": [0.5, 0.9], "b": [0.5, 0.85], "c": [0.5, 0.7]}
    assert to_terminate(policy, running, {}, maximize=True) == {"c"}  # 0.7 < 0.9 / 1.1
    assert to_terminate(policy, {"a": [0.1]}, {}, maximize=True) == set()  # still in the delay
    amount = BanditPolicy(slack_amount=0.05).to_dict()
    assert to_terminate(amount, {"x": [1.0], "y": [1.2]}, {}, maximize=False) == {"y"}


def test_median_and_truncation() -> None:
    median = MedianStoppingPolicy().to_dict()
    assert to_terminate(median, {"slow": [0.1, 0.2]}, {"f1": [0.5, 0.6], "f2": [0.4, 0.9]}, True) == {"slow"}
    trunc = TruncationSelectionPolicy(truncation_percentage=50).to_dict()
    assert to_terminate(trunc, {"a": [0.2], "b": [0.9]}, {"c": [0.5], "d": [0.7]}, True) == {"a"}


def test_samplings() -> None:
    space = {"--lr": loguniform(-6, -1), "--batch": choice(16, 32), "--drop": uniform(0, 0.5)}
    s = Sampler(RandomParameterSampling(space).to_dict(), "maximize", seed=1)
    for _ in range(20):
        _, p = s.ask()
        assert np.exp(-6) <= p["--lr"] <= np.exp(-1) and p["--batch"] in (16, 32) and 0 <= p["--drop"] <= 0.5
    grid = Sampler(GridParameterSampling({"--a": choice(1, 2), "--b": choice("x", "y", "z")}).to_dict(), "maximize")
    combos = [grid.ask() for _ in range(7)]
    assert combos[-1] is None and len({str(c[1]) for c in combos[:6]}) == 6
    bayes = Sampler(BayesianParameterSampling(space).to_dict(), "minimize")
    token, p = bayes.ask()
    bayes.tell(token, 0.3)
    with pytest.raises(ValueError, match="choice"):
        GridParameterSampling({"--lr": uniform(0, 1)})
    with pytest.raises(ValueError, match="Bayesian"):
        BayesianParameterSampling({"--w": normal(0, 1)})
