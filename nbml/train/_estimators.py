"""The SDK's estimators (Estimator, SKLearn, PyTorch, TensorFlow, Chainer): script runs under another name.

An estimator submits exactly as a ScriptRunConfig does: ``source_directory`` snapshotted, ``entry_script``
run with ``script_params`` as its arguments, packages from ``conda_packages``/``pip_packages``. What the
SDK used to pick an Azure image (``framework_version``, ``use_gpu``) is recorded on the run, not acted on:
the script runs with the framework the environment (or the target) has. Distributed settings
(``node_count``, ``process_count_per_node``, ``distributed_backend='mpi'``, ``distributed_training=Mpi()``...)
become the run's ``distributed`` config (see nbml.train._distributed): one run, many ranks.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from nbml.runs.config import Estimator as _BaseEstimator
from nbml.train import _distributed

if TYPE_CHECKING:
    from nbml.runs.experiment import Experiment
    from nbml.runs.run import Run


class Estimator(_BaseEstimator):
    """``Estimator(source_directory, compute_target=..., entry_script=..., script_params={...}, ...)``.

    Parameters
    ----------
    source_directory : str
        The project folder, snapshotted at submit.
    entry_script : str
        The script to run, relative to `source_directory`.
    script_params : dict, optional
        ``{"--name": value}``; a value of ``None`` or ``""`` passes the flag alone.
    compute_target : ComputeTarget or str, optional
    conda_packages, pip_packages : list of str, optional
        Added to the run's environment (built once per distinct set, then reused).
    conda_dependencies_file, pip_requirements_file : str, optional
        (also the SDK's older ``*_path`` names) an environment file instead.
    node_count, process_count_per_node : int
        Nodes of the target to use, and processes started on each (see docs/distributed.md).
    distributed_training / distributed_backend
        ``Mpi()``, ``Gloo()``, ``Nccl()``, ``ParameterServer()`` or ``'mpi'``: how the processes are started.
    use_gpu : bool
        Ignored: the script sees whatever GPUs the target has (nbml chooses no GPU image).
    """

    _framework: str | None = None

    def __init__(self, source_directory: str, *, compute_target: Any = None, entry_script: str | None = None,
                 script_params: dict[str, Any] | None = None, node_count: int = 1, process_count_per_node: int = 1,
                 distributed_backend: Any = None, distributed_training: Any = None, use_gpu: bool = False,
                 framework_version: str | None = None, conda_dependencies_file_path: str | None = None,
                 pip_requirements_file_path: str | None = None, **kwargs: Any) -> None:
        if conda_dependencies_file_path and not kwargs.get("conda_dependencies_file"):
            kwargs["conda_dependencies_file"] = conda_dependencies_file_path
        if pip_requirements_file_path and not kwargs.get("pip_requirements_file"):
            kwargs["pip_requirements_file"] = pip_requirements_file_path
        super().__init__(source_directory, compute_target=compute_target, entry_script=entry_script,
                         script_params=script_params, **kwargs)
        self.script_params = dict(script_params or {})
        self.node_count = int(node_count or 1)
        self.process_count_per_node = int(process_count_per_node or 1)
        self.distributed_training = distributed_training if distributed_training is not None else distributed_backend
        self.use_gpu = bool(use_gpu)
        self.framework_version = framework_version
        self._worker_counts: tuple[Any, Any] = (None, None)
        if self.use_gpu:
            warnings.warn("use_gpu=True is ignored by nbml: the script runs with the GPUs its compute target has "
                          "(no GPU image is chosen).", UserWarning, stacklevel=2)

    @property
    def run_properties(self) -> dict[str, str]:
        """What the SDK used to choose an image, kept with the run so it can be read back."""
        props = {"nbml.estimator": type(self).__name__}
        if self._framework:
            props["framework"] = self._framework
        if self.framework_version:
            props["framework_version"] = str(self.framework_version)
        if self.use_gpu:
            props["use_gpu"] = "true (ignored)"
        return props

    def _distributed(self) -> dict[str, Any] | None:
        return _distributed.from_estimator(self.node_count, self.process_count_per_node, self.distributed_training,
                                           *self._worker_counts)

    def _submit(self, experiment: Experiment, tags: dict[str, Any] | None = None, **kwargs: Any) -> Run:
        self.distributed_job_config = None
        self._resolved_distributed = self._distributed()
        run = super()._submit(experiment, tags=tags, **kwargs)
        experiment.workspace.store.add_properties(run.id, self.run_properties)
        return run


class SKLearn(Estimator):
    """The SDK's scikit-learn estimator: a script run (scikit-learn comes from the environment)."""

    _framework = "scikit-learn"


class PyTorch(Estimator):
    """The SDK's PyTorch estimator: a script run (torch comes from the environment or `pip_packages`)."""

    _framework = "PyTorch"


class TensorFlow(Estimator):
    """The SDK's TensorFlow estimator: a script run (tensorflow comes from the environment or `pip_packages`).

    ``worker_count`` above 1 (or ``distributed_training=ParameterServer(...)``) starts that many workers and
    ``parameter_server_count`` parameter servers, each with its ``TF_CONFIG``.
    """

    _framework = "TensorFlow"

    def __init__(self, source_directory: str, *, worker_count: int = 1, parameter_server_count: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(source_directory, **kwargs)
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count
        self._worker_counts = (worker_count, parameter_server_count)
        if self.distributed_training is None and worker_count > 1:
            self.distributed_training = _distributed.ParameterServer(worker_count, parameter_server_count)


class Chainer(Estimator):
    """The SDK's Chainer estimator: a script run (chainer comes from the environment or `pip_packages`)."""

    _framework = "Chainer"
