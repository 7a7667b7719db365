"""Local deployment of registered models as web services (``Model.deploy``), served on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml._proc import pid_alive
from nbml.errors import NbmlError, UserErrorException

if TYPE_CHECKING:
    from nbml.environment import Environment
    from nbml.models.registry import Model
    from nbml.workspace import Workspace

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")



def score(name: str, uri: str, input_data: str | bytes | dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """POST `input_data` (bytes, a JSON string or a JSON-able value) to a scoring URI; the decoded answer."""
    body = input_data if isinstance(input_data, bytes) else (
        input_data.encode() if isinstance(input_data, str) else json.dumps(input_data).encode())
    req = urllib.request.Request(uri, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise WebserviceException(f"{name} answered {exc.code}: {exc.read().decode(errors='replace')}") from None

class WebserviceException(NbmlError):
    """A web service could not be deployed, reached or removed (name kept from the Azure ML SDK)."""


class ResourceConfiguration:
    """Resources a model needs when served (kept with the model; local services don't enforce them)."""

    def __init__(self, cpu: float | None = None, memory_in_gb: float | None = None, gpu: int | None = None) -> None:
        self.cpu, self.memory_in_gb, self.gpu = cpu, memory_in_gb, gpu

    def serialize(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "memory_in_gb": self.memory_in_gb, "gpu": self.gpu}


class InferenceConfig:
    """How to score: an entry script with ``init()`` and ``run(raw_data)``, and the environment it needs."""

    def __init__(self, entry_script: str, environment: Environment | None = None, source_directory: str | None = None,
                 **_: Any) -> None:
        self.entry_script = entry_script
        self.environment = environment
        self.source_directory = source_directory


class LocalWebserviceDeploymentConfiguration:
    def __init__(self, port: int | None = None) -> None:
        self.port = port


class LocalWebservice:
    """Deployment target on this machine."""

    @staticmethod
    def deploy_configuration(port: int | None = None) -> LocalWebserviceDeploymentConfiguration:
        return LocalWebserviceDeploymentConfiguration(port)


class Webservice:
    """A deployed service. ``Webservice(ws, name)`` reattaches to one."""

    def __new__(cls, workspace: Workspace | None = None, name: str | None = None) -> Webservice:
        rec = workspace.store.get_service(name) if cls is Webservice and workspace and name else None
        if rec is not None and json.loads(rec["config_json"]).get("compute_type") == "ACI":
            from nbml.models.aci import AciWebservice  # a container on the Docker engine (nbml.models.aci)

            return super().__new__(AciWebservice)
        return super().__new__(cls)

    def __init__(self, workspace: Workspace, name: str) -> None:
        if workspace.store.get_service(name) is None:
            raise WebserviceException(f"No web service {name!r} in this workspace; deploy one with Model.deploy.")
        self.workspace, self.name = workspace, name

    @property
    def _rec(self) -> dict[str, Any]:
        rec = self.workspace.store.get_service(self.name)
        if rec is None:
            raise WebserviceException(f"Web service {self.name!r} was deleted.")
        return rec

    @property
    def state(self) -> str:
        rec = self._rec
        if rec["state"] == "Healthy" and not pid_alive(rec["pid"]):
            self.workspace.store.update_service(self.name, state="Unhealthy", error="service process stopped")
            return "Unhealthy"
        return str(rec["state"])

    @property
    def port(self) -> int | None:
        return self._rec["port"]

    @property
    def scoring_uri(self) -> str | None:
        return f"http://127.0.0.1:{self.port}/score" if self.port else None

    @property
    def error(self) -> str | None:
        return self._rec["error"]

    @property
    def models(self) -> list[str]:
        return list(json.loads(self._rec["models_json"]))

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float = 120) -> None:
        deadline = time.monotonic() + timeout_sec
        while self.state == "Transitioning":
            if time.monotonic() > deadline:
                raise WebserviceException(f"Service {self.name} not ready after {timeout_sec} s; see get_logs().")
            time.sleep(0.1)
        if show_output:
            print(f"{self.name}: {self.state} {self.scoring_uri or ''}", flush=True)
        if self.state != "Healthy":
            raise WebserviceException(f"Service {self.name} failed to start: {self.error}\n{self.get_logs()[-3000:]}")

    def run(self, input_data: str | bytes | dict[str, Any]) -> Any:
        """Score: send `input_data` (a JSON string, or a dict) to the service and return the decoded answer."""
        return score(self.name, str(self.scoring_uri), input_data)

    def get_logs(self, num_lines: int = 5000) -> str:
        log = _log_path(self.workspace, self.name)
        return "\n".join(log.read_text(errors="replace").splitlines()[-num_lines:]) if log.exists() else ""

    def delete(self) -> None:
        _stop(self._rec["pid"])
        self.workspace.store.delete_service(self.name)

    def reload(self, wait: bool = True) -> None:
        """Restart the service with its entry script and models read again (the SDK's LocalWebservice.reload).

        Edit score.py, call reload(), and the next request runs the new code; the port stays the same.
        """
        rec = self._rec
        _restart(self.workspace, self.name, json.loads(rec["models_json"]), json.loads(rec["config_json"]),
                 rec["port"])
        if wait:
            self.wait_for_deployment()

    def update(self, models: list[Model] | None = None, inference_config: InferenceConfig | None = None,
               deployment_config: Any = None, wait: bool = True, **_: Any) -> None:
        """Serve other models and/or another entry script or environment; what isn't given is kept."""
        rec = self._rec
        model_ids = [m.id for m in models] if models is not None else json.loads(rec["models_json"])
        if not model_ids:
            raise UserErrorException("update(models=[]) would leave the service with no model; pass at least one.")
        config = json.loads(rec["config_json"])
        if inference_config is not None:
            config.update(_inference_settings(self.workspace, inference_config))
        new_port = getattr(deployment_config, "port", None)
        if new_port:
            config["port"] = new_port
        _restart(self.workspace, self.name, model_ids, config, None if new_port else rec["port"])
        if wait:
            self.wait_for_deployment()

    @staticmethod
    def list(workspace: Workspace) -> list[Webservice]:
        return [Webservice(workspace, r["name"]) for r in workspace.store.list_services()]

    def __repr__(self) -> str:
        return f"Webservice(name={self.name!r}, state={self.state!r}, scoring_uri={self.scoring_uri!r})"


def _log_path(workspace: Workspace, name: str) -> Path:
    return workspace.path / "services" / name / "service_log.txt"


def deploy(workspace: Workspace, name: str, models: list[Model], inference_config: InferenceConfig | None = None,
           deployment_config: Any = None, deployment_target: Any = None, overwrite: bool = False) -> Webservice:
    if not _NAME.match(name or ""):
        raise UserErrorException(f"Service name {name!r} is not valid: 3-32 lowercase letters, digits or '-', starting "
                                 "with a letter (e.g. 'sklearn-iris-svc').")
    if not models:
        raise UserErrorException("Model.deploy needs at least one registered model.")
    existing = workspace.store.get_service(name)
    if existing is not None:
        if not overwrite:
            raise WebserviceException(f"A service named {name!r} exists; pass overwrite=True or delete it first.")
        Webservice(workspace, name).delete()
    if getattr(deployment_config, "compute_type", None) == "ACI":
        from nbml.models.aci import deploy as deploy_aci

        return deploy_aci(workspace, name, models, inference_config, deployment_config)
    config: dict[str, Any] = {"port": getattr(deployment_config, "port", None), "host": "127.0.0.1",
                              "python": sys.executable}
    if inference_config is None:
        not_sklearn = [m.id for m in models if (m.model_framework or "").lower() != "scikitlearn"]
        if not_sklearn:
            raise UserErrorException(
                f"No-code deployment serves scikit-learn models only; {', '.join(not_sklearn)} weren't registered with "
                "model_framework=Model.Framework.SCIKITLEARN. Pass inference_config=InferenceConfig(entry_script=...)."
            )
    else:
        config.update(_inference_settings(workspace, inference_config))
    workspace.store.put_service(name, [m.id for m in models], config, "Transitioning")
    _start(workspace, name, config)
    return Webservice(workspace, name)


def _inference_settings(workspace: Workspace, inference_config: InferenceConfig) -> dict[str, Any]:
    """Entry script, its folder and the interpreter to serve with (the environment built once, then reused)."""
    source = Path(inference_config.source_directory or ".").resolve()
    if not (source / inference_config.entry_script).is_file():
        raise UserErrorException(f"entry_script {inference_config.entry_script!r} not found in {source}.")
    settings: dict[str, Any] = {"entry_script": inference_config.entry_script, "source_directory": str(source)}
    if inference_config.environment is not None:
        from nbml.envbuild import ensure_local_env

        settings["python"] = ensure_local_env(workspace.path / "envs", inference_config.environment.spec(),
                                              lambda _l: None)
    return settings


def _start(workspace: Workspace, name: str, config: dict[str, Any]) -> None:
    """Start the serving process of a recorded service (``python -m nbml.models.serve``)."""
    log = _log_path(workspace, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        env["PYTHONPATH"] = str(checkout) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log, "ab") as fh:
        proc = subprocess.Popen([config.get("python") or sys.executable, "-m", "nbml.models.serve",
                                 str(workspace.path), name], stdout=fh, stderr=fh, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    workspace.store.update_service(name, pid=proc.pid)
    import threading

    threading.Thread(target=proc.wait, daemon=True).start()


def _stop(pid: int | None, timeout: float = 10) -> None:
    """End a service's process group and wait for it to go (so a restart can bind the same port)."""
    if not pid or not pid_alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _restart(workspace: Workspace, name: str, model_ids: list[str], config: dict[str, Any], port: int | None) -> None:
    rec = workspace.store.get_service(name)
    _stop(rec["pid"] if rec else None)
    if port and not config.get("port"):
        config = {**config, "port": port}  # the scoring URI stays the same across a reload
    workspace.store.put_service(name, model_ids, config, "Transitioning")
    _start(workspace, name, config)
