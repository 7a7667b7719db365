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

from typing import TYPE_CHECKING, Any

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


def ensure_target(workspace: Workspace) -> dict[str, Any]:
    """Create or refresh the ``containerinstance`` target record; returns its config."""
    config = engine_config(workspace)
    rec = workspace.store.get_compute(TARGET_NAME)
    if rec is None:
        workspace.store.add_compute(TARGET_NAME, KIND, config)
    elif rec["kind"] != KIND:
        raise ComputeTargetException(
            f"The workspace has a {rec['kind']} target named {TARGET_NAME!r}, so that name can't mean a container "
            "instance; detach it or rename it (ComputeTarget(ws, 'containerinstance').detach()).")
    elif rec["config"] != config:
        workspace.store.update_compute(TARGET_NAME, config=config)
    return config
