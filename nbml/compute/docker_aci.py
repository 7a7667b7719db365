"""Azure Container Instances, locally: containers with CPU and memory limits on the workspace's Docker engine.

The SDK's ``run_config.target = "containerinstance"`` and ``AciWebservice`` both run a container on Azure;
nbml runs it on the Docker engine the workspace already uses. Which engine: the workspace's `DockerCompute`
target if it has one (the first by name when it has several), else this machine's engine (``DOCKER_HOST`` or
the local socket). The limits are the engine's own (cgroups: ``nano_cpus``, ``mem_limit``), so a job that
uses more memory than asked is killed, as on ACI.

A run's target record is named ``containerinstance`` (kind ``containerinstance``); it is created on the first
submit and refreshed on every submit, so that it follows the workspace's Docker target.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.compute.base import EnvSpec
from nbml.compute.docker import DockerBackend
from nbml.errors import ComputeTargetException

if TYPE_CHECKING:
    from nbml.workspace import Workspace

TARGET_NAME = "containerinstance"
KIND = "containerinstance"
#: DockerCompute settings that carry over to container instances on the same engine.
_ENGINE_KEYS = ("docker_host", "base_image", "network_mode", "transfer", "user", "shm_size")


class ContainerInstanceBackend(DockerBackend):
    """The docker backend; the job's `resources` (set from run_config.container_instance) become limits."""

    kind = KIND


def engine_config(workspace: Workspace) -> dict[str, Any]:
    """The Docker settings container instances use in `workspace` (see the module docstring)."""
    from nbml.environment import DEFAULT_CPU_IMAGE

    dockers = sorted((r for r in workspace.store.list_compute() if r["kind"] == "docker"), key=lambda r: r["name"])
    config: dict[str, Any] = {"docker_target": None}
    if dockers:
        config["docker_target"] = dockers[0]["name"]
        config.update({k: v for k, v in dockers[0]["config"].items() if k in _ENGINE_KEYS and v is not None})
    config.setdefault("base_image", DEFAULT_CPU_IMAGE)
    return config


def check_limits(config: dict[str, Any], cpu_cores: float, memory_gb: float, what: str) -> dict[str, float]:
    """Validate the limits against the engine (which must answer); returns {"cpu_cores", "memory_gb"}."""
    from nbml.compute._docker_image import connect

    for name, value, low in (("cpu_cores", cpu_cores, 0.01), ("memory_gb", memory_gb, 0.01)):
        if not isinstance(value, int | float) or isinstance(value, bool) or value < low:
            raise ComputeTargetException(f"{what}.{name} must be a number of at least {low}, not {value!r}.")
    client = connect(config.get("docker_host"), timeout=20)
    try:
        info = client.info()
    finally:
        client.close()
    ncpu, mem = int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0)
    engine = config.get("docker_target") or "this machine's Docker engine"
    if ncpu and cpu_cores > ncpu:
        raise ComputeTargetException(f"{what}.cpu_cores={cpu_cores:g} is more than the {ncpu} CPUs of {engine}; "
                                     f"ask for at most {ncpu}.")
    if mem and memory_gb * (1 << 30) > mem:
        raise ComputeTargetException(f"{what}.memory_gb={memory_gb:g} is more than the {mem / (1 << 30):.1f} GB of "
                                     f"{engine}; ask for less.")
    return {"cpu_cores": float(cpu_cores), "memory_gb": float(memory_gb)}


def ensure_target(workspace: Workspace, config: dict[str, Any]) -> None:
    """Create or refresh the ``containerinstance`` target record with `config` (from `engine_config`)."""
    rec = workspace.store.get_compute(TARGET_NAME)
    if rec is None:
        try:
            workspace.store.add_compute(TARGET_NAME, KIND, config)
            return
        except sqlite3.IntegrityError:  # another submit created it just now
            rec = workspace.store.get_compute(TARGET_NAME)
            assert rec is not None
    if rec["kind"] != KIND:
        raise ComputeTargetException(
            f"The workspace has a {rec['kind']} target named {TARGET_NAME!r}, so that name can't mean a container "
            "instance; detach it or rename it (ComputeTarget(ws, 'containerinstance').detach()).")
    elif rec["config"] != config:
        workspace.store.update_compute(TARGET_NAME, config=config)


# -- long-lived service containers (AciWebservice) -----------------------------------------------------
PORT_IN_CONTAINER = 5001
LABEL_SERVICE = "nbml.service"
_clients: dict[str, Any] = {}


def _client(engine: dict[str, Any]) -> Any:
    from nbml.compute._docker_image import connect

    key = engine.get("docker_host") or ""
    if key not in _clients:
        _clients[key] = connect(engine.get("docker_host"), timeout=600)  # image builds pause for long
    return _clients[key]


def serving_spec(env: EnvSpec | None) -> EnvSpec:
    """The environment to serve in: the inference config's, else scikit-learn, joblib and numpy pinned to the
    versions here, so that a model pickled by this process loads the same in the container."""
    if env is not None:
        return env
    from importlib.metadata import version

    pins = [f"{p}=={version(p)}" for p in ("scikit-learn", "joblib", "numpy")]
    return EnvSpec(name="nbml-sklearn-serving", hash="sklearn-" + "-".join(pins), user_managed=False, pip=pins)


def start_service(workspace: Workspace, name: str, config: dict[str, Any], env: EnvSpec | None,
                  log_path: Path) -> dict[str, Any]:
    """Build (once) the serving image and start the service container; returns `config` with where it runs.

    The models folder and the entry script's folder are mounted read-only at their paths here (copied in for
    a remote engine), so the scorer finds them where the store says they are.
    """
    import nbml
    from nbml.compute._docker_image import ensure_image
    from nbml.compute.docker import NBML_MOUNT, _remove_stale, _tar_dir, is_remote, limits

    engine = config["engine"]
    client = _client(engine)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as fh:
        image, python = ensure_image(client, serving_spec(env), engine.get("base_image"),
                                     lambda line: print(line, file=fh, flush=True))
    local = not is_remote(engine.get("docker_host"))
    networks = {n.name for n in client.networks.list()}
    kwargs: dict[str, Any] = {}
    if "bridge" in networks and engine.get("network_mode") in (None, "bridge"):
        host, port = "0.0.0.0", PORT_IN_CONTAINER
        kwargs["ports"] = {f"{port}/tcp": ("127.0.0.1" if local else "0.0.0.0", None)}
    else:  # no bridge (dockerd --bridge=none): host networking on a free port
        host, port = ("127.0.0.1" if local else "0.0.0.0"), _free_port()
        kwargs["network_mode"] = "host"
    folders = [str(workspace.path / "models")] + ([config["source_directory"]] if config.get("source_directory") else [])
    spec = {"host": host, "port": port, "models": config["models"], "key_hashes": config.get("key_hashes"),
            "models_root": str(workspace.path), "config": {k: config[k] for k in ("entry_script", "source_directory")
                                                           if config.get(k)}}
    pkg = Path(nbml.__file__).resolve().parent
    transfer = engine.get("transfer") or ("bind" if local else "copy")
    if transfer == "bind":
        kwargs["volumes"] = {str(pkg): {"bind": f"{NBML_MOUNT}/nbml", "mode": "ro"},
                             **{f: {"bind": f, "mode": "ro"} for f in folders}}
        kwargs["user"] = engine.get("user") or f"{os.getuid()}:{os.getgid()}"
    cname = "nbml-svc-" + name
    _remove_stale(client, cname)
    container = client.containers.create(
        image=image, command=[python, "-m", "nbml.models.aci"], name=cname, detach=True,
        environment={"NBML_ACI_SPEC": json.dumps(spec), "PYTHONPATH": NBML_MOUNT, "HOME": "/tmp",
                     "PYTHONUNBUFFERED": "1"},
        labels={LABEL_SERVICE: name, "nbml.workspace": str(workspace.path)},
        **limits({"cpu_cores": config["cpu_cores"], "memory_gb": config["memory_gb"]}), **kwargs)
    try:
        if transfer == "copy":
            container.put_archive("/", _tar_dir(pkg, f"{NBML_MOUNT}/nbml"[1:]))
            for folder in folders:
                container.put_archive("/", _tar_dir(Path(folder), folder.lstrip("/")))
        container.start()
        if "ports" in kwargs:
            container.reload()
            port = int(container.attrs["NetworkSettings"]["Ports"][f"{PORT_IN_CONTAINER}/tcp"][0]["HostPort"])
    except BaseException:
        container.remove(force=True)
        raise
    return {**config, "container": container.id, "port": port}


def service_state(config: dict[str, Any]) -> tuple[str, str | None]:
    """("running" | "Failed", why) of a service container."""
    import docker.errors

    from nbml.compute.docker import oom_reason

    try:
        container = _client(config["engine"]).containers.get(config["container"])
    except docker.errors.NotFound:
        return "Failed", "the service's container was removed from the Docker engine"
    state = container.attrs.get("State", {})
    if state.get("Status") in ("created", "running", "restarting"):
        return "running", None
    if state.get("OOMKilled"):
        return "Failed", oom_reason(container.attrs.get("HostConfig") or {})
    tail = container.logs(tail=20).decode(errors="replace").strip()
    return "Failed", f"the service's container exited with code {state.get('ExitCode')}:\n{tail}"


def service_logs(config: dict[str, Any], num_lines: int) -> str:
    import docker.errors

    try:
        container = _client(config["engine"]).containers.get(config["container"])
    except docker.errors.NotFound:
        return ""
    return str(container.logs(tail=num_lines).decode(errors="replace"))


def remove_service(config: dict[str, Any]) -> None:
    import docker.errors

    if not config.get("container"):
        return
    try:
        _client(config["engine"]).containers.get(config["container"]).remove(force=True)
    except docker.errors.NotFound:
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
