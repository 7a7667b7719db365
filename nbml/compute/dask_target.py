"""`AmlCompute`: an autoscaling cluster target backed by Dask (the SDK's names and settings)."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from nbml._aio import run_sync
from nbml.compute import _dask_cluster
from nbml.compute.targets import ComputeTarget
from nbml.errors import ComputeTargetException

if TYPE_CHECKING:
    from nbml.workspace import Workspace


@dataclasses.dataclass
class AmlComputeProvisioningConfiguration:
    """Settings of a cluster target; build it with `AmlCompute.provisioning_configuration`."""

    vm_size: str = ""
    vm_priority: str = "dedicated"
    min_nodes: int = 0
    max_nodes: int = 4
    idle_seconds_before_scaledown: int = 120
    scheduler_address: str | None = None
    threads_per_node: int = 1
    memory_limit: str | None = None
    shared_dir: str | None = None
    #: A cluster of the user's SSH hosts: {"hosts": [...], "private_key_file", "known_hosts", "python"}.
    ssh: dict[str, Any] | None = None
    kind: str = dataclasses.field(default="dask", init=False)

    def validate(self, workspace: Workspace, name: str) -> dict[str, Any]:
        """Check the settings (and reach an existing scheduler) before anything is written to the store."""
        _check_sizes(self.min_nodes, self.max_nodes, self.idle_seconds_before_scaledown)
        if self.threads_per_node < 1:
            raise ComputeTargetException(f"threads_per_node must be at least 1, not {self.threads_per_node}.")
        if self.ssh and self.scheduler_address:
            raise ComputeTargetException(
                "Give either ssh_hosts (nbml starts Dask on your hosts) or scheduler_address (a Dask cluster that "
                "already runs), not both.")
        if self.ssh:
            from nbml.compute import _dask_ssh

            _dask_ssh.check_hosts(name, self.ssh["hosts"], self.ssh.get("private_key_file"),
                                  self.ssh["known_hosts"], self.ssh["python"])
        if self.scheduler_address:
            _check_scheduler(self.scheduler_address)
        config = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "kind"}
        config["external"] = bool(self.scheduler_address)
        return config

    def on_create(self, target: ComputeTarget) -> None:
        if not self.scheduler_address:
            state = _dask_cluster.ensure_running(target.workspace.path, target.name, target.config)
            _store_address(target, state["address"])


class AmlComputeStatus:
    """The SDK's status object: node counts by state, plus `serialize()`."""

    def __init__(self, raw: dict[str, Any], config: dict[str, Any]) -> None:
        nodes = raw.get("nodes", {})
        self.raw = raw
        self.provisioning_state = "Succeeded" if raw.get("state") in ("Succeeded", "Stopped") else raw.get("state")
        self.current_node_count = int(raw.get("current_node_count", 0))
        self.target_node_count = int(raw.get("target_node_count", self.current_node_count))
        self.allocation_state = "Steady" if self.current_node_count == self.target_node_count else "Resizing"
        self.node_state_counts = {f"{k}NodeCount": int(v) for k, v in nodes.items()}
        self.scale_settings = {"minNodeCount": config.get("min_nodes"), "maxNodeCount": config.get("max_nodes"),
                               "nodeIdleTimeBeforeScaleDown": f"PT{config.get('idle_seconds_before_scaledown')}S"}
        self.vm_size = config.get("vm_size") or ""
        self.scheduler_address = raw.get("scheduler_address")
        self.errors = [raw["error"]] if raw.get("error") else None
        self.cluster_state = raw.get("state")

    def serialize(self) -> dict[str, Any]:
        return {"currentNodeCount": self.current_node_count, "targetNodeCount": self.target_node_count,
                "nodeStateCounts": self.node_state_counts, "allocationState": self.allocation_state,
                "provisioningState": self.provisioning_state, "clusterState": self.cluster_state,
                "scaleSettings": self.scale_settings, "vmSize": self.vm_size,
                "schedulerAddress": self.scheduler_address, "errors": self.errors}

    def __getitem__(self, key: str) -> Any:  # the generic ComputeTarget code reads the raw dict
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def __repr__(self) -> str:
        return f"AmlComputeStatus({self.serialize()!r})"


class AmlCompute(ComputeTarget):
    """A cluster of workers that scales between `min_nodes` and `max_nodes` (Dask underneath).

    By default nbml runs the cluster itself (a Dask ``LocalCluster`` on this machine, in a detached process
    shared by every notebook of the workspace); with ``scheduler_address`` it uses an existing Dask cluster
    (dask-jobqueue, dask-kubernetes...), whose lifecycle it leaves alone.
    """

    type = "AmlCompute"
    kind = "dask"

    @staticmethod
    def provisioning_configuration(vm_size: str = "", vm_priority: str = "dedicated", min_nodes: int = 0,
                                   max_nodes: int = 4, idle_seconds_before_scaledown: int = 120,
                                   scheduler_address: str | None = None, threads_per_node: int = 1,
                                   memory_limit: str | None = None, shared_dir: str | None = None,
                                   ssh_hosts: list[str] | None = None, ssh_username: str | None = None,
                                   ssh_port: int = 22, ssh_private_key_file: str | None = None,
                                   ssh_known_hosts: str | list[str] | None = None, remote_python: str | None = None,
                                   **kwargs: Any) -> AmlComputeProvisioningConfiguration:
        """Settings for `ComputeTarget.create(ws, name, config)`.

        Parameters
        ----------
        vm_size, vm_priority
            Kept for the SDK's notebooks; recorded, no effect on Dask.
        min_nodes, max_nodes
            Bounds of adaptive scaling (Dask workers). ``cluster_min_nodes``/``cluster_max_nodes`` (BatchAI) too.
        idle_seconds_before_scaledown
            A worker idle for this long is retired (down to min_nodes).
        scheduler_address
            ``tcp://host:8786`` of an existing Dask scheduler; nbml then neither starts nor stops it.
        threads_per_node, memory_limit
            Each worker runs this many jobs at once (default 1), with this memory limit (e.g. ``"4GB"``).
        shared_dir
            Where job folders go; workers must see it at the same path (default: the workspace).
        ssh_hosts
            Build the cluster from your own machines over SSH (Dask's ``SSHCluster``): ``["node1",
            "alice@node2:2222"]``, one worker (node) per host, the scheduler on the first. The cluster then has
            exactly that many nodes (no autoscaling). Every host needs the same ``remote_python`` (default: this
            interpreter's path) with nbml and Dask installed, and must see ``shared_dir`` at the same path.
        ssh_username, ssh_port
            Defaults for hosts that don't name their own (default: your user name, port 22).
        ssh_private_key_file
            The key to log in with (its absolute path is stored, never the key; an encrypted key must be in
            ssh-agent); without it, the ssh-agent's keys.
        ssh_known_hosts
            known_hosts file(s) the hosts' keys are checked against (default ``~/.ssh/known_hosts``); an unknown
            or changed key is refused.
        """
        from nbml._extras import TARGET_EXTRAS, require

        require(*TARGET_EXTRAS["dask"])
        min_nodes = int(kwargs.pop("cluster_min_nodes", min_nodes))
        max_nodes = int(kwargs.pop("cluster_max_nodes", max_nodes))
        for ignored in ("admin_username", "admin_user_password", "admin_user_ssh_key", "vnet_resourcegroup_name",
                        "vnet_name", "subnet_name", "tags", "description", "remote_login_port_public_access",
                        "identity_type", "identity_id", "location", "autoscale_enabled"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise ComputeTargetException(f"Unknown provisioning settings: {', '.join(sorted(kwargs))}.")
        ssh = None
        if ssh_hosts is not None:
            ssh = _ssh_settings(ssh_hosts, ssh_username, int(ssh_port), ssh_private_key_file, ssh_known_hosts,
                                remote_python)
            min_nodes = max_nodes = len(ssh["hosts"])
        return AmlComputeProvisioningConfiguration(
            ssh=ssh, vm_size=vm_size, vm_priority=vm_priority, min_nodes=int(min_nodes), max_nodes=int(max_nodes),
            idle_seconds_before_scaledown=int(idle_seconds_before_scaledown), scheduler_address=scheduler_address,
            threads_per_node=int(threads_per_node), memory_limit=memory_limit, shared_dir=shared_dir)

    @staticmethod
    def supported_vmsizes(workspace: Workspace, location: str | None = None) -> list[dict[str, Any]]:
        """The sizes a node can have: one, this machine's (a Dask worker runs here), in the SDK's dict shape."""
        import os

        import psutil

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
        return [{"name": "local", "vCPUs": cores, "gpus": _gpu_count(), "memoryGB": memory_gb,
                 "maxResourceVolumeMB": _disk_mb(workspace)}]

    @property
    def owned(self) -> bool:
        return not self.config.get("external")

    def start(self) -> None:
        """Start nbml's cluster process if it isn't running (runs and `wait_for_completion` do it too)."""
        if self.owned:
            state = _dask_cluster.ensure_running(self.workspace.path, self.name, self.config)
            _store_address(self, state["address"])

    def get_status(self) -> AmlComputeStatus:  # type: ignore[override]
        """Node counts by state (idle, running, preparing, leaving, unusable) and the scale settings."""
        return AmlComputeStatus(super().get_status(), self.config)

    @property
    def status(self) -> AmlComputeStatus:
        return self.get_status()

    def list_nodes(self) -> list[dict[str, Any]]:
        """One dict per worker: node_id, address, state (idle/running), running_tasks, nthreads, memory."""
        return list(self.get_status().raw.get("node_list", []))

    def update(self, min_nodes: int | None = None, max_nodes: int | None = None,
               idle_seconds_before_scaledown: int | None = None) -> None:
        """Change the scale settings; a running nbml cluster applies them within a second."""
        config = self.config
        new = {"min_nodes": config["min_nodes"] if min_nodes is None else int(min_nodes),
               "max_nodes": config["max_nodes"] if max_nodes is None else int(max_nodes),
               "idle_seconds_before_scaledown": config["idle_seconds_before_scaledown"]
               if idle_seconds_before_scaledown is None else int(idle_seconds_before_scaledown)}
        _check_sizes(new["min_nodes"], new["max_nodes"], new["idle_seconds_before_scaledown"])
        config.update(new)
        self.workspace.store.update_compute(self.name, config=config)
        self.refresh()
        if self.owned:
            _dask_cluster.update_spec(self.workspace.path, self.name, config)

    def wait_for_completion(self, show_output: bool = False, min_node_count: int | None = None,
                            timeout_in_minutes: float = 20) -> None:
        """Wait until the cluster runs with at least `min_node_count` nodes (default: min_nodes)."""
        want = int(self.config.get("min_nodes", 0) if min_node_count is None else min_node_count)
        if show_output:
            print("Creating" if self.owned else "Connecting", flush=True)
        self.start()
        deadline = time.monotonic() + timeout_in_minutes * 60
        last = None
        while True:
            status = self.get_status()
            line = (f"{status.cluster_state}: {status.current_node_count} nodes "
                    f"({', '.join(f'{k[:-9]} {v}' for k, v in status.node_state_counts.items() if v)})")
            if show_output and line != last:
                print(line, flush=True)
                last = line
            if status.cluster_state == "Failed":
                raise ComputeTargetException(f"Cluster {self.name!r} failed: {status.raw.get('error')}")
            if status.cluster_state == "Succeeded" and status.current_node_count >= want:
                break
            if time.monotonic() > deadline:
                raise ComputeTargetException(
                    f"Cluster {self.name!r} has {status.current_node_count} of {want} nodes after "
                    f"{timeout_in_minutes} min; check its log or lower min_node_count.")
            time.sleep(0.5)
        if show_output:
            print("AmlCompute wait for completion finished\n\nMinimum number of nodes requested have been "
                  "provisioned", flush=True)

    def stop(self) -> None:
        """Stop nbml's cluster process and its workers (a later run starts it again)."""
        if self.owned:
            _dask_cluster.stop(self.workspace.path, self.name)

    def delete(self) -> None:
        """Stop the cluster if nbml runs it, and remove the target from the workspace."""
        self.detach()

    def detach(self) -> None:
        """Remove the target; a cluster nbml runs itself is stopped first (nothing could reach it afterwards)."""
        self.stop()
        super().detach()


def _ssh_settings(hosts: Any, username: str | None, port: int, key_file: str | None, known_hosts: Any,
                  python: str | None) -> dict[str, Any]:
    """The ``ssh`` part of a cluster's config: parsed hosts, absolute paths, no secret."""
    import os
    import sys

    from nbml.compute._dask_ssh import parse_hosts

    parsed = parse_hosts(hosts, username, port)
    if key_file is not None:
        key_file = os.path.abspath(os.path.expanduser(key_file))
        if not os.path.isfile(key_file):
            raise ComputeTargetException(f"ssh_private_key_file {key_file} does not exist.")
    files = [known_hosts] if isinstance(known_hosts, str) else list(known_hosts or ["~/.ssh/known_hosts"])
    files = [os.path.abspath(os.path.expanduser(f)) for f in files]
    return {"hosts": parsed, "private_key_file": key_file, "known_hosts": files,
            "python": python or sys.executable}


def _gpu_count() -> int:
    """NVIDIA GPUs this machine shows (0 without nvidia-smi)."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def _disk_mb(workspace: Workspace) -> int:
    import shutil

    return int(shutil.disk_usage(workspace.path).free // 2**20)


def _store_address(target: ComputeTarget, address: str) -> None:
    config = target.config
    if config.get("scheduler_address") != address:
        config["scheduler_address"] = address
        target.workspace.store.update_compute(target.name, config=config)
        target.refresh()


def _check_sizes(min_nodes: int, max_nodes: int, idle: int) -> None:
    if min_nodes < 0 or max_nodes < 1 or min_nodes > max_nodes:
        raise ComputeTargetException(
            f"Need 0 <= min_nodes <= max_nodes and max_nodes >= 1 (got min_nodes={min_nodes}, max_nodes={max_nodes}).")
    if idle < 0:
        raise ComputeTargetException(f"idle_seconds_before_scaledown must be >= 0, not {idle}.")


def _check_scheduler(address: str) -> None:
    async def _ping() -> None:
        from distributed import Client

        client = await Client(address, asynchronous=True, timeout="5s")
        await client.close()

    try:
        run_sync(_ping())
    except Exception as exc:
        raise ComputeTargetException(
            f"Can't reach a Dask scheduler at {address!r}: {exc}. Start it first (`dask scheduler`, a "
            "dask-jobqueue or dask-kubernetes cluster) and pass the address its `scheduler_address` shows."
        ) from None
