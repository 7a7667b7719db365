"""AmlCompute built from the user's SSH hosts (Dask's SSHCluster) against a real loopback sshd: two "hosts"
(127.0.0.1 and localhost, each with its own known_hosts line), a script job and a 2-node gang job; clear errors,
with nothing recorded, for an unknown host key, an unreachable host and a host whose Python lacks Dask."""

from __future__ import annotations

import json
import sys

import pytest
from sshd import free_port

from nbml import Experiment, ScriptRunConfig
from nbml.compute.dask_target import AmlCompute
from nbml.compute.targets import ComputeTarget
from nbml.core.runconfig import PyTorchConfiguration
from nbml.errors import ComputeTargetException

pytestmark = pytest.mark.dask

NODE_ENV = """
import json, os
from nbml import Run
keys = ("RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
Run.get_context().log("env", json.dumps({k: os.environ.get(k) for k in keys}))
print("rank", os.environ.get("RANK", "-"), "ran", flush=True)
"""


def _known_hosts(sshd, tmp_path, names=("127.0.0.1", "localhost")):  # type: ignore[no-untyped-def]
    key = sshd.host_key.with_suffix(".pub").read_text().split()
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"[{n}]:{sshd.port} {key[0]} {key[1]}\n" for n in names))
    return path


def _config(sshd, known_hosts, hosts=None, **extra):  # type: ignore[no-untyped-def]
    hosts = hosts or [f"127.0.0.1:{sshd.port}", f"{sshd.user}@localhost:{sshd.port}"]
    return AmlCompute.provisioning_configuration(
        ssh_hosts=hosts, ssh_username=sshd.user, ssh_private_key_file=str(sshd.client_key),
        ssh_known_hosts=str(known_hosts), remote_python=extra.pop("remote_python", sys.executable), **extra)


def test_bad_ssh_hosts_fail_at_create_naming_the_host_and_record_nothing(ws, sshd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    unknown = _known_hosts(sshd, tmp_path, names=())  # no key recorded for the host
    with pytest.raises(ComputeTargetException, match=r"host key of 127.0.0.1:\d+ is not trusted.*ssh-keyscan"):
        ComputeTarget.create(ws, "mine", _config(sshd, unknown, hosts=[f"127.0.0.1:{sshd.port}"]))
    known = _known_hosts(sshd, tmp_path)
    nobody = free_port()
    with pytest.raises(ComputeTargetException, match=rf"Can't reach SSH host .*127.0.0.1:{nobody}"):
        ComputeTarget.create(ws, "mine", _config(sshd, known, hosts=[f"127.0.0.1:{nobody}"]))
    with pytest.raises(ComputeTargetException, match=r"can't import Dask and nbml .*distributed.*pip install"):
        ComputeTarget.create(ws, "mine", _config(sshd, known, hosts=[f"127.0.0.1:{sshd.port}"],
                                                 remote_python="/usr/bin/python3"))
    with pytest.raises(ComputeTargetException, match="no Python at /nowhere/python"):
        ComputeTarget.create(ws, "mine", _config(sshd, known, hosts=[f"127.0.0.1:{sshd.port}"],
                                                 remote_python="/nowhere/python"))
    with pytest.raises(ComputeTargetException, match="is not a host"):
        AmlCompute.provisioning_configuration(ssh_hosts=["a@b@c"])
    assert ws.store.list_compute() == []


@pytest.mark.slow
def test_cluster_of_two_ssh_hosts_runs_a_script_and_a_two_node_job(ws, project, sshd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cluster_factories import stop_dask_targets

    project(**{"env.py": NODE_ENV})
    target = ComputeTarget.create(ws, "mine", _config(sshd, _known_hosts(sshd, tmp_path)))
    try:
        assert target.config["ssh"]["private_key_file"] == str(sshd.client_key)  # a path, never the key
        assert target.config["max_nodes"] == 2
        target.wait_for_completion(min_node_count=2, timeout_in_minutes=3)
        nodes = target.list_nodes()
        assert len(nodes) == 2
        run = Experiment(ws, "ssh-cluster").submit(ScriptRunConfig(".", "env.py", compute_target="mine"))
        run.wait_for_completion(timeout_seconds=180)
        assert "rank - ran" in run.get_details_with_logs()["logFiles"]["nbml-logs/driver_log.txt"]
        run = Experiment(ws, "ssh-cluster").submit(ScriptRunConfig(
            ".", "env.py", compute_target="mine",
            distributed_job_config=PyTorchConfiguration("Gloo", process_count=2, node_count=2)))
        run.wait_for_completion(timeout_seconds=180)
        envs = [json.loads(v) for v in run.get_metrics()["env"]]
        assert sorted((e["RANK"], e["NODE_RANK"]) for e in envs) == [("0", "0"), ("1", "1")]
        placed = json.loads(ws.store.get_run(run.id)["handle_json"])["data"]["nodes"]
        assert len({p["worker"] for p in placed}) == 2  # one task on each host's worker
    finally:
        stop_dask_targets(ws)
