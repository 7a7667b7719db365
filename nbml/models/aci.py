"""``AciWebservice``: a model deployed "to Azure Container Instances" runs as a container on the Docker engine
the workspace uses (see `nbml.compute.docker_aci`), with the CPU and memory limits asked for enforced by it.

The container serves with the same code as a local service (`nbml.models.serve`'s scorer and handler), run by
``python -m nbml.models.aci`` from a JSON spec in its environment: the models and the entry script are mounted
read-only at the paths they have here (copied in for a remote engine). Networking: the engine's port mapping
when it has a bridge network, else host networking on a free port (engines started with ``--bridge=none``).
With ``auth_enabled=True`` the service wants ``Authorization: Bearer <key>``; only hashes of the keys are
stored, so `get_keys()` answers in the process that deployed it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from nbml.errors import UserErrorException
from nbml.models.deploy import Webservice, WebserviceException, score

if TYPE_CHECKING:
    from nbml.models.deploy import InferenceConfig
    from nbml.models.registry import Model
    from nbml.workspace import Workspace

COMPUTE_TYPE = "ACI"
_KEYS: dict[tuple[str, str], tuple[str, str]] = {}  # (workspace, service) -> keys, this process only


class AciServiceDeploymentConfiguration:
    """What `AciWebservice.deploy_configuration` returns; `Model.deploy` recognises it by ``compute_type``."""

    compute_type = COMPUTE_TYPE

    def __init__(self, cpu_cores: float = 0.1, memory_gb: float = 0.5, tags: dict[str, str] | None = None,
                 properties: dict[str, str] | None = None, description: str | None = None,
                 auth_enabled: bool = False, location: str | None = None) -> None:
        self.cpu_cores, self.memory_gb = cpu_cores, memory_gb
        self.tags, self.properties = dict(tags or {}), dict(properties or {})
        self.description, self.auth_enabled, self.location = description, bool(auth_enabled), location


class AciWebservice(Webservice):
    """A service in a container with CPU and memory limits (the SDK's ACI deployment, on a Docker engine)."""

    @staticmethod
    def deploy_configuration(cpu_cores: float | None = None, memory_gb: float | None = None,
                             tags: dict[str, str] | None = None, properties: dict[str, str] | None = None,
                             description: str | None = None, location: str | None = None,
                             auth_enabled: bool | None = None, **_: Any) -> AciServiceDeploymentConfiguration:
        """Limits (the SDK's defaults: 0.1 cores, 0.5 GB) and metadata; Azure-only settings (ssl, dns label,
        app insights...) are accepted and have no effect on a local engine."""
        return AciServiceDeploymentConfiguration(0.1 if cpu_cores is None else cpu_cores,
                                                 0.5 if memory_gb is None else memory_gb, tags, properties,
                                                 description, bool(auth_enabled), location)

    @property
    def _config(self) -> dict[str, Any]:
        return json.loads(self._rec["config_json"])  # type: ignore[no-any-return]

    @property
    def compute_type(self) -> str:
        return COMPUTE_TYPE

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._config.get("tags") or {})

    @property
    def description(self) -> str | None:
        return self._config.get("description")

    @property
    def cpu_cores(self) -> float:
        return float(self._config["cpu_cores"])

    @property
    def memory_gb(self) -> float:
        return float(self._config["memory_gb"])

    @property
    def scoring_uri(self) -> str | None:
        port = self.port
        return f"http://{self._config.get('address', '127.0.0.1')}:{port}/score" if port else None

    @property
    def state(self) -> str:
        rec = self._rec
        if rec["state"] not in ("Transitioning", "Healthy"):
            return str(rec["state"])
        state, error = _probe(self._config, rec["port"])
        if state != rec["state"]:
            self.workspace.store.update_service(self.name, state=state, error=error)
        return state

    def get_keys(self) -> tuple[str, str]:
        if not self._config.get("auth_enabled"):
            raise WebserviceException(f"Service {self.name} has auth_enabled=False: it takes no keys.")
        keys = _KEYS.get((str(self.workspace.path), self.name))
        if keys is None:
            raise WebserviceException(f"The keys of {self.name} are kept only by the process that deployed it (nbml "
                                      "stores their hashes); redeploy with overwrite=True for new ones.")
        return keys

    def run(self, input_data: str | bytes | dict[str, Any]) -> Any:
        """Score: send `input_data` (a JSON string, or a dict) to the service and return the decoded answer."""
        headers = {}
        keys = _KEYS.get((str(self.workspace.path), self.name))
        if self._config.get("auth_enabled") and keys:
            headers["Authorization"] = f"Bearer {keys[0]}"
        return score(self.name, str(self.scoring_uri), input_data, headers)

    def get_logs(self, num_lines: int = 5000) -> str:
        from nbml.compute.docker_aci import service_logs

        return service_logs(self._config, num_lines)

    def delete(self) -> None:
        from nbml.compute.docker_aci import remove_service

        remove_service(self._config)
        _KEYS.pop((str(self.workspace.path), self.name), None)
        self.workspace.store.delete_service(self.name)

    def __repr__(self) -> str:
        return f"AciWebservice(name={self.name!r}, state={self.state!r}, scoring_uri={self.scoring_uri!r})"


def deploy(workspace: Workspace, name: str, models: list[Model], inference_config: InferenceConfig | None,
           deployment_config: AciServiceDeploymentConfiguration) -> AciWebservice:
    """Start the service's container; `Model.deploy` hands ACI deployments here after its own checks."""
    from nbml.compute.docker_aci import check_limits, engine_config, start_service
    from nbml.models.deploy import _log_path

    if inference_config is None:
        not_sklearn = [m.id for m in models if (m.model_framework or "").lower() != "scikitlearn"]
        if not_sklearn:
            raise UserErrorException(
                f"No-code deployment serves scikit-learn models only; {', '.join(not_sklearn)} weren't registered with "
                "model_framework=Model.Framework.SCIKITLEARN. Pass inference_config=InferenceConfig(entry_script=...).")
    elif not (Path(inference_config.source_directory or ".").resolve() / inference_config.entry_script).is_file():
        raise UserErrorException(f"entry_script {inference_config.entry_script!r} not found in "
                                 f"{Path(inference_config.source_directory or '.').resolve()}.")
    engine = engine_config(workspace)
    limits = check_limits(engine, deployment_config.cpu_cores, deployment_config.memory_gb,
                          "AciWebservice.deploy_configuration")
    keys = (secrets.token_urlsafe(24), secrets.token_urlsafe(24)) if deployment_config.auth_enabled else None
    config: dict[str, Any] = {
        "compute_type": COMPUTE_TYPE, **limits, "tags": deployment_config.tags,
        "properties": deployment_config.properties, "description": deployment_config.description,
        "auth_enabled": deployment_config.auth_enabled, "key_hashes": [_hash(k) for k in keys] if keys else [],
        "engine": engine, "address": _address(engine.get("docker_host")),
    }
    records = [workspace.store.get_model(*_split(m.id)) for m in models]
    config["models"] = [{"id": m.id, "path": str(r["path"])} for m, r in zip(models, records, strict=True) if r]
    if inference_config is not None:
        source = Path(inference_config.source_directory or ".").resolve()
        config.update(entry_script=inference_config.entry_script, source_directory=str(source))
    env = inference_config.environment if inference_config is not None else None
    workspace.store.put_service(name, [m.id for m in models], config, "Transitioning")
    try:
        config = start_service(workspace, name, config, env.spec() if env is not None else None,
                               _log_path(workspace, name))
    except BaseException as exc:
        workspace.store.update_service(name, state="Failed", error=f"{type(exc).__name__}: {exc}")
        raise
    workspace.store.put_service(name, [m.id for m in models], config, "Transitioning", port=config["port"])
    if keys:
        _KEYS[(str(workspace.path), name)] = keys
    return AciWebservice(workspace, name)


def _probe(config: dict[str, Any], port: int | None) -> tuple[str, str | None]:
    """(state, error) from the container's status and a health request."""
    from nbml.compute.docker_aci import service_state

    status, error = service_state(config)
    if status != "running":
        return "Failed", error
    try:
        with urllib.request.urlopen(f"http://{config.get('address', '127.0.0.1')}:{port}/", timeout=2) as resp:
            return ("Healthy", None) if resp.status == 200 else ("Transitioning", None)
    except (OSError, urllib.error.URLError):
        return "Transitioning", None


def _address(docker_host: str | None) -> str:
    host = docker_host or os.environ.get("DOCKER_HOST") or ""
    if host.startswith(("tcp://", "ssh://")):
        return urlparse(host).hostname or "127.0.0.1"
    return "127.0.0.1"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _split(model_id: str) -> tuple[str, int]:
    name, _, version = model_id.rpartition(":")
    return name, int(version)


# -- inside the container --------------------------------------------------------------------------
def serve(spec: dict[str, Any]) -> None:
    """``python -m nbml.models.aci`` in the container: the local service's scorer behind an optional key check."""
    from nbml.models.serve import _handler, _load_scorer

    # Model.get_model_path(name) in the entry script's init(): no workspace here, the service's models instead.
    os.environ["NBML_SERVICE_MODELS"] = json.dumps(spec["models"])
    score = _load_scorer(Path(spec.get("models_root") or "/"), spec["models"], spec["config"])
    base = _handler(score)
    hashes = set(spec.get("key_hashes") or [])

    class Handler(base):  # type: ignore[valid-type,misc]
        def do_POST(self) -> None:
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if hashes and _hash(token) not in hashes:
                self._send(401, {"error": "this service has auth_enabled: send Authorization: Bearer <key> "
                                          "(service.get_keys())"})
                return
            super().do_POST()

    server = ThreadingHTTPServer((spec["host"], int(spec["port"])), Handler)
    print(f"serving on http://{spec['host']}:{server.server_address[1]}/score", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    try:
        serve(json.loads(os.environ["NBML_ACI_SPEC"]))
    except Exception:
        import traceback

        traceback.print_exc()
        time.sleep(0.5)
        sys.exit(1)
