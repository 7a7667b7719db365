"""Distributed jobs on the Docker and SSH targets: several ranks on one node, one run, cancel stops them all."""

from __future__ import annotations

import json

import pytest
from rankwait import wait_ranks

from nbml import Experiment, ScriptRunConfig
from nbml.core.runconfig import MpiConfiguration, PyTorchConfiguration

pytestmark = pytest.mark.slow

ENV_SCRIPT = """
import json, os, socket
from nbml import Run
seen = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK")}
seen["host"] = socket.gethostname()
Run.get_context().log("env", json.dumps(seen))
print("rank", seen["RANK"], "on", seen["host"], flush=True)
"""

MPI_SCRIPT = """
import os
from nbml import Run
rank, size = os.environ["OMPI_COMM_WORLD_RANK"], os.environ["OMPI_COMM_WORLD_SIZE"]
Run.get_context().log("mpi", f"{rank}/{size}")
print("mpi rank", rank, "of", size, flush=True)
"""

SLEEP = "import time\nfrom nbml import Run\nRun.get_context().log('up', 1)\ntime.sleep(600)\n"


def _pytorch_env_job(ws, target: str) -> list[dict]:  # type: ignore[no-untyped-def]
    run = Experiment(ws, "ddp").submit(ScriptRunConfig(
        ".", "train.py", compute_target=target,
        distributed_job_config=PyTorchConfiguration("Gloo", process_count=2)))
    run.wait_for_completion(timeout_seconds=240)
    envs = [json.loads(v) for v in run.get_metrics()["env"]]
    assert sorted(e["RANK"] for e in envs) == ["0", "1"] and {e["WORLD_SIZE"] for e in envs} == {"2"}
    assert len({e["MASTER_PORT"] for e in envs}) == 1 and len({e["host"] for e in envs}) == 1
    assert "rank 1 on" in run.get_rank_log(1)
    return envs


@pytest.mark.docker
def test_docker_target_runs_pytorch_style_ranks_in_one_container(ws, project) -> None:  # type: ignore[no-untyped-def]
    from cluster_factories import docker_target

    project(**{"train.py": ENV_SCRIPT})
    _pytorch_env_job(ws, docker_target(ws).name)


@pytest.mark.docker
def test_docker_target_runs_mpi_ranks_with_open_mpi_in_the_image(ws, project) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess

    from cluster_factories import docker_target

    image = "nbml-test-mpi:bookworm"  # the base image plus openmpi-bin (.ci/steps/45-distributed.sh)
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build {image} (.ci/steps/45-distributed.sh)")
        pytest.skip(f"{image} is not built (.ci/steps/45-distributed.sh builds it)")
    project(**{"mpi.py": MPI_SCRIPT})
    target = docker_target(ws, "docker-mpi", base_image=image).name
    run = Experiment(ws, "mpi").submit(ScriptRunConfig(
        ".", "mpi.py", compute_target=target, distributed_job_config=MpiConfiguration(process_count_per_node=2)))
    run.wait_for_completion(timeout_seconds=240)
    assert sorted(run.get_metrics()["mpi"]) == ["0/2", "1/2"]
    assert "mpi rank 1 of 2" in run.get_rank_log(1)


@pytest.mark.ssh
def test_ssh_target_runs_pytorch_style_and_mpi_ranks_on_its_host(ws, project, sshd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sshd import ssh_attach_args

    from nbml import RemoteCompute

    RemoteCompute.attach(ws, "ssh-box", **ssh_attach_args(sshd, tmp_path))
    project(**{"train.py": ENV_SCRIPT, "mpi.py": MPI_SCRIPT, "sleep.py": SLEEP})
    _pytorch_env_job(ws, "ssh-box")
    run = Experiment(ws, "mpi").submit(ScriptRunConfig(
        ".", "mpi.py", compute_target="ssh-box", distributed_job_config=MpiConfiguration(process_count_per_node=2)))
    run.wait_for_completion(timeout_seconds=240)
    assert sorted(run.get_metrics()["mpi"]) == ["0/2", "1/2"]
    run = Experiment(ws, "cancel").submit(ScriptRunConfig(
        ".", "sleep.py", compute_target="ssh-box", distributed_job_config=PyTorchConfiguration("Gloo", process_count=2)))
    wait_ranks(run, 2)
    run.cancel()
    run.wait_for_completion(timeout_seconds=60, raise_on_error=False)
    assert run.get_status() == "Canceled"
    ranks = run.get_details()["distributed"]["ranks"]
    from rankwait import alive

    assert alive([int(r["pid"]) for r in ranks.values()]) == []  # the sshd is on this machine: same pids
