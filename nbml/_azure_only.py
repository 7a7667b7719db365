"""Names of the Azure ML SDK that only make sense on Azure: present, so imports work, but raising one error.

A ported notebook keeps its import lines; the cell that really calls Azure (provisioning a VM or an AKS
cluster, Azure sign-in, Azure Container Registry images, Azure Open Datasets) fails with `AzureOnlyError`,
whose message says what to use in nbml instead.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NoReturn

from nbml.errors import UserErrorException


class AzureOnlyError(UserErrorException):
    """The call needs an Azure service that nbml doesn't replace; the message says what to use instead."""


def _fail(name: str, instead: str) -> NoReturn:
    raise AzureOnlyError(f"{name} needs Azure, which nbml doesn't use. Instead: {instead}")


class _AzureOnlyMeta(type):
    """Any use of the class (a call, a classmethod like ``provisioning_configuration``) raises."""

    _instead: str

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _fail(cls.__name__, cls._instead)

    def __getattr__(cls, attr: str) -> NoReturn:
        if attr.startswith("__"):
            raise AttributeError(attr)
        _fail(f"{cls.__name__}.{attr}", cls._instead)


def azure_only(name: str, instead: str) -> type:
    """A stand-in class named `name` whose every use raises AzureOnlyError pointing at `instead`."""
    return _AzureOnlyMeta(name, (), {"_instead": instead, "__doc__": f"Azure-only; in nbml use: {instead}",
                                     "__module__": "nbml._azure_only"})


# name -> what to use instead (the table in nbml._sdk_paths points here as "azure:<name>")
INSTEAD: dict[str, str] = {
    "AksCompute": "a Docker engine (DockerCompute.attach) or a Dask cluster (AmlCompute) as the target.",
    "AksWebservice": "LocalWebservice.deploy_configuration() (or AciWebservice for a container) with Model.deploy.",
    "DsvmCompute": "RemoteCompute.attach(ws, name, address=..., username=..., private_key_file=...) to a machine "
                   "you already have.",
    "BatchAiCompute": "AmlCompute.provisioning_configuration(...) with ComputeTarget.create: a Dask cluster.",
    "DatabricksCompute": "AmlCompute (a Dask cluster, or scheduler_address= of an existing one).",
    "DataFactoryCompute": "AmlCompute (a Dask cluster) or RemoteCompute.",
    "AdlaCompute": "AmlCompute (a Dask cluster) or RemoteCompute.",
    "KubernetesCompute": "AmlCompute with scheduler_address= of a dask-kubernetes cluster.",
    "ComputeInstance": "RemoteCompute.attach to a machine you have, or the local target.",
    "InteractiveLoginAuthentication": "nothing: an nbml workspace is a folder, Workspace.from_config() needs no "
                                      "sign-in.",
    "ServicePrincipalAuthentication": "nothing: an nbml workspace is a folder, Workspace.from_config() needs no "
                                      "sign-in.",
    "MsiAuthentication": "nothing: Workspace.from_config() needs no sign-in.",
    "AzureCliAuthentication": "nothing: Workspace.from_config() needs no sign-in.",
    "Image": "Environment(...) with docker.enabled = True; nbml builds images on the Docker target.",
    "ContainerImage": "Environment(...) with docker.enabled = True; nbml builds images on the Docker target.",
    "NoaaIsdWeather": "read your own copy of the data (pandas.read_csv / Dataset.Tabular.from_delimited_files).",
    "MNIST": "sklearn.datasets or a local copy of the data.",
    "Diabetes": "sklearn.datasets.load_diabetes().",
    "OjSalesSimulated": "a local copy of the data with Dataset.Tabular.from_delimited_files.",
}


@cache
def stand_in(name: str) -> type:
    return azure_only(name, INSTEAD[name])


def set_diagnostics_collection(send_diagnostics: bool = True, path: str | None = None,
                               reset: bool = False) -> None:
    """The SDK's telemetry switch. nbml sends no diagnostics anywhere, so there is nothing to turn on or off.

    Kept as a quiet no-op (not an error) because nearly every sample notebook calls it in its first cells.
    """
    if send_diagnostics:
        print("nbml collects no diagnostics; set_diagnostics_collection has nothing to turn on.")


def subscription_error(what: str) -> AzureOnlyError:
    """The error for Azure subscription and resource-group calls on a workspace."""
    return AzureOnlyError(f"{what} needs an Azure subscription, which nbml doesn't use. Instead: an nbml workspace "
                          "is a folder; use Workspace.from_config() or Workspace.create(name, path=FOLDER).")
