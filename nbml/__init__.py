"""nbml: Jupyter-native, self-hosted ML training runs, AutoML and compute targets.

Names follow the Azure ML SDK v1 so that its notebooks port by changing imports. Attributes load lazily,
so a training script's ``from nbml import Run`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any


def _version() -> str:
    """The installed distribution's version (written once, in labextension/package.json)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nbml")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "0+unknown"


# __version__ is read on first use (__getattr__ below): importlib.metadata costs a fifth of a second, paid by
# every process that imports nbml (each training script, each rank of a distributed job) otherwise.


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where Jupyter finds the built sidebar (``jupyter labextension develop . --overwrite`` links it)."""
    return [{"src": "labextension", "dest": "nbml-labextension"}]

_EXPORTS: dict[str, str] = {
    "Workspace": "nbml.workspace",
    "Experiment": "nbml.runs.experiment",
    "Run": "nbml.runs.run",
    "ScriptRunConfig": "nbml.runs.config",
    "RunConfiguration": "nbml.runs.config",
    "Estimator": "nbml.train._estimators",
    "SKLearn": "nbml.train._estimators",
    "PyTorch": "nbml.train._estimators",
    "TensorFlow": "nbml.train._estimators",
    "Chainer": "nbml.train._estimators",
    "AzureOnlyError": "nbml._azure_only",
    "HyperDriveRunConfig": "nbml.hyperdrive.config",
    "Environment": "nbml.environment",
    "CondaDependencies": "nbml.environment",
    "Model": "nbml.models.registry",
    "InferenceConfig": "nbml.models.deploy",
    "LocalWebservice": "nbml.models.deploy",
    "Webservice": "nbml.models.deploy",
    "AciWebservice": "nbml.models.aci",
    "ResourceConfiguration": "nbml.models.deploy",
    "ComputeTarget": "nbml.compute.targets",
    "LocalCompute": "nbml.compute.targets",
    "ComputeTargetException": "nbml.errors",
    "UserErrorException": "nbml.errors",
    "ActivityFailedException": "nbml.errors",
    "RemoteCompute": "nbml.compute.ssh_target",
    "HDInsightCompute": "nbml.compute.spark_target",
    "DockerCompute": "nbml.compute.docker_target",
    "AmlCompute": "nbml.compute.dask_target",
    "AutoMLConfig": "nbml.automl.config",
    "AutoMLRun": "nbml.automl.run",
    "HyperDriveConfig": "nbml.hyperdrive",
    "RunDetails": "nbml.widgets",
    "Datastore": "nbml.data.datastore",
    "Dataset": "nbml.data.dataset",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


# SDK subpackages a notebook reaches as attributes after ``import nbml.core`` (``nbml.data.__version__``):
# the SDK's ``azureml.core`` imports them itself; here they load on first use.
_SUBPACKAGES = ("automl", "core", "data", "exceptions", "opendatasets", "telemetry", "tensorboard", "train",
                "widgets")


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()["__version__"] = version = _version()
        return version
    if name in _SUBPACKAGES:
        return importlib.import_module(f"nbml.{name}")  # the import sets the attribute; later lookups skip this
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbml' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbml``: registers %ml_compute, %ml_submit and %%ml_submit."""
    from nbml.magics import load_ipython_extension as _load

    _load(ipython)
