"""HyperDriveConfig: a script run's hyperparameters searched by a parent run of script children."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbml.errors import UserErrorException
from nbml.hyperdrive.parameters import _Sampling
from nbml.hyperdrive.policy import NoTerminationPolicy, _Policy

if TYPE_CHECKING:
    from nbml.hyperdrive.run import HyperDriveRun
    from nbml.runs.experiment import Experiment

DRIVER = "nbml.hyperdrive.coordinator"


class PrimaryMetricGoal(enum.Enum):
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


def without_sampled(arguments: Iterable[Any], names: Iterable[str]) -> list[str]:
    """The script's own arguments less those HyperDrive samples, so each child gets one value per name.

    ``["--kernel", "linear", "--penalty", 1.0, "--data", "d"]`` with ``{"--kernel", "--penalty"}`` sampled
    keeps ``["--data", "d"]``: the child then receives ``--kernel poly --penalty 0.5`` once, as in the SDK,
    where a sampled value replaces the script parameter of the same name. ``--name=value`` is dropped too.
    """
    sampled = set(names)
    args, out, i = [str(a) for a in arguments], [], 0
    while i < len(args):
        arg = args[i]
        if arg in sampled:
            nxt = args[i + 1] if i + 1 < len(args) else None
            i += 2 if nxt is not None and not _is_option(nxt) else 1
            continue
        if "=" in arg and arg.split("=", 1)[0] in sampled:
            i += 1
            continue
        out.append(arg)
        i += 1
    return out


def _is_option(token: str) -> bool:
    """A flag such as ``--lr`` (not a negative number such as ``-0.5``)."""
    if not token.startswith("-"):
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False


class HyperDriveConfig:
    """Search a training script's arguments.

    Parameters
    ----------
    run_config : ScriptRunConfig
        The script to run (``estimator=`` is accepted too); its arguments come first, then each sampled
        hyperparameter as ``name value`` (names as given, e.g. ``"--learning_rate"``).
    hyperparameter_sampling : RandomParameterSampling | GridParameterSampling | BayesianParameterSampling
    primary_metric_name : str
        The metric the script logs with ``run.log`` (logged several times, it is the series policies watch).
    primary_metric_goal : PrimaryMetricGoal
    max_total_runs, max_concurrent_runs : int
    max_duration_minutes : float, optional
    policy : BanditPolicy | MedianStoppingPolicy | TruncationSelectionPolicy | NoTerminationPolicy
    """

    def __init__(self, hyperparameter_sampling: _Sampling, primary_metric_name: str,
                 primary_metric_goal: PrimaryMetricGoal | str, max_total_runs: int, max_concurrent_runs: int = 1,
                 max_duration_minutes: float | None = 10080, policy: _Policy | None = None,
                 run_config: Any = None, estimator: Any = None, seed: int = 0, **_: Any) -> None:
        config = run_config if run_config is not None else estimator
        if config is None or not hasattr(config, "script"):
            raise UserErrorException("HyperDriveConfig needs run_config=ScriptRunConfig(...) (or estimator=...).")
        if not isinstance(hyperparameter_sampling, _Sampling):
            raise UserErrorException("hyperparameter_sampling must be RandomParameterSampling, GridParameterSampling "
                                     "or BayesianParameterSampling.")
        goal = primary_metric_goal.value if isinstance(primary_metric_goal, PrimaryMetricGoal) \
            else str(primary_metric_goal).upper()
        if goal not in ("MAXIMIZE", "MINIMIZE"):
            raise UserErrorException(f"primary_metric_goal={primary_metric_goal!r}: use PrimaryMetricGoal.MAXIMIZE "
                                     "or PrimaryMetricGoal.MINIMIZE.")
        policy = policy or NoTerminationPolicy()
        if not hyperparameter_sampling.supports_early_termination and not isinstance(policy, NoTerminationPolicy):
            raise UserErrorException("Bayesian sampling learns from every run to its end: use no policy with it.")
        if int(max_total_runs) < 1 or int(max_concurrent_runs) < 1:
            raise UserErrorException("max_total_runs and max_concurrent_runs must be at least 1.")
        self.run_config = config
        self.hyperparameter_sampling = hyperparameter_sampling
        self.primary_metric_name = primary_metric_name
        self.primary_metric_goal = goal
        limit = hyperparameter_sampling.max_runs()
        self.max_total_runs = min(int(max_total_runs), limit) if limit else int(max_total_runs)
        self.max_concurrent_runs = int(max_concurrent_runs)
        self.max_duration_minutes = max_duration_minutes
        self.policy = policy
        self.seed = seed

    def _submit(self, experiment: Experiment, tags: dict[str, Any] | None = None, show_output: bool = False,
                **_: Any) -> HyperDriveRun:
        from nbml.compute.targets import resolve_target
        from nbml.hyperdrive.run import HyperDriveRun
        from nbml.runs import containerinstance
        from nbml.runs.ids import new_run_id
        from nbml.runs.submit import check_script, data_bindings_of, start_recorded_run
        from nbml.snapshot import take_snapshot

        ws = experiment.workspace
        src = self.run_config
        # Trials run as one process each: refuse distributed settings before anything is recorded.
        from nbml.train._distributed import check_single_process

        if hasattr(src, "node_count"):  # an estimator
            check_single_process(src.node_count, src.process_count_per_node, src.distributed_training)
        elif getattr(src, "distributed_job_config", None) is not None:
            check_single_process(1, 1, src.distributed_job_config)
        source, script = check_script(src.source_directory, src.script)
        target_ref, limits = containerinstance.resolve(ws, src.compute_target, src.run_config)
        target = resolve_target(ws, target_ref)
        spec = src.environment.spec()
        if target.target_kind == "local" and not spec.docker_enabled:
            from nbml.envbuild import ensure_local_env

            ensure_local_env(ws.path / "envs", spec, lambda _line: None)
        # Data references in the script's arguments / run config: bound once here, made real per child.
        arguments, data_bindings = data_bindings_of(ws, src)
        snapshot = take_snapshot(ws, source)
        run_id = new_run_id(experiment.name)
        run_config = {
            "driver": DRIVER, "script": script,
            "arguments": without_sampled(arguments, self.hyperparameter_sampling.parameter_space),
            "source_directory": str(source), "snapshot_id": snapshot.id, "env": spec.to_dict(),
            "environment_name": src.environment.name,
            "max_run_duration_seconds": src.max_run_duration_seconds,
            "sampling": self.hyperparameter_sampling.to_dict(), "policy": self.policy.to_dict(),
            "primary_metric_name": self.primary_metric_name, "primary_metric_goal": self.primary_metric_goal,
            "max_total_runs": self.max_total_runs, "max_concurrent_runs": self.max_concurrent_runs,
            "max_duration_minutes": self.max_duration_minutes, "seed": self.seed,
        }
        if data_bindings:
            run_config["data"] = data_bindings
        if limits:
            run_config["resources"] = limits
        ws.store.insert_run(run_id, experiment.name, "hyperdrive", target.name, run_config, snapshot_id=snapshot.id)
        start_recorded_run(ws, run_id, tags, {
            "primary_metric_config": {"name": self.primary_metric_name, "goal": self.primary_metric_goal},
            "generator_config": self.hyperparameter_sampling.to_dict(), "policy_config": self.policy.to_dict(),
            "max_total_runs": self.max_total_runs, "max_concurrent_runs": self.max_concurrent_runs,
        })
        run = HyperDriveRun(experiment, run_id)
        if show_output:
            run.wait_for_completion(show_output=True)
        return run


class HyperDriveRunConfig(HyperDriveConfig):
    """The SDK's 2019 name: ``HyperDriveRunConfig(estimator=..., hyperparameter_sampling=..., policy=...,
    primary_metric_name=..., primary_metric_goal=..., max_total_runs=..., max_concurrent_runs=...)``."""

    def __init__(self, estimator: Any = None, hyperparameter_sampling: _Sampling | None = None,
                 primary_metric_name: str | None = None, primary_metric_goal: PrimaryMetricGoal | str | None = None,
                 max_total_runs: int | None = None, max_concurrent_runs: int = 1,
                 max_duration_minutes: float | None = 10080, policy: _Policy | None = None, **kwargs: Any) -> None:
        missing = [n for n, v in (("hyperparameter_sampling", hyperparameter_sampling),
                                  ("primary_metric_name", primary_metric_name),
                                  ("primary_metric_goal", primary_metric_goal),
                                  ("max_total_runs", max_total_runs)) if v is None]
        if missing:
            raise UserErrorException(f"HyperDriveRunConfig needs {', '.join(missing)}.")
        assert hyperparameter_sampling is not None and primary_metric_name is not None
        assert primary_metric_goal is not None and max_total_runs is not None
        super().__init__(hyperparameter_sampling, primary_metric_name, primary_metric_goal, max_total_runs,
                         max_concurrent_runs=max_concurrent_runs, max_duration_minutes=max_duration_minutes,
                         policy=policy, estimator=estimator, **kwargs)
