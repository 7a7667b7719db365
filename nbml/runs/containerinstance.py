"""``run_config.target = "containerinstance"``: the SDK's Azure Container Instances target for script runs.

The run becomes one container on the workspace's Docker engine (see `nbml.compute.docker_aci`), limited to
``run_config.container_instance.cpu_cores`` CPUs and ``memory_gb`` GB by the engine. The environment is the
run's, built into an image on ``environment.docker.base_image`` (``DEFAULT_CPU_IMAGE`` when none is named);
the container runs whether or not ``environment.docker.enabled`` was set, since a container instance is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbml.workspace import Workspace

#: The SDK's target name; the compute record of that name is nbml.compute.docker_aci's (imported when used).
TARGET_NAME = "containerinstance"


@dataclass
class ContainerInstanceConfiguration:
    """``run_config.container_instance``: the container's limits (the SDK's defaults: 2 cores, 3.5 GB).

    ``region`` is kept for notebooks that set it; a local engine has no region, so it is not used.
    """

    cpu_cores: float = 2
    memory_gb: float = 3.5
    region: str | None = None


def is_container_instance(target: Any) -> bool:
    return target == TARGET_NAME or getattr(target, "name", None) == TARGET_NAME


def resolve(workspace: Workspace, target: Any, run_config: Any) -> tuple[Any, dict[str, float]]:
    """(target to resolve, limits to record with the run): for "containerinstance", the limits are checked
    against the engine first, then the target record is made to follow the workspace's engine; a refused
    submit leaves nothing behind. Other targets pass through with no limits."""
    if not is_container_instance(target):
        return target, {}
    from nbml.compute.docker_aci import check_limits, engine_config, ensure_target

    section = getattr(run_config, "container_instance", None) or ContainerInstanceConfiguration()
    engine = engine_config(workspace)
    limits = check_limits(engine, section.cpu_cores, section.memory_gb, "run_config.container_instance")
    ensure_target(workspace, engine)
    return TARGET_NAME, limits
