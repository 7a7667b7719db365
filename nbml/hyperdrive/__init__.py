"""HyperDrive: hyperparameter search over a training script, each trial a child run on any target."""

from nbml.hyperdrive.config import HyperDriveConfig, HyperDriveRunConfig, PrimaryMetricGoal
from nbml.hyperdrive.parameters import (
    BayesianParameterSampling,
    GridParameterSampling,
    RandomParameterSampling,
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from nbml.hyperdrive.policy import (
    BanditPolicy,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    TruncationSelectionPolicy,
)

__all__ = [
    "BanditPolicy", "BayesianParameterSampling", "GridParameterSampling", "HyperDriveConfig", "HyperDriveRun",
    "HyperDriveRunConfig",
    "MedianStoppingPolicy", "NoTerminationPolicy", "PrimaryMetricGoal", "RandomParameterSampling",
    "TruncationSelectionPolicy", "choice", "lognormal", "loguniform", "normal", "qlognormal", "qloguniform",
    "qnormal", "quniform", "randint", "uniform",
]


def __getattr__(name: str) -> object:
    if name == "HyperDriveRun":
        from nbml.hyperdrive.run import HyperDriveRun

        return HyperDriveRun
    raise AttributeError(f"module 'nbml.hyperdrive' has no attribute {name!r}")
