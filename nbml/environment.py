"""Environments: which Python and packages a run uses (the SDK's Environment and CondaDependencies)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from nbml.compute.base import EnvSpec
from nbml.errors import UserErrorException

if TYPE_CHECKING:
    from nbml.workspace import Workspace

#: The SDK's default images. In nbml they stand for "the target's default image" (nbml's base image unless the
#: Docker target names another), so an environment that keeps the default follows its target.
DEFAULT_CPU_IMAGE = "nbml/base-cpu:latest"
DEFAULT_GPU_IMAGE = "nbml/base-gpu:latest"
_DEFAULT_IMAGES = (DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE)
# Conda packages that have no pip equivalent (toolchains, system libraries) and are provided otherwise.
_CONDA_ONLY = {"python", "pip", "setuptools", "wheel", "cudatoolkit", "cudnn", "nccl", "mkl", "mkl-service", "nomkl",
               "blas", "libblas", "libgcc", "libgcc-ng", "libstdcxx-ng", "openssl", "ca-certificates", "git",
               "_libgcc_mutex", "libopenblas", "openblas", "intel-openmp", "cmake", "make", "gcc", "gxx"}
_CONDA_TO_PIP = {"pytorch": "torch", "py-xgboost": "xgboost", "matplotlib-base": "matplotlib",
                 "pytorch-cpu": "torch", "tensorflow-mkl": "tensorflow", "pillow-simd": "pillow"}
# Only the Azure ML SDK's own packages: nbml provides what they did. Helpers such as inference-schema stay.
_SDK_PACKAGES = re.compile(r"^azureml(-.*)?$")


def _package_name(requirement: str) -> str:
    """The normalized project name of a pip requirement (``azureml_core>=1.0`` -> ``azureml-core``)."""
    return re.split(r"[\s<>=!~\[;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def _conda_to_pip(dep: str) -> tuple[str | None, str | None]:
    """Map one conda dependency to a pip requirement; returns (requirement, note-if-not-mapped)."""
    raw = dep.strip()
    if "::" in raw:
        raw = raw.split("::", 1)[1]
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", raw)
    if not m:
        return None, f"{dep!r} (not a package spec)"
    name, rest = m.group(1).lower(), m.group(2).strip()
    if name in _CONDA_ONLY:
        return None, f"{dep} (conda-only; the target's own is used)"
    name = _CONDA_TO_PIP.get(name, name)
    if not rest:
        return name, None
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=")[0]  # drop a build string: numpy=1.19.2=py38_0
        return (f"{name}=={version}" if version.count(".") >= 2 else f"{name}=={version}.*"), None
    if rest.startswith(("==", ">=", "<=", ">", "<", "!=", "~=")):
        return f"{name}{rest}".replace(" ", ""), None
    return f"{name}=={rest}", None


class CondaDependencies:
    """A conda environment file's content: ``CondaDependencies("myenv.yml")`` reads one, ``.create(...)`` makes one.

    pip installs what maps to PyPI; conda-only entries (toolchains, system libraries) are noted and left to
    the target. Parameters are the SDK's: the first positional argument is a file path, as in the SDK.
    """

    def __init__(self, conda_dependencies_file_path: str | os.PathLike[str] | None = None,
                 _underlying_structure: dict[str, Any] | None = None, *, conda_packages: list[str] | None = None,
                 pip_packages: list[str] | None = None, python_version: str | None = None,
                 channels: list[str] | None = None, name: str | None = None) -> None:
        self.conda_packages: list[str] = list(conda_packages or [])
        self.pip_packages: list[str] = list(pip_packages or [])
        self.python_version = python_version
        self.channels: list[str] = list(channels or [])
        self.name = name
        if conda_dependencies_file_path is not None:
            if not isinstance(conda_dependencies_file_path, (str, os.PathLike)):
                raise UserErrorException(
                    f"CondaDependencies({conda_dependencies_file_path!r}): the first argument is the path of a conda "
                    "environment file; for a list of packages use CondaDependencies.create(conda_packages=[...], "
                    "pip_packages=[...]).")
            path = Path(conda_dependencies_file_path).expanduser()
            if not path.is_file():
                raise UserErrorException(f"Conda file {str(path)!r} not found (from {Path.cwd()}); pass the path of "
                                         "your myenv.yml / conda_dependencies.yml, or use CondaDependencies.create().")
            self._read(path.read_text(), str(path))
        elif _underlying_structure is not None:
            self._read(yaml.safe_dump(_underlying_structure), "conda structure")

    @classmethod
    def create(cls, pip_packages: list[str] | None = None, conda_packages: list[str] | None = None,
               python_version: str | None = None, pin_sdk_version: bool = True, pip_indexurl: str | None = None,
               channels: list[str] | None = None) -> CondaDependencies:
        """New dependencies from package lists (the SDK's SDK pin is not added: nbml needs no SDK package)."""
        return cls(conda_packages=conda_packages, pip_packages=pip_packages, python_version=python_version,
                   channels=channels)

    @classmethod
    def from_yaml(cls, text: str, source: str = "conda specification") -> CondaDependencies:
        deps = cls()
        deps._read(text, source)
        return deps

    def _read(self, text: str, source: str) -> None:
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise UserErrorException(f"{source} isn't valid YAML: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("dependencies", []), list):
            raise UserErrorException(f"{source} needs a 'dependencies:' list, as in a conda environment.yml.")
        self.name = data.get("name") or self.name
        self.channels = list(data.get("channels") or [])
        for dep in data.get("dependencies") or []:
            if isinstance(dep, dict) and "pip" in dep:
                self.pip_packages += [str(p) for p in dep["pip"] or []]
            elif isinstance(dep, str):
                m = re.match(r"^python\s*=+\s*([\d.]+)", dep.strip())
                if m:
                    self.python_version = m.group(1)
                else:
                    self.conda_packages.append(dep)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and self.serialize_to_string() == other.serialize_to_string()

    def __repr__(self) -> str:
        return (f"CondaDependencies(conda_packages={self.conda_packages!r}, pip_packages={self.pip_packages!r}, "
                f"python_version={self.python_version!r})")

    def add_channel(self, channel: str) -> None:
        if channel not in self.channels:
            self.channels.append(channel)

    def remove_pip_package(self, pip_package: str) -> None:
        self.pip_packages = [p for p in self.pip_packages if _package_name(p) != _package_name(pip_package)]

    def remove_conda_package(self, conda_package: str) -> None:
        self.conda_packages = [p for p in self.conda_packages if _package_name(p) != _package_name(conda_package)]

    def add_pip_package(self, pip_package: str) -> None:
        self.pip_packages.append(pip_package)

    def add_conda_package(self, conda_package: str) -> None:
        self.conda_packages.append(conda_package)

    def set_python_version(self, version: str) -> None:
        self.python_version = version

    def serialize_to_string(self) -> str:
        deps: list[Any] = ([f"python={self.python_version}"] if self.python_version else []) + list(self.conda_packages)
        if self.pip_packages:
            deps.append({"pip": list(self.pip_packages)})
        doc: dict[str, Any] = {"name": self.name} if self.name else {}
        doc["dependencies"] = deps
        if self.channels:
            doc["channels"] = self.channels
        return yaml.safe_dump(doc, sort_keys=False)

    def save(self, path: str | os.PathLike[str]) -> str:
        Path(path).write_text(self.serialize_to_string())
        return str(path)

    def save_to_file(self, base_directory: str | os.PathLike[str], conda_file_path: str | None = None) -> str:
        """Write ``<base_directory>/<conda_file_path>`` (default ``conda_dependencies.yml``); returns its path."""
        path = Path(base_directory) / (conda_file_path or "conda_dependencies.yml")
        path.parent.mkdir(parents=True, exist_ok=True)
        return self.save(path)

    def to_pip(self) -> tuple[list[str], list[str]]:
        """(pip requirements, notes on what could not be mapped)."""
        reqs, notes = [], []
        for dep in self.conda_packages:
            req, note = _conda_to_pip(dep)
            if req:
                reqs.append(req)
            if note:
                notes.append(note)
        for p in self.pip_packages:
            if _SDK_PACKAGES.match(_package_name(p)):
                notes.append(f"{p} (Azure ML SDK package; nbml provides Run.get_context() itself)")
            else:
                reqs.append(p.strip())
        return reqs, notes


@dataclass
class PythonSection:
    user_managed_dependencies: bool = False
    interpreter_path: str | None = None
    conda_dependencies: CondaDependencies | None = None


@dataclass
class ContainerRegistry:
    """A private registry for ``docker.base_image`` (the password is never saved with the environment)."""

    address: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass
class DockerSection:
    enabled: bool = False
    base_image: str | None = DEFAULT_CPU_IMAGE
    base_image_registry: ContainerRegistry = field(default_factory=ContainerRegistry)
    base_dockerfile: str | None = None
    arguments: list[str] = field(default_factory=list)
    #: the SDK's settings a notebook prints; kept with its defaults, not passed to the Docker engine
    shared_volumes: bool = True
    shm_size: str = "2g"

    @property
    def gpu_support(self) -> bool:
        """The SDK's switch for NVIDIA Docker: kept so notebooks can set and read it, with no effect."""
        return bool(self.__dict__.get("_gpu_support", False))

    @gpu_support.setter
    def gpu_support(self, value: bool) -> None:
        warnings.warn("docker.gpu_support is ignored: nbml does not pass GPUs to Docker runs (the SDK itself "
                      "deprecated this setting).", UserWarning, stacklevel=2)
        self.__dict__["_gpu_support"] = bool(value)


class Environment:
    """What a run needs to execute: interpreter, packages, Docker image, environment variables.

    With no dependencies the run uses the interpreter that submitted it. With dependencies nbml builds a
    virtual environment once per distinct spec (keyed by its hash) and reuses it.
    """

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self.version: int | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}
        self.pip_requirements: list[str] = []

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def from_conda_specification(cls, name: str, file_path: str | os.PathLike[str]) -> Environment:
        path = Path(file_path)
        if not path.is_file():
            raise UserErrorException(f"Conda specification {str(path)!r} not found; pass the path of your "
                                     "conda_dependencies.yml / environment.yml.")
        env = cls(name)
        env.python.conda_dependencies = CondaDependencies.from_yaml(path.read_text(), str(path))
        return env

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str | os.PathLike[str]) -> Environment:
        path = Path(file_path)
        if not path.is_file():
            raise UserErrorException(f"Requirements file {str(path)!r} not found; pass the path of requirements.txt.")
        env = cls(name)
        env.pip_requirements = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()
                                if ln.split("#", 1)[0].strip() and not ln.strip().startswith("-")]
        return env

    @classmethod
    def from_docker_image(cls, name: str, image: str, container_registry: Any = None,
                          conda_specification: str | None = None, pip_requirements: str | None = None) -> Environment:
        if conda_specification:
            env = cls.from_conda_specification(name, conda_specification)
        elif pip_requirements:
            env = cls.from_pip_requirements(name, pip_requirements)
        else:
            env = cls(name)
            env.python.user_managed_dependencies = True
        env.docker.enabled = True
        env.docker.base_image = image
        return env

    @classmethod
    def from_existing_interpreter(cls, name: str, interpreter_path: str) -> Environment:
        env = cls(name)
        env.python.user_managed_dependencies = True
        env.python.interpreter_path = interpreter_path
        return env

    # -- spec ----------------------------------------------------------------------------------
    def requirements(self) -> tuple[list[str], list[str]]:
        reqs, notes = list(self.pip_requirements), list[str]()
        if self.python.conda_dependencies is not None:
            more, notes = self.python.conda_dependencies.to_pip()
            reqs += more
        return reqs, notes

    def spec(self) -> EnvSpec:
        """The target-neutral description that compute targets prepare (hash included)."""
        reqs, _ = self.requirements()
        user_managed = self.python.user_managed_dependencies or not reqs
        py = self.python.conda_dependencies.python_version if self.python.conda_dependencies else None
        payload = {
            "pip": sorted(reqs) if not user_managed else [],
            "user_managed": user_managed,
            "interpreter": self.python.interpreter_path,
            "base_python": sys.executable if not user_managed else None,
            "docker": [self.docker.enabled, self._base_image()],
        }
        h = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
        return EnvSpec(
            name=self.name, hash=h, user_managed=user_managed, interpreter_path=self.python.interpreter_path,
            pip=[] if user_managed else reqs, python_version=py, docker_enabled=self.docker.enabled,
            docker_base_image=self._base_image(), environment_variables=dict(self.environment_variables),
        )

    def _base_image(self) -> str | None:
        """The image the user chose; None when it is the SDK's default, so the target's default applies."""
        image = self.docker.base_image
        return None if image in _DEFAULT_IMAGES else image

    def unmapped(self) -> list[str]:
        return self.requirements()[1]

    # -- registry ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        cd = self.python.conda_dependencies
        return {
            "name": self.name, "pip_requirements": self.pip_requirements,
            "python": {"user_managed_dependencies": self.python.user_managed_dependencies,
                       "interpreter_path": self.python.interpreter_path,
                       "conda": cd.serialize_to_string() if cd else None},
            "docker": {"enabled": self.docker.enabled, "base_image": self.docker.base_image},
            "environment_variables": self.environment_variables,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Environment:
        env = cls(d["name"])
        env.pip_requirements = list(d.get("pip_requirements") or [])
        py = d.get("python") or {}
        env.python.user_managed_dependencies = bool(py.get("user_managed_dependencies"))
        env.python.interpreter_path = py.get("interpreter_path")
        if py.get("conda"):
            env.python.conda_dependencies = CondaDependencies.from_yaml(py["conda"])
        dk = d.get("docker") or {}
        env.docker.enabled = bool(dk.get("enabled"))
        env.docker.base_image = dk.get("base_image") or DEFAULT_CPU_IMAGE
        env.environment_variables = dict(d.get("environment_variables") or {})
        return env

    def register(self, workspace: Workspace) -> Environment:
        self.version = workspace.store.register_environment(self.name, self.spec().hash, self.to_dict())
        return self

    @classmethod
    def get(cls, workspace: Workspace, name: str, version: int | str | None = None) -> Environment:
        rec = workspace.store.get_environment(name, int(version) if version is not None else None)
        if rec is None:
            known = sorted({e["name"] for e in workspace.store.list_environments()})
            raise UserErrorException(f"No environment {name!r} registered in this workspace (known: "
                                     f"{', '.join(known) or 'none'}); create one and call env.register(ws).")
        env = cls.from_dict(json.loads(rec["spec_json"]))
        env.version = rec["version"]
        return env

    @classmethod
    def list(cls, workspace: Workspace) -> dict[str, Environment]:
        return {e["name"]: cls.get(workspace, e["name"]) for e in workspace.store.list_environments()}

    def __repr__(self) -> str:
        reqs, _ = self.requirements()
        return f"Environment(name={self.name!r}, version={self.version}, packages={reqs})"
