"""`DockerCompute`: a Docker engine (this machine's, or a remote one over tcp:// or ssh://) as a target."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from nbml.compute.targets import ComputeTarget
from nbml.errors import ComputeTargetException

if TYPE_CHECKING:
    from nbml.workspace import Workspace

TRANSFERS = ("auto", "bind", "copy")


@dataclasses.dataclass
class DockerConfiguration:
    """Settings of a Docker target; build it with `DockerCompute.attach_configuration`."""

    docker_host: str | None = None
    base_image: str | None = None
    network_mode: str | None = None
    transfer: str = "auto"
    shm_size: str | None = None
    user: str | None = None
    kind: str = dataclasses.field(default="docker", init=False)

    def validate(self, workspace: Workspace, name: str) -> dict[str, Any]:
        """Check the settings and that the engine answers, before anything is written to the store."""
        from nbml.compute._docker_image import connect

        if self.transfer not in TRANSFERS:
            raise ComputeTargetException(f"transfer must be one of {', '.join(TRANSFERS)}, not {self.transfer!r}.")
        client = connect(self.docker_host, timeout=20)
        client.close()
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "kind"}


class DockerCompute(ComputeTarget):
    """Runs each job in a container on a Docker engine.

    Examples
    --------
    >>> cfg = DockerCompute.attach_configuration(base_image="python:3.11-slim")      # doctest: +SKIP
    >>> target = ComputeTarget.attach(ws, "docker", cfg)                             # doctest: +SKIP
    """

    type = "DockerCompute"
    kind = "docker"

    @staticmethod
    def attach_configuration(docker_host: str | None = None, base_image: str | None = None,
                             network_mode: str | None = None, transfer: str = "auto",
                             shm_size: str | None = None, user: str | None = None) -> DockerConfiguration:
        """Settings for `ComputeTarget.attach(ws, name, config)`.

        Parameters
        ----------
        docker_host
            The engine: ``unix:///var/run/docker.sock``, ``tcp://host:2376`` or ``ssh://user@host``. Default:
            ``DOCKER_HOST``, else the local socket.
        base_image
            The image used when the run's environment names none (``Environment.docker.base_image``).
        network_mode
            The containers' network (``bridge``, ``none``, ``host``...). Default: ``bridge`` when the engine
            has one, else ``none``.
        transfer
            ``bind`` mounts the job folder from this machine, ``copy`` ships it through the engine's archive
            API (needed for a remote engine), ``auto`` picks by the engine's address.
        shm_size
            Shared memory for the containers, e.g. ``"2g"`` (PyTorch data loaders need more than 64 MB).
        user
            ``uid:gid`` to run as; default: yours for ``bind`` (so files in the job folder stay yours).
        """
        return DockerConfiguration(docker_host=docker_host, base_image=base_image, network_mode=network_mode,
                                   transfer=transfer, shm_size=shm_size, user=user)

    provisioning_configuration = attach_configuration

    @staticmethod
    def attach(workspace: Workspace, name: str, attach_configuration: Any = None, **kwargs: Any) -> ComputeTarget:
        """Attach an engine: ``DockerCompute.attach(ws, "docker")`` or with a configuration / its keywords."""
        config = attach_configuration or DockerCompute.attach_configuration(**kwargs)
        return ComputeTarget.attach(workspace, name, config)
