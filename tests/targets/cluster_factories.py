"""Factories for the docker and dask targets, usable by the shared contract suite and by focused tests.

Each factory takes a Workspace and returns a ready ComputeTarget backed by a real engine:

- `docker_target(ws)`: the Docker engine that `.ci/steps/30-docker.sh` starts, with the local base image
  it imports (``NBML_DOCKER_IMAGE``, default ``nbml-test-base:bookworm``); skipped when no engine answers,
  except under CI, where that is a failure.
- `dask_target(ws)`: an nbml-owned Dask cluster (LocalCluster in a detached host process) with 2 workers;
  `stop_dask_targets(ws)` stops every cluster of a workspace at teardown.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from nbml.compute.targets import ComputeTarget

BASE_IMAGE = os.environ.get("NBML_DOCKER_IMAGE", "nbml-test-base:bookworm")


def require_docker() -> None:
    """Skip (or fail under CI) unless a Docker engine answers and has the test base image."""
    problem = None
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        try:
            client.images.get(BASE_IMAGE)
        except docker.errors.ImageNotFound:
            problem = f"the base image {BASE_IMAGE} is missing (run .ci/steps/30-docker.sh)"
        client.close()
    except Exception as exc:
        problem = f"no Docker engine ({exc})"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a Docker engine: {problem}")
        pytest.skip(problem)


def docker_target(ws, name: str = "docker", **settings) -> ComputeTarget:  # type: ignore[no-untyped-def]
    from nbml.compute.docker_target import DockerCompute

    require_docker()
    settings.setdefault("base_image", BASE_IMAGE)
    return DockerCompute.attach(ws, name, **settings)


def dask_target(ws, name: str = "cpu-cluster", min_nodes: int = 2, max_nodes: int = 2,  # type: ignore[no-untyped-def]
                idle_seconds_before_scaledown: int = 60, wait: bool = True) -> ComputeTarget:
    from nbml.compute.dask_target import AmlCompute

    config = AmlCompute.provisioning_configuration(min_nodes=min_nodes, max_nodes=max_nodes,
                                                   idle_seconds_before_scaledown=idle_seconds_before_scaledown)
    target = ComputeTarget.create(ws, name, config)
    if wait:
        target.wait_for_completion(min_node_count=min_nodes, timeout_in_minutes=2)
    return target


def stop_dask_targets(ws) -> None:  # type: ignore[no-untyped-def]
    from nbml.compute import _dask_cluster

    for rec in ws.store.list_compute():
        if rec["kind"] == "dask":
            _dask_cluster.stop(ws.path, rec["name"])


def docker_containers(run_id: str) -> list[str]:
    """Ids of containers (any state) labelled with `run_id`."""
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=nbml.run_id={run_id}"],
                         capture_output=True, text=True, check=False)
    return out.stdout.split()
