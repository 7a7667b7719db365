"""Distributed-training settings of the SDK (Mpi, Gloo, Nccl, ParameterServer and the *Configuration classes).

They are accepted so notebooks construct their estimators unchanged; a job that asks for more than one
process fails at submit with `DistributedTrainingNotAvailable` (distributed runs are a separate issue).
"""

from __future__ import annotations

from typing import Any

from nbml.errors import UserErrorException


class DistributedTrainingNotAvailable(UserErrorException):
    """More than one node or process was asked for; nbml runs one process per run so far."""


class _Backend:
    """One of the SDK's distributed backends; remembers its settings for the run's properties."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    @property
    def processes(self) -> int:
        """Processes per node this backend asks for (1 when it asks for none)."""
        s = self.settings
        if isinstance(self, (ParameterServer, TensorflowConfiguration)):
            return int(s["worker_count"] or 1) + int(s["parameter_server_count"] or 0)
        return int(s.get("process_count_per_node") or s.get("process_count") or 1)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({args})"


class Mpi(_Backend):
    def __init__(self, process_count_per_node: int = 1) -> None:
        super().__init__(process_count_per_node=process_count_per_node)


class Gloo(_Backend):
    def __init__(self) -> None:
        super().__init__()


class Nccl(_Backend):
    def __init__(self) -> None:
        super().__init__()


class ParameterServer(_Backend):
    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1) -> None:
        super().__init__(worker_count=worker_count, parameter_server_count=parameter_server_count)


class MpiConfiguration(_Backend):
    def __init__(self, process_count_per_node: int = 1, node_count: int = 1) -> None:
        super().__init__(process_count_per_node=process_count_per_node, node_count=node_count)


class PyTorchConfiguration(_Backend):
    def __init__(self, communication_backend: str = "Nccl", process_count: int | None = None,
                 node_count: int = 1) -> None:
        super().__init__(communication_backend=communication_backend, process_count=process_count,
                         node_count=node_count)


class TensorflowConfiguration(_Backend):
    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1) -> None:
        super().__init__(worker_count=worker_count, parameter_server_count=parameter_server_count)


def check_single_process(node_count: int, process_count_per_node: int, backend: Any) -> None:
    """Raise DistributedTrainingNotAvailable when the settings ask for more than one process."""
    nodes = max(int(node_count or 1), int(getattr(backend, "settings", {}).get("node_count") or 1))
    procs = max(int(process_count_per_node or 1), backend.processes if isinstance(backend, _Backend) else 1)
    if nodes > 1 or procs > 1:
        raise DistributedTrainingNotAvailable(
            f"distributed training is not available yet in nbml (asked: node_count={nodes}, "
            f"processes per node={procs}{f', {backend!r}' if backend is not None else ''}). Submit with "
            "node_count=1 and process_count_per_node=1 (and no parameter-server workers) to train in one process."
        )
