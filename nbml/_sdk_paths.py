"""The Azure ML SDK v1 module paths under ``nbml``: one table, so that ``azureml`` → ``nbml`` is the whole port.

Each SDK module (``azureml.core.compute``...) has a thin module here (``nbml.core.compute``) whose names
load lazily from this table: importing ``nbml.core`` stays cheap, and the implementation stays where it
lives. A value is ``"module:attribute"``, or ``"azure:Name"`` for an Azure-only stand-in (see
``nbml._azure_only``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

_CORE = {
    "Workspace": "nbml.workspace:Workspace",
    "Experiment": "nbml.runs.experiment:Experiment",
    "Run": "nbml.runs.run:Run",
    "ScriptRun": "nbml.runs.run:Run",
    "ScriptRunConfig": "nbml.runs.config:ScriptRunConfig",
    "RunConfiguration": "nbml.runs.config:RunConfiguration",
    "Environment": "nbml.environment:Environment",
    "Model": "nbml.models.registry:Model",
    "ComputeTarget": "nbml.compute.targets:ComputeTarget",
    "Webservice": "nbml.models.deploy:Webservice",
    "Dataset": "nbml.data:Dataset",
    "Datastore": "nbml.data:Datastore",
    "ContainerRegistry": "nbml.environment:ContainerRegistry",
    "VERSION": "nbml:__version__",
    "Image": "azure:Image",
}
_COMPUTE = {
    "ComputeTarget": "nbml.compute.targets:ComputeTarget",
    "LocalCompute": "nbml.compute.targets:LocalCompute",
    "AmlCompute": "nbml.compute.dask_target:AmlCompute",
    "RemoteCompute": "nbml.compute.ssh_target:RemoteCompute",
    "DockerCompute": "nbml.compute.docker_target:DockerCompute",
    "HDInsightCompute": "nbml.compute.spark_target:HDInsightCompute",
    **{n: f"azure:{n}" for n in ("AksCompute", "DsvmCompute", "BatchAiCompute",
                                 "DatabricksCompute", "DataFactoryCompute", "AdlaCompute", "KubernetesCompute",
                                 "ComputeInstance")},
}
_ERRORS = {
    "ComputeTargetException": "nbml.errors:ComputeTargetException",
    "UserErrorException": "nbml.errors:UserErrorException",
    "ActivityFailedException": "nbml.errors:ActivityFailedException",
    "WebserviceException": "nbml.models.deploy:WebserviceException",
    "AzureOnlyError": "nbml._azure_only:AzureOnlyError",
}
_AUTH = {n: f"azure:{n}" for n in ("InteractiveLoginAuthentication", "ServicePrincipalAuthentication",
                                   "MsiAuthentication", "AzureCliAuthentication")}
_HYPERDRIVE = {
    **{n: f"nbml.hyperdrive:{n}" for n in (
        "BanditPolicy", "BayesianParameterSampling", "GridParameterSampling", "HyperDriveConfig",
        "MedianStoppingPolicy", "NoTerminationPolicy", "PrimaryMetricGoal", "RandomParameterSampling",
        "TruncationSelectionPolicy", "choice", "lognormal", "loguniform", "normal", "qlognormal", "qloguniform",
        "qnormal", "quniform", "randint", "uniform")},
    "HyperDriveRunConfig": "nbml.hyperdrive.config:HyperDriveRunConfig",
    "HyperDriveRun": "nbml.hyperdrive.run:HyperDriveRun",
}
_DNN = {n: f"nbml.train._estimators:{n}" for n in ("PyTorch", "TensorFlow", "Chainer")}
_DISTRIBUTED = {n: f"nbml.train._distributed:{n}" for n in (
    "Mpi", "Gloo", "Nccl", "ParameterServer", "MpiConfiguration", "PyTorchConfiguration",
    "TensorflowConfiguration")}

MODULES: dict[str, dict[str, str]] = {
    "nbml.core": _CORE,
    "nbml.core.workspace": {"Workspace": "nbml.workspace:Workspace"},
    "nbml.core.experiment": {"Experiment": "nbml.runs.experiment:Experiment"},
    "nbml.core.run": {"Run": "nbml.runs.run:Run"},
    "nbml.core.script_run": {"ScriptRun": "nbml.runs.run:Run"},
    "nbml.core.script_run_config": {"ScriptRunConfig": "nbml.runs.config:ScriptRunConfig"},
    "nbml.core.runconfig": {
        "RunConfiguration": "nbml.runs.config:RunConfiguration",
        "SparkConfiguration": "nbml.runs.config:SparkConfiguration",
        "DEFAULT_CPU_IMAGE": "nbml.environment:DEFAULT_CPU_IMAGE",
        "DEFAULT_GPU_IMAGE": "nbml.environment:DEFAULT_GPU_IMAGE",
        "CondaDependencies": "nbml.environment:CondaDependencies",
        **{n: v for n, v in _DISTRIBUTED.items() if n.endswith("Configuration")},
    },
    "nbml.core.conda_dependencies": {"CondaDependencies": "nbml.environment:CondaDependencies"},
    "nbml.core.environment": {
        "Environment": "nbml.environment:Environment",
        "CondaDependencies": "nbml.environment:CondaDependencies",
        "DockerSection": "nbml.environment:DockerSection",
        "PythonSection": "nbml.environment:PythonSection",
    },
    "nbml.core.container_registry": {"ContainerRegistry": "nbml.environment:ContainerRegistry"},
    "nbml.core.compute": _COMPUTE,
    "nbml.core.compute_target": {"ComputeTarget": "nbml.compute.targets:ComputeTarget",
                                 "ComputeTargetException": "nbml.errors:ComputeTargetException"},
    "nbml.core.model": {"Model": "nbml.models.registry:Model", "InferenceConfig": "nbml.models.deploy:InferenceConfig"},
    "nbml.core.webservice": {
        "Webservice": "nbml.models.deploy:Webservice",
        "LocalWebservice": "nbml.models.deploy:LocalWebservice",
        "AciWebservice": "nbml.models.aci:AciWebservice",
        "AksWebservice": "azure:AksWebservice",
        "WebserviceException": "nbml.models.deploy:WebserviceException",
    },
    "nbml.core.resource_configuration": {"ResourceConfiguration": "nbml.models.deploy:ResourceConfiguration"},
    "nbml.core.dataset": {"Dataset": "nbml.data:Dataset"},
    "nbml.core.datastore": {"Datastore": "nbml.data:Datastore"},
    "nbml.core.authentication": _AUTH,
    "nbml.core.image": {"Image": "azure:Image", "ContainerImage": "azure:ContainerImage"},
    "nbml.core.exceptions": _ERRORS,
    "nbml.exceptions": _ERRORS,
    "nbml.train": {},
    "nbml.train.estimator": {"Estimator": "nbml.train._estimators:Estimator",
                             **{n: v for n, v in _DISTRIBUTED.items() if not n.endswith("Configuration")}},
    "nbml.train.sklearn": {"SKLearn": "nbml.train._estimators:SKLearn"},
    "nbml.train.dnn": {**_DNN, **{n: v for n, v in _DISTRIBUTED.items() if not n.endswith("Configuration")}},
    "nbml.train.automl": {"AutoMLConfig": "nbml.automl.config:AutoMLConfig", "AutoMLRun": "nbml.automl.run:AutoMLRun"},
    "nbml.train.automl.run": {"AutoMLRun": "nbml.automl.run:AutoMLRun"},
    "nbml.train.automl.automlexplainer": {
        "explain_model": "nbml.automl.explainer:explain_model",
        "retrieve_model_explanation": "nbml.automl.explain:retrieve_model_explanation",
    },
    "nbml.train.hyperdrive": _HYPERDRIVE,
    "nbml.train.hyperdrive.run": {"HyperDriveRun": "nbml.hyperdrive.run:HyperDriveRun",
                                  "PrimaryMetricGoal": "nbml.hyperdrive.config:PrimaryMetricGoal"},
    "nbml.train.widgets": {"RunDetails": "nbml.widgets.run_details:RunDetails"},
    "nbml.telemetry": {"set_diagnostics_collection": "nbml._azure_only:set_diagnostics_collection"},
    "nbml.tensorboard": {"Tensorboard": "nbml.tensorboard._server:Tensorboard"},
    "nbml.tensorboard.export": {"export_to_tensorboard": "nbml.tensorboard._export:export_to_tensorboard"},
    "nbml.opendatasets": {n: f"azure:{n}" for n in ("NoaaIsdWeather", "MNIST", "Diabetes", "OjSalesSimulated")},
}


def resolve(target: str) -> Any:
    """The object a table value names."""
    module, _, attr = target.partition(":")
    if module == "azure":
        from nbml._azure_only import stand_in

        return stand_in(attr)
    return getattr(importlib.import_module(module), attr)


def exports(module_name: str) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for the thin module `module_name`, reading the table lazily."""
    table = MODULES[module_name]
    names = sorted(table)

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r} (see docs/porting.md for the "
                                 "names nbml provides)")
        value = resolve(target)
        setattr(sys.modules[module_name], name, value)  # later lookups skip __getattr__, identity is kept
        return value

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__, names
