"""Early termination policies: which running children to stop, from the primary metric's series.

A child's "interval" is how many times it has logged the primary metric. A policy is applied to a child
each time that count reaches a multiple of `evaluation_interval`, after the first `delay_evaluation`.
Pure functions of the series, so they are tested without running anything.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

Series = dict[str, list[float]]


class _Policy:
    policy_name = ""

    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 0) -> None:
        if evaluation_interval < 1 or delay_evaluation < 0:
            raise ValueError("evaluation_interval must be >= 1 and delay_evaluation >= 0")
        self.evaluation_interval = int(evaluation_interval)
        self.delay_evaluation = int(delay_evaluation)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.policy_name, **{k: v for k, v in vars(self).items()}}


class NoTerminationPolicy(_Policy):
    """Never stops a run early."""

    policy_name = "Default"


class BanditPolicy(_Policy):
    """Stop a run whose metric falls outside the slack of the best run at the same interval.

    Maximizing, a run stops when ``value < best / (1 + slack_factor)`` or ``value < best - slack_amount``.
    """

    policy_name = "Bandit"

    def __init__(self, evaluation_interval: int = 1, slack_factor: float | None = None,
                 slack_amount: float | None = None, delay_evaluation: int = 0) -> None:
        if (slack_factor is None) == (slack_amount is None):
            raise ValueError("BanditPolicy needs exactly one of slack_factor or slack_amount")
        super().__init__(evaluation_interval, delay_evaluation)
        self.slack_factor = slack_factor
        self.slack_amount = slack_amount


class MedianStoppingPolicy(_Policy):
    """Stop a run whose best value is worse than the median of the other runs' running averages."""

    policy_name = "MedianStopping"


class TruncationSelectionPolicy(_Policy):
    """Stop the worst `truncation_percentage` % of runs at each evaluation interval."""

    policy_name = "TruncationSelection"

    def __init__(self, truncation_percentage: int, evaluation_interval: int = 1, delay_evaluation: int = 0,
                 exclude_finished_jobs: bool = False) -> None:
        if not 1 <= truncation_percentage <= 99:
            raise ValueError("truncation_percentage must be between 1 and 99")
        super().__init__(evaluation_interval, delay_evaluation)
        self.truncation_percentage = int(truncation_percentage)
        self.exclude_finished_jobs = bool(exclude_finished_jobs)


def _due(n: int, policy: dict[str, Any]) -> bool:
    return n > policy.get("delay_evaluation", 0) and n % max(1, policy.get("evaluation_interval", 1)) == 0


def to_terminate(policy: dict[str, Any], running: Series, finished: Series, maximize: bool) -> set[str]:
    """The running children `policy` stops now (each evaluated at its latest interval)."""
    name = policy.get("name", "Default")
    if name == "Default":
        return set()
    sign = 1.0 if maximize else -1.0
    out: set[str] = set()
    for run_id, series in running.items():
        i = len(series)
        if i == 0 or not _due(i, policy):
            continue
        value = series[i - 1]
        if name == "Bandit":
            others = [s[i - 1] for s in (*running.values(), *finished.values()) if len(s) >= i]
            best = max(others, key=lambda v: sign * v)
            if policy.get("slack_factor") is not None:
                f = float(policy["slack_factor"])
                limit = best / (1 + f) if maximize else best * (1 + f)
            else:
                limit = best - sign * float(policy["slack_amount"])
            if sign * value < sign * limit:
                out.add(run_id)
        elif name == "MedianStopping":
            averages = [statistics.fmean(s[:i]) for r, s in (*running.items(), *finished.items())
                        if r != run_id and len(s) >= i]
            if averages:
                best_so_far = max(series, key=lambda v: sign * v)
                if sign * best_so_far < sign * statistics.median(averages):
                    out.add(run_id)
        elif name == "TruncationSelection":
            pool = dict(running)
            if not policy.get("exclude_finished_jobs"):
                pool.update(finished)
            values = sorted((sign * s[i - 1], r) for r, s in pool.items() if len(s) >= i)
            if len(values) >= 2:
                cut = math.floor(len(values) * policy["truncation_percentage"] / 100)
                if run_id in {r for _, r in values[:cut]}:
                    out.add(run_id)
    return out
