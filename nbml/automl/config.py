"""AutoMLConfig: the SDK's settings, the 2018 names and the later ones, checked before anything runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.automl import estimators, metrics
from nbml.automl.errors import ConfigException

if TYPE_CHECKING:
    from nbml.automl.run import AutoMLRun
    from nbml.runs.experiment import Experiment

# 2018 name -> later name
_RENAMED = {
    "max_time_sec": "experiment_timeout_minutes",
    "concurrent_iterations": "max_concurrent_iterations",
    "preprocess": "featurization",
    "blacklist_models": "blocked_models",
    "whitelist_models": "allowed_models",
    "exit_score": "experiment_exit_score",
}
# accepted for compatibility; they change nothing here
_IGNORED = {"name", "debug_log", "verbosity", "spark_context", "enable_onnx_compatible_models", "enable_tf",
            "enable_dnn", "enable_cache", "vm_type", "auto_blacklist", "enable_code_generation",
            "enable_subsampling", "experiment_timeout_hours", "model_explainability_sample", "cost_mode",
            "ensemble_iterations", "enable_feature_sweeping", "cv_split_indices", "weight_column_name",
            "sample_weight", "positive_label", "test_size", "test_data"}


def _project_folder(path: str | None) -> str | None:
    """The SDK created the project folder when it didn't exist yet; notebooks rely on that."""
    if path is None:
        return None
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigException(f"path={path!r} is a file; give the project folder (it is created if missing).")
    folder.mkdir(parents=True, exist_ok=True)
    return path


class AutoMLConfig:
    """What to search, on which data and compute, for how long.

    Parameters
    ----------
    task : {"classification", "regression"}
    primary_metric : str, optional
        Classification: accuracy (default), AUC_weighted, average_precision_score_weighted,
        norm_macro_recall, precision_score_weighted. Regression: spearman_correlation (default),
        normalized_root_mean_squared_error, r2_score, normalized_mean_absolute_error.
    data_script : str, optional
        A .py file whose ``get_data()`` returns ``{"X": ..., "y": ...}`` (optionally X_valid, y_valid);
        it runs on the compute target, so the data can live there.
    X, y, X_valid, y_valid : array-like, optional
        Training (and validation) data given directly.
    training_data, label_column_name, validation_data : optional
        A pandas DataFrame with the label in column `label_column_name` (and one for validation).
    n_cross_validations : int, optional
        Folds of cross-validation; `validation_size` a holdout share instead. Default: 5 folds up to
        20,000 rows, else a 10% holdout.
    iterations : int
        Pipelines to try, ensembles included (default 1000, bounded by the time limit).
    experiment_timeout_minutes, max_time_sec : float, optional
        Wall-clock limit of the whole experiment.
    iteration_timeout_minutes : float, optional
        Limit of one iteration; a slower one is stopped and counted as failed.
    max_concurrent_iterations, concurrent_iterations : int
        Iterations running at once on the compute target (default 1).
    max_cores_per_iteration : int
        Threads one iteration uses (default 1; -1 for all the target's cores).
    featurization, preprocess : "auto" | "off" | bool
        "auto" imputes, encodes categorical and text-like columns and expands dates.
    allowed_models, blocked_models : list of str, optional
        Algorithm names (see ``nbml.automl.estimators.ALGORITHMS``; the SDK's spellings are accepted).
    enable_early_stopping : bool
        Stop when the best score hasn't improved for `early_stopping_n_iters` iterations (default 10).
    experiment_exit_score : float, optional
        Stop as soon as an iteration reaches this score.
    enable_voting_ensemble, enable_stack_ensemble : bool
        Add the ensembles as the final iterations (default True).
    model_explainability : bool
        Compute SHAP explanations of the best model at the end (see ``retrieve_model_explanation``).
    compute_target, run_configuration, environment, path
        Where the iterations run, with which environment, and the project folder snapshotted for them
        (created if it doesn't exist yet, as the SDK did).
    """

    def __init__(self, task: str, primary_metric: str | None = None, *, path: str | None = None,
                 compute_target: Any = None, run_configuration: Any = None, environment: Any = None,
                 data_script: str | None = None, X: Any = None, y: Any = None, X_valid: Any = None,
                 y_valid: Any = None, training_data: Any = None, label_column_name: str | None = None,
                 validation_data: Any = None, validation_size: float | None = None,
                 n_cross_validations: int | None = None, iterations: int | None = None,
                 experiment_timeout_minutes: float | None = None, iteration_timeout_minutes: float | None = None,
                 max_concurrent_iterations: int | None = None, max_cores_per_iteration: int = 1,
                 featurization: str | bool = "auto", allowed_models: list[str] | None = None,
                 blocked_models: list[str] | None = None, enable_early_stopping: bool = False,
                 early_stopping_n_iters: int = 10, experiment_exit_score: float | None = None,
                 enable_voting_ensemble: bool = True, enable_stack_ensemble: bool = True,
                 model_explainability: bool = False, seed: int = 0, **kwargs: Any) -> None:
        given = dict(kwargs)
        for old, new in _RENAMED.items():
            if old in given:
                value = given.pop(old)
                if old == "max_time_sec" and value is not None:
                    value = float(value) / 60.0
                if old == "preprocess":
                    value = "auto" if value else "off"
                if new == "experiment_timeout_minutes":
                    experiment_timeout_minutes = value
                elif new == "max_concurrent_iterations":
                    max_concurrent_iterations = value
                elif new == "featurization":
                    featurization = value
                elif new == "blocked_models":
                    blocked_models = value
                elif new == "allowed_models":
                    allowed_models = value
                elif new == "experiment_exit_score":
                    experiment_exit_score = value
        if given.get("experiment_timeout_hours") is not None and experiment_timeout_minutes is None:
            experiment_timeout_minutes = float(given["experiment_timeout_hours"]) * 60
        unknown = sorted(k for k in given if k not in _IGNORED)
        if unknown:
            raise ConfigException(f"AutoMLConfig got unknown settings: {', '.join(unknown)}.")
        self.ignored_settings = {k: v for k, v in given.items() if k in _IGNORED}
        self.verbosity = given.get("verbosity", logging.INFO)

        if task not in metrics.TASKS:
            raise ConfigException(f"task={task!r} is not supported; use 'classification' or 'regression'.")
        self.task = task
        self.primary_metric = primary_metric or metrics.DEFAULT_PRIMARY[task]
        try:
            metrics.check_metric(task, self.primary_metric)
        except ValueError as exc:
            raise ConfigException(str(exc)) from None
        if isinstance(featurization, bool):
            featurization = "auto" if featurization else "off"
        if featurization not in ("auto", "off"):
            raise ConfigException(f"featurization={featurization!r}: use 'auto' or 'off'.")
        self.featurization = featurization
        for name, models in (("allowed_models", allowed_models), ("blocked_models", blocked_models)):
            for m in models or []:
                try:
                    estimators.canonical(m)
                except ValueError as exc:
                    raise ConfigException(f"{name}: {exc}") from None
        self.allowed_models = list(allowed_models) if allowed_models else None
        self.blocked_models = list(blocked_models) if blocked_models else None
        if n_cross_validations is not None and validation_size is not None:
            raise ConfigException("give n_cross_validations or validation_size, not both.")
        if validation_size is not None and not 0.0 < float(validation_size) < 1.0:
            raise ConfigException(f"validation_size={validation_size}: use a share between 0 and 1, e.g. 0.2.")
        if (validation_data is not None or X_valid is not None) and (n_cross_validations or validation_size):
            raise ConfigException("validation data was given: drop n_cross_validations / validation_size, or the "
                                  "validation data.")
        for name, value in (("iterations", iterations), ("max_concurrent_iterations", max_concurrent_iterations)):
            if value is not None and int(value) < 1:
                raise ConfigException(f"{name}={value}: use at least 1.")
        if experiment_timeout_minutes is not None and float(experiment_timeout_minutes) <= 0:
            raise ConfigException(f"experiment_timeout_minutes={experiment_timeout_minutes}: use a positive time.")
        sources = [data_script is not None, X is not None or y is not None, training_data is not None]
        if sum(sources) == 0:
            raise ConfigException("no training data: give data_script (a file with get_data()), X and y, or "
                                  "training_data and label_column_name.")
        if sum(sources) > 1:
            raise ConfigException("give one source of training data: data_script, X/y, or training_data.")

        self.path = _project_folder(path)
        self.compute_target = compute_target
        self.run_configuration = run_configuration
        self.environment = environment
        self.data_script = data_script
        self.X, self.y, self.X_valid, self.y_valid = X, y, X_valid, y_valid
        self.training_data, self.label_column_name = training_data, label_column_name
        self.validation_data = validation_data
        self.validation_size = validation_size
        self.n_cross_validations = n_cross_validations
        self.iterations = int(iterations) if iterations is not None else 1000
        self.experiment_timeout_minutes = experiment_timeout_minutes
        self.iteration_timeout_minutes = iteration_timeout_minutes
        self.max_concurrent_iterations = int(max_concurrent_iterations or 1)
        self.max_cores_per_iteration = int(max_cores_per_iteration)
        self.enable_early_stopping = bool(enable_early_stopping)
        self.early_stopping_n_iters = int(early_stopping_n_iters)
        self.experiment_exit_score = experiment_exit_score
        self.enable_voting_ensemble = bool(enable_voting_ensemble)
        self.enable_stack_ensemble = bool(enable_stack_ensemble)
        self.model_explainability = bool(model_explainability)
        self.seed = int(seed)

    # the SDK's accessors
    def get_supported_dataset_languages(self, use_gpu: bool = False) -> dict[str, str]:
        return {"eng": "English"}

    @property
    def user_settings(self) -> dict[str, Any]:
        """The settings as plain values (what the parent run records)."""
        return {
            "task": self.task, "primary_metric": self.primary_metric, "iterations": self.iterations,
            "experiment_timeout_minutes": self.experiment_timeout_minutes,
            "iteration_timeout_minutes": self.iteration_timeout_minutes,
            "max_concurrent_iterations": self.max_concurrent_iterations,
            "max_cores_per_iteration": self.max_cores_per_iteration, "featurization": self.featurization,
            "allowed_models": self.allowed_models, "blocked_models": self.blocked_models,
            "n_cross_validations": self.n_cross_validations, "validation_size": self.validation_size,
            "enable_early_stopping": self.enable_early_stopping,
            "early_stopping_n_iters": self.early_stopping_n_iters,
            "experiment_exit_score": self.experiment_exit_score,
            "enable_voting_ensemble": self.enable_voting_ensemble,
            "enable_stack_ensemble": self.enable_stack_ensemble,
            "model_explainability": self.model_explainability, "seed": self.seed,
        }

    def _submit(self, experiment: Experiment, tags: dict[str, Any] | None = None, show_output: bool = False,
                **kwargs: Any) -> AutoMLRun:
        from nbml._extras import AUTOML_MODULES, require

        require("automl", *AUTOML_MODULES)  # before anything is created
        from nbml.automl.submit import submit_automl

        return submit_automl(experiment, self, tags=tags, show_output=show_output)

    def __repr__(self) -> str:
        return f"AutoMLConfig(task={self.task!r}, primary_metric={self.primary_metric!r}, iterations={self.iterations})"
