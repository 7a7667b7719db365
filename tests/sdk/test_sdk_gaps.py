"""Small SDK gaps a print cell or a set-up cell of the sample notebooks hits."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from nbml import Workspace
from nbml._azure_only import AzureOnlyError
from nbml.core.conda_dependencies import CondaDependencies
from nbml.core.environment import Environment
from nbml.core.runconfig import DEFAULT_CPU_IMAGE, RunConfiguration
from nbml.errors import UserErrorException
from nbml.train.automl import AutoMLConfig

MYENV = """name: project_environment
dependencies:
  - python=3.11
  - scikit-learn
  - pip:
    - inference-schema[numpy-support]
    - azureml-defaults
    - joblib
channels:
  - conda-forge
"""


def test_conda_dependencies_reads_a_file_path_given_first(tmp_path: Path) -> None:
    (tmp_path / "myenv.yml").write_text(MYENV)
    deps = CondaDependencies(str(tmp_path / "myenv.yml"))
    assert deps.conda_packages == ["scikit-learn"]
    assert deps.python_version == "3.11" and deps.channels == ["conda-forge"]
    reqs, notes = deps.to_pip()
    # inference-schema is a real package the score script imports; only the SDK's own packages are dropped
    assert reqs == ["scikit-learn", "inference-schema[numpy-support]", "joblib"]
    assert any("azureml-defaults" in n for n in notes)


def test_conda_dependencies_create_save_and_read_back_round_trip(tmp_path: Path) -> None:
    made = CondaDependencies.create(conda_packages=["numpy=1.26.4"], pip_packages=["scikit-learn==1.5.0"],
                                    python_version="3.11")
    path = made.save_to_file(str(tmp_path), conda_file_path="myenv.yml")
    assert Path(path) == tmp_path / "myenv.yml"
    again = CondaDependencies(path)
    assert again == made and again.serialize_to_string() == made.serialize_to_string()
    env = Environment.from_conda_specification("myenv", path)
    assert env.requirements()[0] == ["numpy==1.26.4", "scikit-learn==1.5.0"]  # no "m y e n v . y m l"


def test_conda_dependencies_with_a_missing_file_or_a_list_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UserErrorException, match="not found"):
        CondaDependencies(str(tmp_path / "nope.yml"))
    with pytest.raises(UserErrorException, match=r"CondaDependencies.create\(conda_packages"):
        CondaDependencies(["numpy"])  # type: ignore[arg-type]


def test_automl_config_creates_a_project_folder_that_does_not_exist_yet(tmp_path: Path) -> None:
    folder = tmp_path / "projects" / "automl-remote"
    AutoMLConfig(task="classification", path=str(folder), X=[[0], [1]], y=[0, 1])
    assert folder.is_dir()
    (tmp_path / "a-file").write_text("")
    from nbml.automl.errors import ConfigException

    with pytest.raises(ConfigException, match="is a file"):
        AutoMLConfig(task="classification", path=str(tmp_path / "a-file"), X=[[0], [1]], y=[0, 1])


def test_a_bad_automl_config_creates_no_folder(tmp_path: Path) -> None:
    from nbml.automl.errors import ConfigException

    with pytest.raises(ConfigException):
        AutoMLConfig(task="clustering", path=str(tmp_path / "never"), X=[[0], [1]], y=[0, 1])
    assert not (tmp_path / "never").exists()


def test_workspace_prints_like_an_sdk_workspace(ws: Workspace) -> None:
    import nbml.core

    line = "\n".join([ws.name, ws.resource_group, ws.location, ws.subscription_id, nbml.core.VERSION])
    assert line.split("\n") == [ws.name, "local", socket.gethostname(), "local", nbml.__version__]
    details = ws.get_details()
    assert details["name"] == ws.name and details["subscriptionId"] == "local" and details["path"] == str(ws.path)
    assert ws.webservices == {}


def test_azure_subscription_calls_raise_the_azure_only_error(tmp_path: Path, ws: Workspace) -> None:
    with pytest.raises(AzureOnlyError, match=r"Workspace.from_config\(\)"):
        Workspace.create(name="myws", subscription_id="0000", resource_group="rg", location="eastus")
    with pytest.raises(AzureOnlyError, match="subscription"):
        Workspace(subscription_id="0000", resource_group="rg", workspace_name="myws")
    assert Workspace.create(name="local-ws", path=tmp_path).name == "local-ws"  # the local form still works


def test_docker_base_image_defaults_to_the_default_cpu_image() -> None:
    rc = RunConfiguration()
    rc.environment.docker.enabled = True
    assert rc.environment.docker.base_image == DEFAULT_CPU_IMAGE
    assert DEFAULT_CPU_IMAGE == "nbml/base-cpu:latest"
    # the default stands for the target's default image, so a Docker target's own base_image applies
    assert rc.environment.spec().docker_base_image is None
    rc.environment.docker.base_image = "python:3.12-slim"
    assert rc.environment.spec().docker_base_image == "python:3.12-slim"
    env = Environment.from_dict(rc.environment.to_dict())
    assert env.docker.base_image == "python:3.12-slim"
