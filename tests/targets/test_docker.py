"""The docker target against a real Docker engine: runs, images, cancel, cleanup and the errors a user sees."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from cluster_factories import BASE_IMAGE, docker_containers, docker_target, require_docker

from nbml import (
    ComputeTarget,
    ComputeTargetException,
    CondaDependencies,
    Environment,
    Experiment,
    Run,
    ScriptRunConfig,
)
from nbml.compute._docker_image import image_tag

pytestmark = pytest.mark.docker

TRAIN = """
import os, sys
from nbml import Run
run = Run.get_context()
for i in range(3):
    run.log("loss", 1.0 / (i + 1))
run.tag("where", os.getcwd())
os.makedirs("outputs", exist_ok=True)
open("outputs/model.txt", "w").write("weights")
print("python", sys.executable, "cwd", os.getcwd(), flush=True)
"""

SLEEPER = """
import time
from nbml import Run
run = Run.get_context()
for i in range(600):
    run.log("tick", i)
    time.sleep(0.2)
"""


def _gone(run: Run) -> None:
    _wait(run, lambda: docker_containers(run.id) == [], 20, "container left behind")


def _docker_env(name: str, image: str, *pip: str) -> Environment:
    env = Environment(name)
    env.docker.enabled = True
    env.docker.base_image = image
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=list(pip))
    return env


def _wait(run: Run, pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: run {run.id} is {run.get_status()}")


def test_script_run_in_a_container_streams_metrics_logs_and_outputs(ws, project):
    folder = project(**{"train.py": TRAIN})
    target = docker_target(ws)
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(folder), "train.py", compute_target=target))
    run.wait_for_completion(raise_on_error=True)
    assert run.get_status() == "Completed"
    assert run.get_metrics()["loss"] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert run.get_tags()["where"] == f"/tmp/nbml_run/{run.id}"  # it ran inside the container
    assert "outputs/model.txt" in run.get_file_names()
    assert (run.run_dir / "outputs" / "model.txt").read_text() == "weights"
    assert "python /usr/bin/python3" in (run.run_dir / "nbml-logs" / "driver_log.txt").read_text()
    _gone(run)  # the container is removed after the run


def test_docker_enabled_environment_on_the_local_target_runs_in_a_container(ws, project):
    require_docker()
    folder = project(**{"train.py": TRAIN})
    env = Environment("in-docker")
    env.docker.enabled = True
    env.docker.base_image = BASE_IMAGE
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(folder), "train.py", environment=env))
    run.wait_for_completion(raise_on_error=True)
    assert run.get_tags()["where"] == f"/tmp/nbml_run/{run.id}"
    _gone(run)


def test_copy_transfer_for_remote_engines_gives_the_same_results(ws, project):
    folder = project(**{"train.py": TRAIN})
    target = docker_target(ws, "docker-copy", transfer="copy")
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(folder), "train.py", compute_target=target))
    run.wait_for_completion(raise_on_error=True)
    assert run.get_metrics()["loss"][-1] == pytest.approx(1 / 3)
    assert (run.run_dir / "outputs" / "model.txt").read_text() == "weights"
    _gone(run)


def test_cancel_stops_and_removes_the_container(ws, project):
    folder = project(**{"sleeper.py": SLEEPER})
    target = docker_target(ws)
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(folder), "sleeper.py", compute_target=target))
    _wait(run, lambda: "tick" in run.get_metrics(), 60, "no metric arrived")
    t0 = time.monotonic()
    run.cancel()
    _wait(run, lambda: run.get_status() == "Canceled", 20, "not canceled")
    assert time.monotonic() - t0 < 20
    _gone(run)


def test_pip_dependencies_build_an_image_once_and_reuse_it(ws, project):
    folder = project(**{"uses_six.py": "import six\nprint('six', six.__version__)\n"})
    target = docker_target(ws)
    env = _docker_env("with-six", BASE_IMAGE, "six==1.16.0")
    # Start from an engine without that image, whatever earlier runs left.
    subprocess.run(["docker", "rmi", "-f", image_tag(BASE_IMAGE, env.spec())], capture_output=True, check=False)
    runs = []
    for _ in range(2):
        run = Experiment(ws, "docker").submit(
            ScriptRunConfig(str(folder), "uses_six.py", compute_target=target, environment=env))
        run.wait_for_completion(raise_on_error=True)
        runs.append(run)
    assert "six 1.16.0" in (runs[1].run_dir / "nbml-logs" / "driver_log.txt").read_text()
    assert "Building image" in (runs[0].run_dir / "nbml-logs" / "prepare_log.txt").read_text()
    second = (runs[1].run_dir / "nbml-logs" / "prepare_log.txt").read_text()
    assert "Reusing image" in second and "Building image" not in second


def test_failing_dependency_install_fails_the_run_with_the_build_log(ws, project):
    folder = project(**{"train.py": TRAIN})
    target = docker_target(ws)
    env = _docker_env("broken", BASE_IMAGE, "nbml-no-such-package-zz==0.0.1")
    run = Experiment(ws, "docker").submit(
        ScriptRunConfig(str(folder), "train.py", compute_target=target, environment=env))
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert "Building the Docker image" in error and "nbml-no-such-package-zz" in error
    assert "No matching distribution" in (run.run_dir / "nbml-logs" / "prepare_log.txt").read_text()


def test_missing_base_image_that_cannot_be_pulled_fails_with_what_to_do(ws, project):
    folder = project(**{"train.py": TRAIN})
    target = docker_target(ws)
    env = Environment.from_docker_image("nowhere", "nbml-no-such-image:404")
    run = Experiment(ws, "docker").submit(
        ScriptRunConfig(str(folder), "train.py", compute_target=target, environment=env))
    run.wait_for_completion(raise_on_error=False)
    error = run.get_details()["error"]["error"]["message"]
    assert run.get_status() == "Failed"
    assert "nbml-no-such-image:404" in error and "could not be pulled" in error and "docker images" in error


def test_unreachable_engine_is_refused_at_attach_and_nothing_is_stored(ws, tmp_path):
    from nbml.compute.docker_target import DockerCompute

    with pytest.raises(ComputeTargetException, match="Can't reach a Docker engine.*dockerd"):
        DockerCompute.attach(ws, "nowhere", docker_host=f"unix://{tmp_path}/no-docker.sock")
    assert ws.store.get_compute("nowhere") is None


def test_target_reloads_as_docker_compute_with_engine_status(ws):
    docker_target(ws)
    target = ComputeTarget(ws, "docker")
    assert type(target).__name__ == "DockerCompute"
    status = target.get_status()
    assert status["state"] == "Succeeded" and status["engine"]


@pytest.mark.slow
@pytest.mark.ssh
def test_remote_engine_over_ssh_runs_with_copy_transfer(ws, project, tmp_path, monkeypatch):
    """DOCKER_HOST=ssh://: through the system ssh client with host-key checking, to a real sshd on loopback."""
    require_docker()
    sshd = pytest.importorskip("sshd", reason="needs tests/targets/sshd.py (the SSH target's test server)")
    if sshd.available():
        pytest.skip(sshd.available())
    server = sshd.SshServer(tmp_path / "sshd").start()
    try:
        # The engine is reached as `ssh root@127.0.0.1 -p PORT docker system dial-stdio`: give that ssh the
        # test key and a known_hosts that trusts only the test server (as ~/.ssh/config would).
        config = tmp_path / "ssh_config"
        config.write_text(f"Host {server.host}\n  IdentityFile {server.client_key}\n  IdentitiesOnly yes\n"
                          f"  UserKnownHostsFile {server.known_hosts}\n  StrictHostKeyChecking yes\n"
                          "  BatchMode yes\n")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "ssh").write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n')
        (bin_dir / "ssh").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        folder = project(**{"train.py": TRAIN})
        target = docker_target(ws, "docker-ssh", docker_host=f"ssh://{server.user}@{server.host}:{server.port}")
        run = Experiment(ws, "docker").submit(ScriptRunConfig(str(folder), "train.py", compute_target=target))
        run.wait_for_completion(raise_on_error=True)
        assert run.get_tags()["where"] == f"/tmp/nbml_run/{run.id}"
        assert (run.run_dir / "outputs" / "model.txt").read_text() == "weights"
        assert "copy mode" in (run.run_dir / "nbml-logs" / "prepare_log.txt").read_text()
        _gone(run)  # removed through the same ssh connection, after the run ended
    finally:
        server.stop()


def test_engine_gone_after_attach_fails_the_run_with_what_to_do(ws, project, tmp_path):
    folder = project(**{"train.py": TRAIN})
    target = docker_target(ws, "docker-gone")
    config = target.config
    config["docker_host"] = f"unix://{tmp_path}/stopped-engine.sock"  # as if the engine had stopped since
    ws.store.update_compute("docker-gone", config=config)
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(folder), "train.py", compute_target="docker-gone"))
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Failed"
    assert "Can't reach a Docker engine" in run.get_details()["error"]["error"]["message"]
