"""Submitting an AutoML experiment: check data and settings, record the parent run, start its coordinator.

Everything that can be wrong is found here, in the submitting process, before the parent run exists:
a failed submit leaves nothing in the store.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nbml.automl import data, estimators
from nbml.automl.errors import ConfigException, DataException
from nbml.automl.metrics import CLASSIFICATION
from nbml.compute.targets import resolve_target
from nbml.runs import containerinstance
from nbml.runs.ids import new_run_id
from nbml.runs.submit import start_recorded_run

if TYPE_CHECKING:
    from nbml.automl.config import AutoMLConfig
    from nbml.automl.run import AutoMLRun
    from nbml.runs.experiment import Experiment

DRIVER = "nbml.automl.coordinator"
DATA_FILE = "automl_data.pkl"
SCRIPT_COPY = "nbml_automl_get_data.py"


def _load(config: AutoMLConfig) -> data.Dataset:
    script = config.data_script
    if script is not None and not os.path.isabs(script) and not os.path.exists(script) and config.path:
        script = os.path.join(config.path, script)
    return data.from_sources(
        X=config.X, y=config.y, X_valid=config.X_valid, y_valid=config.y_valid,
        training_data=config.training_data, label_column_name=config.label_column_name,
        validation_data=config.validation_data, data_script=script,
    )


def _data_source(config: AutoMLConfig, source_dir: Path | None, ds: data.Dataset,
                 parent_dir: Path) -> tuple[dict[str, Any], Path | None]:
    """How children get the data: the script inside the snapshot, a copy of it, or a pickle of the data."""
    if config.data_script is not None:
        script = Path(config.data_script)
        if not script.is_absolute() and not script.exists() and config.path:
            script = Path(config.path) / script
        script = script.resolve()
        if source_dir is not None and source_dir in script.parents:
            return {"script": script.relative_to(source_dir).as_posix()}, None
        return {"script": SCRIPT_COPY}, script
    parent_dir.mkdir(parents=True, exist_ok=True)
    with open(parent_dir / DATA_FILE, "wb") as fh:
        pickle.dump(ds, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return {"pickle": DATA_FILE}, None


#: What an iteration imports (nbml itself is mounted into a container; its dependencies are not there).
_CHILD_PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "joblib")
_ALGORITHM_PACKAGES = {"LightGBM": "lightgbm", "XGBoost": "xgboost"}
#: Target kinds whose jobs run in an image built from the environment's pip packages.
_CONTAINER_KINDS = ("docker", "containerinstance")


def _environment(config: AutoMLConfig) -> Any:
    from nbml.environment import Environment

    if config.environment is not None:
        return config.environment
    rc = config.run_configuration
    if rc is not None and getattr(rc, "environment", None) is not None:
        return rc.environment
    return Environment("automl")


def _container_environment(env: Any, algorithms: list[str]) -> Any:
    """For a container target, an environment that names no packages gets what the iterations import (as the
    SDK's AutoML images come with them), pinned to this machine's versions so fitted models load back here.
    One that names packages, or manages its own Python, is the user's choice and is left as it is."""
    from importlib.metadata import PackageNotFoundError, version

    if env.python.user_managed_dependencies or env.spec().pip:
        return env
    wanted = [*_CHILD_PACKAGES, *sorted({_ALGORITHM_PACKAGES[a] for a in algorithms if a in _ALGORITHM_PACKAGES})]
    pins = []
    for name in wanted:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    out = copy.deepcopy(env)
    out.python.user_managed_dependencies = False
    out.pip_requirements = [*out.pip_requirements, *pins]
    return out


def submit_automl(experiment: Experiment, config: AutoMLConfig, tags: dict[str, Any] | None = None,
                  show_output: bool = False, first_iteration: int = 0,
                  continued_from: str | None = None) -> AutoMLRun:
    from nbml.automl.run import AutoMLRun
    from nbml.snapshot import take_snapshot

    ws = experiment.workspace
    target_ref = config.compute_target
    if target_ref is None and config.run_configuration is not None:
        target_ref = getattr(config.run_configuration, "target", None)
    target_ref, limits = containerinstance.resolve(ws, target_ref, config.run_configuration)
    target = resolve_target(ws, target_ref)

    ds = _load(config)
    n_cv, v_size = config.n_cross_validations, config.validation_size
    default_cv = ds.X_valid is None and n_cv is None and v_size is None
    if default_cv:
        n_cv, v_size = data.default_validation(ds.n_rows)
    data.check(ds, config.task, config.featurization == "auto", None)
    if n_cv is not None and ds.X_valid is None:
        data.check_folds(ds.y, config.task, n_cv, default=default_cv)
    algos = estimators.algorithms_for(config.task, ds.n_rows, config.allowed_models, config.blocked_models)
    if not algos:
        raise ConfigException(
            f"allowed_models={config.allowed_models} / blocked_models={config.blocked_models} leave no model for "
            f"task={config.task!r}; models for it: "
            f"{', '.join(estimators.algorithms_for(config.task, ds.n_rows, None, None))}."
        )
    classes = [c.item() if hasattr(c, "item") else c for c in np.unique(ds.y)] if config.task == CLASSIFICATION \
        else None

    env = _environment(config)
    if target.target_kind in _CONTAINER_KINDS:
        env = _container_environment(env, algos)
    spec = env.spec()
    if target.target_kind == "local" and not spec.docker_enabled:
        from nbml.envbuild import ensure_local_env

        ensure_local_env(ws.path / "envs", spec, lambda _line: None)

    source_dir = Path(config.path).expanduser().resolve() if config.path else None
    if source_dir is not None and not source_dir.is_dir():
        raise ConfigException(f"path={config.path!r} is not a folder; give the project folder (or leave path out).")
    if source_dir is not None:
        snapshot = take_snapshot(ws, source_dir)
    else:
        with tempfile.TemporaryDirectory() as empty:
            snapshot = take_snapshot(ws, empty)

    run_id = new_run_id(experiment.name)
    parent_dir = ws.run_dir(run_id) / "automl"
    try:
        source, script_copy = _data_source(config, source_dir, ds, parent_dir)
    except (OSError, pickle.PicklingError) as exc:
        shutil.rmtree(ws.run_dir(run_id), ignore_errors=True)
        raise DataException(f"the training data can't be saved for the iterations: {exc}") from None
    max_cores = config.max_cores_per_iteration
    if max_cores == -1:
        max_cores = max(1, (os.cpu_count() or 1) // config.max_concurrent_iterations)
    run_config = {
        "driver": DRIVER,
        "primary_metric": config.primary_metric,
        "settings": config.user_settings,
        "algorithms": algos,
        "n_cross_validations": n_cv if ds.X_valid is None else None,
        "validation_size": v_size if ds.X_valid is None else None,
        "external_validation": ds.X_valid is not None,
        "n_rows": ds.n_rows,
        "n_features": ds.n_features,
        "classes": classes,
        "data": source,
        "data_script_copy": str(script_copy) if script_copy else None,
        "n_jobs": max(1, max_cores),
        "snapshot_id": snapshot.id,
        "env": spec.to_dict(),
        "environment_name": env.name,
        "source_directory": str(source_dir) if source_dir else None,
        "first_iteration": int(first_iteration),
        "continued_from": continued_from,
    }
    if limits:
        run_config["resources"] = limits  # "containerinstance": every iteration's container gets them
    ws.store.insert_run(run_id, experiment.name, "automl", target.name, run_config, snapshot_id=snapshot.id,
                        display_name=f"AutoML_{run_id.rsplit('_', 1)[-1]}")
    start_recorded_run(ws, run_id, tags, {
        "task": config.task, "primary_metric": config.primary_metric, "iterations": str(config.iterations),
        "max_concurrent_iterations": str(config.max_concurrent_iterations),
        "featurization": config.featurization, "runTemplate": "automl_child",
        # the SDK's names, which notebooks exploring earlier runs read
        "num_iterations": str(config.iterations), "target": target.name,
        "AMLSettingsJsonString": json.dumps({**config.user_settings, "name": experiment.name,
                                             "task_type": config.task, "compute_target": target.name},
                                            default=str),
        "num_rows": str(ds.n_rows), "num_features": str(ds.n_features),
        **({"continued_from": continued_from} if continued_from else {}),
    })
    run = AutoMLRun(experiment, run_id)
    if show_output:
        run.wait_for_completion(show_output=True)
    return run
