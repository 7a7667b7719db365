"""An AmlCompute cluster built from SSH hosts the user has: Dask's ``SSHCluster``, one worker per host.

``AmlCompute.provisioning_configuration(ssh_hosts=["gpu1", "alice@gpu2:2222"], ...)``: the first host also
runs the scheduler (Dask's convention), every host runs one worker (a node). Connections go through asyncssh
with host keys checked against known_hosts (never trusted blindly) and a key file or the ssh-agent; nothing
secret is stored, only the key file's absolute path. Before the target is recorded, each host is reached
and its Python asked to import ``distributed`` and ``nbml`` (the workers run nbml's job task), so an
unreachable host, an unknown host key or a host without Dask fails with a message naming that host.

Job folders live in ``shared_dir``, which every host must see at the same path (NFS or the like), as with
any Dask cluster of nbml. The scheduler and workers are started by the cluster-host process
(``_dask_host``) that owns the cluster for the workspace, and stopped with it.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import shlex
from typing import Any

from nbml.errors import ComputeTargetException

_HOST = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s\[\]]+)(?::(?P<port>\d+))?$")


def parse_hosts(hosts: Any, username: str | None, port: int) -> list[dict[str, Any]]:
    """``["host", "user@host:2222"]`` -> ``[{"address", "port", "username"}]``; clear errors on bad entries."""
    if isinstance(hosts, str) or not hosts:
        raise ComputeTargetException(
            "ssh_hosts must be a non-empty list of host names, e.g. ssh_hosts=['node1', 'alice@node2:2222'].")
    out = []
    for entry in hosts:
        m = _HOST.match(str(entry).strip())
        if m is None:
            raise ComputeTargetException(
                f"ssh_hosts entry {entry!r} is not a host; write it as host, user@host or user@host:port.")
        out.append({"address": m["host"].strip("[]"), "port": int(m["port"] or port),
                    "username": m["user"] or username or getpass.getuser()})
    return out


def connect_options(host: dict[str, Any], private_key_file: str | None, known_hosts: list[str]) -> dict[str, Any]:
    """What asyncssh.connect gets for one host in the cluster-host process (known_hosts always checked)."""
    opts: dict[str, Any] = {"port": int(host["port"]), "username": host["username"],
                            "known_hosts": [os.path.expanduser(p) for p in known_hosts], "connect_timeout": 20}
    if private_key_file:
        opts["client_keys"] = [private_key_file]
    return opts


async def _check_host(target: str, host: dict[str, Any], private_key_file: str | None, known_hosts: list[str],
                      python: str) -> None:
    from nbml.compute._ssh_conn import SshSettings, connect_once

    settings = SshSettings(target=target, address=host["address"], username=host["username"], port=host["port"],
                           private_key_file=private_key_file, known_hosts=known_hosts, connect_timeout=15)
    try:
        conn = await connect_once(settings)
    except ConnectionError as exc:
        raise ComputeTargetException(
            f"Can't reach SSH host {settings.where} for cluster {target!r}: {exc.__cause__ or exc}. Check the "
            "host name and port, and that sshd runs there and this machine can reach it.") from None
    try:
        probe = f"{shlex.quote(python)} -c 'import distributed, nbml.compute._dask_task'"
        result = await conn.run(probe, check=False, timeout=60)
    finally:
        conn.close()
    if result.exit_status == 127:
        raise ComputeTargetException(
            f"SSH host {settings.where} has no Python at {python}: pass remote_python= with the path of the Python "
            "that has Dask and nbml on every host (the same path on each).")
    if result.exit_status != 0:
        err = str(result.stderr or "").strip().splitlines()[-1:] or ["(no message)"]
        raise ComputeTargetException(
            f"SSH host {settings.where}: {python} can't import Dask and nbml ({err[0]}). Install them there "
            "(pip install 'nbml[dask]') in that Python, or point remote_python= at one that has them.")


def check_hosts(target: str, hosts: list[dict[str, Any]], private_key_file: str | None, known_hosts: list[str],
                python: str) -> None:
    """Reach every host before anything is recorded (see the module docstring)."""
    from nbml._aio import run_sync

    async def _all() -> None:
        await asyncio.gather(*(_check_host(target, h, private_key_file, known_hosts, python) for h in hosts))

    run_sync(_all())


async def start_cluster(spec: dict[str, Any]) -> Any:
    """In the cluster-host process: the SSHCluster of `spec` (scheduler on the first host, a worker on each)."""
    from distributed import SSHCluster

    ssh = spec["ssh"]
    hosts = ssh["hosts"]
    options = [connect_options(h, ssh.get("private_key_file"), ssh["known_hosts"]) for h in hosts]
    worker_options: dict[str, Any] = {"nthreads": int(spec.get("threads_per_node", 1))}
    if spec.get("memory_limit"):
        worker_options["memory_limit"] = spec["memory_limit"]
    return await SSHCluster(
        hosts=[hosts[0]["address"]] + [h["address"] for h in hosts], connect_options=[options[0], *options],
        worker_options=worker_options, scheduler_options={"port": 0, "dashboard_address": ":0"},
        remote_python=ssh["python"], asynchronous=True)
