"""Registered models: versioned copies of files or folders under ``<workspace>/models/<name>/<version>/``."""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.errors import ModelNotFound, UserErrorException

if TYPE_CHECKING:
    from nbml.workspace import Workspace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


class Model:
    """A registered model. ``Model(ws, name)`` is the latest version; ``Model(ws, name, version=2)`` a given one."""

    class Framework:
        SCIKITLEARN = "ScikitLearn"
        ONNX = "Onnx"
        TENSORFLOW = "TensorFlow"
        PYTORCH = "PyTorch"
        CUSTOM = "Custom"
        MULTI = "Multi"

    def __init__(self, workspace: Workspace, name: str | None = None, id: str | None = None,
                 version: int | None = None, tags: Any = None, properties: Any = None,
                 _record: dict[str, Any] | None = None) -> None:
        if id and not name:
            name, _, v = id.rpartition(":")
            version = int(v)
        rec = _record or (workspace.store.get_model(name, version) if name else None)
        if rec is None:
            versions = [m["version"] for m in workspace.store.list_models(name)] if name else []
            hint = f" (versions: {versions})" if versions else " (register it with Model.register or run.register_model)"
            raise ModelNotFound(f"No model {name!r}{f' version {version}' if version else ''} in this workspace{hint}.")
        self.workspace = workspace
        self.name: str = rec["name"]
        self.version: int = rec["version"]
        self.id = f"{self.name}:{self.version}"
        self.run_id: str | None = rec["run_id"]
        self.description: str | None = rec["description"]
        self.model_framework: str | None = rec["framework"]
        self.model_framework_version: str | None = rec["framework_version"]
        self.tags: dict[str, Any] = json.loads(rec["tags_json"])
        self.properties: dict[str, Any] = json.loads(rec["properties_json"])
        self.created_time: float = rec["created_at"]
        self._path = Path(rec["path"])

    @staticmethod
    def register(workspace: Workspace, model_path: str, model_name: str, tags: dict[str, Any] | None = None,
                 properties: dict[str, Any] | None = None, description: str | None = None,
                 model_framework: str | None = None, model_framework_version: str | None = None,
                 resource_configuration: Any = None, _run_id: str | None = None, **_: Any) -> Model:
        """Copy a file or folder into the registry as the next version of `model_name`."""
        if not _NAME.match(model_name or ""):
            raise UserErrorException(f"Model name {model_name!r} is not valid: use letters, digits, '-', '_', '.'.")
        src = Path(model_path)
        if not src.exists():
            raise UserErrorException(f"model_path {model_path!r} doesn't exist; pass a model file or folder.")
        root = workspace.path / "models" / model_name
        staging = root / f".incoming-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            if src.is_dir():
                shutil.copytree(src, staging / src.name)
            else:
                shutil.copy2(src, staging / src.name)
            version = workspace.store.add_model(
                model_name, str(root / "{version}" / src.name), run_id=_run_id, description=description,
                framework=model_framework, framework_version=model_framework_version, tags=tags,
                properties={**(properties or {}), **({"resource_configuration": json.dumps(
                    resource_configuration.serialize())} if resource_configuration is not None else {})})
            os.replace(staging, root / str(version))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Model(workspace, model_name, version=version)

    @staticmethod
    def list(workspace: Workspace, name: str | None = None, tags: Any = None, properties: Any = None,
             latest: bool = False, run_id: str | None = None, **_: Any) -> list[Model]:
        out = []
        seen: set[str] = set()
        for rec in workspace.store.list_models(name):
            m = Model(workspace, _record=rec)
            if latest and m.name in seen:
                continue
            if run_id and m.run_id != run_id:
                continue
            if (tags and not _has(m.tags, tags)) or (properties and not _has(m.properties, properties)):
                continue
            seen.add(m.name)
            out.append(m)
        return out

    @staticmethod
    def deploy(workspace: Workspace, name: str, models: builtins.list[Model], inference_config: Any = None,
               deployment_config: Any = None, deployment_target: Any = None, overwrite: bool = False) -> Any:
        """Serve models on this machine: no-code for scikit-learn models, or an InferenceConfig entry script.

        Returns a Webservice; call ``wait_for_deployment()``, then ``run(json)`` or POST to ``scoring_uri``.
        """
        from nbml.models.deploy import deploy

        return deploy(workspace, name, models, inference_config, deployment_config, deployment_target, overwrite)

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: Workspace | None = None) -> str:
        from nbml.workspace import Workspace

        served = os.environ.get("NBML_SERVICE_MODELS")  # inside a service container: no workspace, its models
        if _workspace is None and served:
            paths = {m["id"]: m["path"] for m in json.loads(served)}
            ids = sorted((i for i in paths if i.rpartition(":")[0] == model_name), key=lambda i: int(i.rpartition(":")[2]))
            match = [i for i in ids if version is None or i == f"{model_name}:{version}"]
            if not match:
                raise ModelNotFound(f"Model {model_name!r} is not deployed with this service (it has {', '.join(paths)}).")
            return str(paths[match[-1]])
        return str(Model(_workspace or Workspace.from_config(), model_name, version=version)._path)

    @property
    def url(self) -> str:
        """Where the model's files are stored (a ``file://`` URL in the workspace; the SDK's is a blob URL)."""
        return self._path.resolve().as_uri()

    def download(self, target_dir: str = ".", exist_ok: bool = False, **_: Any) -> str:
        dest = Path(target_dir) / self._path.name
        if dest.exists() and not exist_ok:
            raise UserErrorException(f"{dest} already exists; pass exist_ok=True to overwrite it.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self._path.is_dir():
            shutil.copytree(self._path, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(self._path, dest)
        return str(dest)

    def delete(self) -> None:
        self.workspace.store.delete_model(self.name, self.version)
        shutil.rmtree(self._path.parent, ignore_errors=True)

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "runId": self.run_id, "framework": self.model_framework,
                "tags": self.tags, "properties": self.properties, "description": self.description,
                "path": str(self._path)}

    def __repr__(self) -> str:
        return f"Model(workspace={self.workspace.name!r}, name={self.name!r}, id={self.id!r}, version={self.version})"


def _has(have: dict[str, Any], want: Any) -> bool:
    if isinstance(want, dict):
        return all(str(have.get(k)) == str(v) for k, v in want.items())
    items = want if isinstance(want, list) else [want]
    for item in items:
        if isinstance(item, list | tuple):
            if str(have.get(item[0])) != str(item[1]):
                return False
        elif item not in have:
            return False
    return True
