"""Distributed-training settings of the SDK (Mpi, Gloo, Nccl, ParameterServer and the *Configuration classes).

Every form the SDK accepted (``ScriptRunConfig(distributed_job_config=MpiConfiguration(...))``, the
Estimator's ``node_count`` / ``process_count_per_node`` / ``distributed_backend='mpi'``, the framework
estimators' ``distributed_training=Mpi()|Gloo()|Nccl()|ParameterServer()``) resolves to one plain dict, the
run's ``distributed`` config, read by the rank launcher (``nbml.compute._ranks``)::

    {"backend": "mpi" | "pytorch" | "tensorflow", "node_count": 2, "process_count_per_node": 2,
     "communication_backend": "gloo" | "nccl", "worker_count": 2, "parameter_server_count": 1}

Settings are checked here, before anything is recorded.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from nbml.errors import UserErrorException

#: More ranks than this on one node is almost certainly a typo (and would starve the machine).
MAX_PROCESSES_PER_NODE = 256


class DistributedTrainingNotAvailable(UserErrorException):
    """The distributed settings can't be run where they were asked for (HyperDrive, Nccl without a GPU)."""


class InvalidDistributedConfig(UserErrorException):
    """A count or backend name that can't be run (zero processes, an unknown backend...)."""


class _Backend:
    """One of the SDK's distributed settings; remembers its arguments (shown in its repr)."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({args})"


class Mpi(_Backend):
    """Open MPI's ``mpirun`` starts ``process_count_per_node`` ranks on each node (estimators)."""

    def __init__(self, process_count_per_node: int = 1) -> None:
        super().__init__(process_count_per_node=process_count_per_node)

    @property
    def process_count_per_node(self) -> int:
        return int(self.settings["process_count_per_node"])


class Gloo(_Backend):
    """PyTorch ``torch.distributed`` with the gloo backend: ranks get MASTER_ADDR, RANK... (estimators)."""

    def __init__(self) -> None:
        super().__init__()


class Nccl(_Backend):
    """PyTorch ``torch.distributed`` with NCCL (needs a GPU on every node) (estimators)."""

    def __init__(self) -> None:
        super().__init__()


class ParameterServer(_Backend):
    """TensorFlow parameter-server training: ``worker_count`` workers and ``parameter_server_count`` servers."""

    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1) -> None:
        super().__init__(worker_count=worker_count, parameter_server_count=parameter_server_count)

    @property
    def worker_count(self) -> int:
        return int(self.settings["worker_count"])

    @property
    def parameter_server_count(self) -> int:
        return int(self.settings["parameter_server_count"])


class MpiConfiguration(_Backend):
    """``ScriptRunConfig(distributed_job_config=MpiConfiguration(process_count_per_node=2, node_count=2))``."""

    def __init__(self, process_count_per_node: int = 1, node_count: int = 1) -> None:
        super().__init__(process_count_per_node=process_count_per_node, node_count=node_count)
        self.process_count_per_node = process_count_per_node
        self.node_count = node_count


class PyTorchConfiguration(_Backend):
    """``PyTorchConfiguration(communication_backend='Gloo'|'Nccl', process_count=4, node_count=2)``.

    `process_count` counts every process of the job (default: one per node); it must split evenly over the
    nodes.
    """

    def __init__(self, communication_backend: str = "Nccl", process_count: int | None = None,
                 node_count: int = 1) -> None:
        super().__init__(communication_backend=communication_backend, process_count=process_count,
                         node_count=node_count)
        self.communication_backend = communication_backend
        self.process_count = process_count
        self.node_count = node_count


class TensorflowConfiguration(_Backend):
    """``TensorflowConfiguration(worker_count=2, parameter_server_count=1)``: each task gets its TF_CONFIG."""

    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1) -> None:
        super().__init__(worker_count=worker_count, parameter_server_count=parameter_server_count)
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count


def _count(name: str, value: Any, minimum: int = 1) -> int:
    """An integer count of at least `minimum`, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InvalidDistributedConfig(f"{name} must be a whole number, got {value!r}.")
    if value < minimum:
        raise InvalidDistributedConfig(f"{name} must be at least {minimum}, got {value!r}.")
    return int(value)


def _pytorch(comm: str, nodes: int, per_node: int) -> dict[str, Any]:
    name = str(comm or "").lower()
    if name not in ("gloo", "nccl"):
        raise InvalidDistributedConfig(f"communication_backend={comm!r} is not one PyTorch offers here; use "
                                       "'Gloo' (CPU and GPU) or 'Nccl' (GPU).")
    return {"backend": "pytorch", "communication_backend": name, "node_count": nodes,
            "process_count_per_node": per_node}


def _tensorflow(workers: Any, servers: Any, nodes: int) -> dict[str, Any]:
    w = _count("worker_count", workers)
    s = _count("parameter_server_count", servers, minimum=0)
    if (w + s) % nodes:
        raise InvalidDistributedConfig(
            f"{w} workers and {s} parameter servers ({w + s} tasks) don't split evenly over node_count={nodes}; "
            "choose counts whose sum is a multiple of the node count.")
    return {"backend": "tensorflow", "node_count": nodes, "process_count_per_node": (w + s) // nodes,
            "worker_count": w, "parameter_server_count": s}


def from_job_config(config: Any, run_config_node_count: int = 1) -> dict[str, Any] | None:
    """The run's ``distributed`` dict for a ScriptRunConfig's ``distributed_job_config`` (None: one process)."""
    if config is None:
        return None
    if isinstance(config, MpiConfiguration):
        nodes = _count("MpiConfiguration node_count", config.node_count)
        per = _count("MpiConfiguration process_count_per_node", config.process_count_per_node)
        result: dict[str, Any] = {"backend": "mpi", "node_count": nodes, "process_count_per_node": per}
    elif isinstance(config, PyTorchConfiguration):
        nodes = _count("PyTorchConfiguration node_count", config.node_count)
        total = nodes if config.process_count is None else _count("PyTorchConfiguration process_count",
                                                                  config.process_count)
        if total % nodes:
            raise InvalidDistributedConfig(
                f"PyTorchConfiguration process_count={total} doesn't split evenly over node_count={nodes}; "
                "process_count counts every process of the job, so make it a multiple of node_count.")
        result = _pytorch(config.communication_backend, nodes, total // nodes)
    elif isinstance(config, TensorflowConfiguration):
        result = _tensorflow(config.worker_count, config.parameter_server_count,
                             _count("run_config.node_count", run_config_node_count))
    else:
        raise InvalidDistributedConfig(
            f"distributed_job_config={config!r} is not a distributed configuration; pass MpiConfiguration, "
            "PyTorchConfiguration or TensorflowConfiguration (from nbml.core.runconfig).")
    return _checked(result)


def from_estimator(node_count: Any, process_count_per_node: Any, backend: Any,
                   worker_count: Any = None, parameter_server_count: Any = None) -> dict[str, Any] | None:
    """The ``distributed`` dict for an estimator's settings (None when it asks for one process)."""
    nodes = _count("node_count", node_count if node_count is not None else 1)
    per = _count("process_count_per_node", process_count_per_node if process_count_per_node is not None else 1)
    if isinstance(backend, str):
        name = backend.lower()
        backend = {"mpi": Mpi(per), "gloo": Gloo(), "nccl": Nccl(),
                   "ps": ParameterServer(worker_count or 1, parameter_server_count or 1),
                   "parameterserver": ParameterServer(worker_count or 1, parameter_server_count or 1)}.get(name)
        if backend is None:
            raise InvalidDistributedConfig(f"distributed_backend={name!r} is not one nbml runs; use 'mpi' (or "
                                           "distributed_training=Mpi(), Gloo(), Nccl() or ParameterServer()).")
    if backend is None:
        if nodes == 1 and per == 1:
            return None
        else:
            raise InvalidDistributedConfig(
                f"node_count={nodes}, process_count_per_node={per} asks for {nodes * per} processes but no "
                "distributed backend was given; add distributed_backend='mpi' (or distributed_training=Mpi(), "
                "Gloo() or Nccl()) so nbml knows how to start them.")
    if isinstance(backend, Mpi):
        per_mpi = _count("Mpi process_count_per_node", backend.process_count_per_node)
        return _checked({"backend": "mpi", "node_count": nodes, "process_count_per_node": max(per, per_mpi)})
    if isinstance(backend, Gloo | Nccl):
        return _checked(_pytorch(type(backend).__name__, nodes, per))
    if isinstance(backend, ParameterServer):
        return _checked(_tensorflow(backend.worker_count, backend.parameter_server_count, nodes))
    if isinstance(backend, MpiConfiguration | PyTorchConfiguration | TensorflowConfiguration):
        return from_job_config(backend, nodes)
    raise InvalidDistributedConfig(f"distributed_training={backend!r} is not a distributed backend; use Mpi(), "
                                   "Gloo(), Nccl() or ParameterServer() from nbml.train.dnn.")


def _checked(d: dict[str, Any]) -> dict[str, Any]:
    if d["process_count_per_node"] > MAX_PROCESSES_PER_NODE:
        raise InvalidDistributedConfig(
            f"process_count_per_node={d['process_count_per_node']} is more than nbml starts on one node "
            f"({MAX_PROCESSES_PER_NODE}); use more nodes or fewer processes.")
    return d


def has_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU device."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or bool(os.environ.get("NBML_ASSUME_GPU"))


def check_target(distributed: dict[str, Any], target_kind: str, max_nodes: int | None) -> None:
    """Refuse, before anything is recorded, what the target can't run (more nodes than it has, NCCL without GPU)."""
    nodes = distributed["node_count"]
    if max_nodes is not None and nodes > max_nodes:
        where = ("a local, Docker or SSH target runs every process on one machine" if max_nodes == 1
                 else f"the cluster has at most {max_nodes} nodes")
        raise InvalidDistributedConfig(
            f"node_count={nodes} but {where}; use node_count={max_nodes} with more processes per node, or an "
            "AmlCompute (Dask) cluster with enough workers.")
    if distributed.get("communication_backend") == "nccl" and target_kind in ("local", "docker") and not has_gpu():
        raise DistributedTrainingNotAvailable(
            "communication_backend 'Nccl' needs an NVIDIA GPU, and this machine has none (no /dev/nvidia*); use "
            "'Gloo' to train on CPUs, or submit to a target with GPUs.")


def check_single_process(node_count: int, process_count_per_node: int, backend: Any) -> None:
    """HyperDrive runs each trial as one process: refuse distributed trial settings before anything is recorded."""
    if from_estimator(node_count, process_count_per_node, backend) is not None:
        raise DistributedTrainingNotAvailable(
            "HyperDrive runs each trial as one process; distributed trials (node_count / process_count_per_node "
            "/ distributed_backend) are not available in nbml yet. Tune with one process per trial, then train "
            "the best configuration as a distributed ScriptRunConfig.")
