"""``run_config.target = "containerinstance"``: a container with engine-enforced CPU and memory limits."""

from __future__ import annotations

import time

import docker
import pytest
from cluster_factories import BASE_IMAGE, docker_containers, docker_target, require_docker

from nbml import ComputeTargetException, Experiment, ScriptRunConfig
from nbml.compute._docker_image import alias_default_image
from nbml.environment import DEFAULT_CPU_IMAGE
from nbml.errors import EnvironmentBuildError
from nbml.runs.config import RunConfiguration

pytestmark = pytest.mark.docker

WORK = """
import os, time
from nbml import Run
run = Run.get_context()
for i in range(40):
    run.log("step", i)
    if os.path.exists("release"):
        break
    time.sleep(0.25)
run.tag("where", os.getcwd())
"""

HOG = """
print("allocating 400 MB", flush=True)
block = b"x" * (400 << 20)  # one memset: over the limit at once, no interpreter paging in meanwhile
print("still alive?", flush=True)
"""


@pytest.fixture
def aci_env(monkeypatch):  # type: ignore[no-untyped-def]
    require_docker()
    # The engine's local base (the supervisor inherits it): what DEFAULT_CPU_IMAGE is made from when missing.
    monkeypatch.setenv("NBML_DOCKER_BASE_IMAGE", BASE_IMAGE)


def _aci_config(cpu_cores: float, memory_gb: float) -> RunConfiguration:
    rc = RunConfiguration()
    rc.target = "containerinstance"
    rc.container_instance.cpu_cores = cpu_cores
    rc.container_instance.memory_gb = memory_gb
    rc.environment.docker.enabled = True
    rc.environment.docker.base_image = DEFAULT_CPU_IMAGE
    return rc


def _host_config(run_id: str, timeout: float = 60) -> dict:  # type: ignore[type-arg]
    client = docker.from_env()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ids = docker_containers(run_id)
            if ids:
                return client.containers.get(ids[0]).attrs["HostConfig"]  # type: ignore[no-any-return]
            time.sleep(0.2)
    finally:
        client.close()
    raise AssertionError(f"no container for {run_id}")


def test_container_instance_run_has_the_asked_limits_while_it_runs(ws, project, aci_env):
    folder = project(**{"work.py": WORK})
    config = ScriptRunConfig(str(folder), "work.py", run_config=_aci_config(1, 2))
    run = Experiment(ws, "aci").submit(config)
    host = _host_config(run.id)
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Memory"] == 2 << 30 and host["MemorySwap"] == 2 << 30
    run.wait_for_completion(raise_on_error=True)
    assert run.get_details()["target"] == "containerinstance"
    assert run.get_tags()["where"] == f"/tmp/nbml_run/{run.id}"  # it ran in the container
    assert len(run.get_metrics()["step"]) >= 1
    assert ws.store.get_compute("containerinstance")["kind"] == "containerinstance"
    assert _eventually_gone(run.id)  # removed once the run is finalized


def _eventually_gone(run_id: str) -> bool:
    deadline = time.monotonic() + 20
    while docker_containers(run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    return docker_containers(run_id) == []


def test_a_script_over_memory_gb_fails_with_an_out_of_memory_message(ws, project, aci_env):
    folder = project(**{"hog.py": HOG})
    run = Experiment(ws, "aci").submit(ScriptRunConfig(str(folder), "hog.py", run_config=_aci_config(1, 0.125)))
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert "Out of memory" in error and "0.125 GB (128 MiB)" in error and "memory_gb" in error
    assert "allocating 400 MB" in error and "still alive?" not in error  # the script's last output is kept


def test_limits_beyond_the_engine_are_refused_at_submit_and_nothing_is_recorded(ws, project, aci_env):
    folder = project(**{"work.py": WORK})
    with pytest.raises(ComputeTargetException, match=r"cpu_cores=64 is more than the \d+ CPUs"):
        Experiment(ws, "aci").submit(ScriptRunConfig(str(folder), "work.py", run_config=_aci_config(64, 1)))
    with pytest.raises(ComputeTargetException, match="memory_gb must be a number of at least"):
        Experiment(ws, "aci").submit(ScriptRunConfig(str(folder), "work.py", run_config=_aci_config(1, 0)))
    assert ws.store.list_runs(limit=10) == [] and ws.store.get_compute("containerinstance") is None


def test_container_instances_follow_the_workspace_docker_target(ws, project, aci_env):
    docker_target(ws, "my-engine", network_mode="none")
    folder = project(**{"work.py": "print('ok')\n"})
    run = Experiment(ws, "aci").submit(ScriptRunConfig(str(folder), "work.py", run_config=_aci_config(0.5, 0.25)))
    run.wait_for_completion(raise_on_error=True)
    config = ws.store.get_compute("containerinstance")["config"]
    assert config["docker_target"] == "my-engine" and config["network_mode"] == "none"
    assert config["base_image"] == BASE_IMAGE  # the Docker target's own default image carries over


def test_default_cpu_image_is_made_from_a_local_base_or_explains_how(monkeypatch):
    require_docker()
    client = docker.from_env()
    try:
        monkeypatch.setenv("NBML_DOCKER_BASE_IMAGE", BASE_IMAGE)
        lines: list[str] = []
        assert alias_default_image(client, lines.append) == BASE_IMAGE
        assert client.images.get(DEFAULT_CPU_IMAGE).id == client.images.get(BASE_IMAGE).id
        assert lines == [f"Tagged {BASE_IMAGE} as {DEFAULT_CPU_IMAGE} (the default CPU image)"]
        monkeypatch.setenv("NBML_DOCKER_BASE_IMAGE", "nbml-no-such-base:1")
        monkeypatch.setenv("NBML_DOCKER_IMAGE", "nbml-no-such-test-image:1")
        monkeypatch.setattr("nbml.compute._docker_image.DEFAULT_BASE_IMAGE", "nbml-no-such-default:1")
        with pytest.raises(EnvironmentBuildError, match="NBML_DOCKER_BASE_IMAGE") as err:
            alias_default_image(client, lines.append)
        assert "nbml-no-such-base:1 (not on the engine)" in str(err.value)
        assert f"docker tag IMAGE {DEFAULT_CPU_IMAGE}" in str(err.value)
    finally:
        client.close()


def test_a_docker_environment_naming_no_image_runs_on_the_default_cpu_image(ws, project, aci_env):
    from nbml import Environment

    folder = project(**{"where.py": "import os\nfrom nbml import Run\nRun.get_context().tag('where', os.getcwd())\n"})
    env = Environment("docker-default")
    env.docker.enabled = True
    env.docker.base_image = None  # "the SDK's default image": nothing to pull offline, so nbml makes it
    run = Experiment(ws, "aci").submit(ScriptRunConfig(str(folder), "where.py", environment=env))
    run.wait_for_completion(raise_on_error=True)
    assert run.get_tags()["where"] == f"/tmp/nbml_run/{run.id}"
    client = docker.from_env()
    try:
        assert client.images.get(DEFAULT_CPU_IMAGE).id == client.images.get(BASE_IMAGE).id
    finally:
        client.close()
