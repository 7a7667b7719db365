"""Run configurations: ScriptRunConfig, RunConfiguration and the legacy Estimator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbml.environment import CondaDependencies, Environment
from nbml.runs.containerinstance import ContainerInstanceConfiguration

if TYPE_CHECKING:
    from nbml.runs.experiment import Experiment
    from nbml.runs.run import Run

DEFAULT_MAX_RUN_DURATION = 2_592_000  # 30 days, the SDK's default


class SparkConfiguration:
    """``run_config.spark``: what a run on a Spark target (HDInsightCompute) passes to spark-submit.

    ``configuration`` holds Spark properties (``{"spark.executor.memory": "2g"}``), each a ``--conf``;
    ``spark.master`` there picks the master for this run. ``packages`` / ``repositories`` are Maven
    coordinates and repositories (``--packages`` / ``--repositories``). They override the target's own
    settings (``HDInsightCompute.attach_configuration(master=..., spark_conf=...)``).
    """

    def __init__(self, configuration: dict[str, Any] | None = None, repositories: list[str] | None = None,
                 packages: list[Any] | None = None, precache_packages: bool = True) -> None:
        self.configuration: dict[str, Any] = dict(configuration or {})
        self.repositories = list(repositories or [])
        self.packages = list(packages or [])
        self.precache_packages = precache_packages

    def to_dict(self) -> dict[str, Any]:
        packages = [p if isinstance(p, str) else ":".join(str(getattr(p, k)) for k in ("group", "artifact", "version"))
                    for p in self.packages]
        return {"configuration": {str(k): str(v) for k, v in self.configuration.items()},
                "repositories": [str(r) for r in self.repositories], "packages": packages}


class RunConfiguration:
    """Where and how to run: ``target`` (a ComputeTarget or its name) and ``environment``."""

    def __init__(self, script: str | None = None, arguments: list[Any] | None = None, framework: str = "python",
                 communicator: str | None = None, conda_dependencies: CondaDependencies | None = None,
                 **_: Any) -> None:
        self.script = script
        self.arguments = list(arguments or [])
        self.framework = framework
        self.communicator = communicator
        self.target: Any = "local"
        self.environment = Environment("default")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.node_count = 1
        self.max_run_duration_seconds: float | None = None
        self.prepare_environment = True
        self.auto_prepare_environment = True
        self.history = {"output_collection": True}
        #: name -> DataReference / DataReferenceConfiguration; the data is on the target as the job starts, at
        #: the path in $AZUREML_DATAREFERENCE_<name> (also usable in the arguments).
        self.data_references: dict[str, Any] = {}
        #: dataset inputs (dataset.as_named_input(name)...), read in the script with input_datasets[name].
        self.data: list[Any] = []
        self.container_instance = ContainerInstanceConfiguration()  # for target = "containerinstance"
        self.spark = SparkConfiguration()  # spark-submit settings on a Spark target (framework="pyspark")
        #: nbml: run the script in a warm worker that consecutive runs on the same target and environment share
        #: (its top-level imports done once); see docs/runs.md "Warm workers for script runs". Local and Dask.
        self.warm_worker = False
        #: nbml: how long an idle warm worker waits for the next run before it exits (default 300 s).
        self.warm_worker_keep_alive_seconds: float | None = None

    @property
    def docker(self) -> Any:
        return self.environment.docker


class ScriptRunConfig:
    """A script to run: ``ScriptRunConfig(source_directory, script, arguments, compute_target, environment)``.

    The source directory is snapshotted at submit time (honouring .amlignore, then .gitignore); the script
    runs with it as its working directory, and files it writes to ./outputs and ./logs are kept with the run.
    """

    def __init__(self, source_directory: str = ".", script: str | None = None, arguments: list[Any] | None = None,
                 run_config: RunConfiguration | None = None, compute_target: Any = None,
                 environment: Environment | None = None, distributed_job_config: Any = None,
                 resume_from: Any = None, max_run_duration_seconds: float | None = DEFAULT_MAX_RUN_DURATION,
                 command: list[str] | str | None = None, docker_runtime_config: Any = None) -> None:
        self.source_directory = source_directory
        self.run_config = run_config or RunConfiguration()
        self.script = script if script is not None else self.run_config.script
        self.arguments = list(arguments) if arguments is not None else list(self.run_config.arguments)
        self.command = command
        if compute_target is not None:
            self.run_config.target = compute_target
        if environment is not None:
            self.run_config.environment = environment
        if max_run_duration_seconds is not None and max_run_duration_seconds != DEFAULT_MAX_RUN_DURATION:
            self.run_config.max_run_duration_seconds = max_run_duration_seconds
        #: MpiConfiguration / PyTorchConfiguration / TensorflowConfiguration: one run, many processes.
        self.distributed_job_config = distributed_job_config
        #: What the settings resolved to at submit (set by estimators, which take them another way).
        self._resolved_distributed: dict[str, Any] | None = None

    def distributed(self) -> dict[str, Any] | None:
        """The run's ``distributed`` config (see nbml.train._distributed), checked; None for one process."""
        if self._resolved_distributed is not None:
            return self._resolved_distributed
        from nbml.train._distributed import from_job_config

        return from_job_config(self.distributed_job_config, int(getattr(self.run_config, "node_count", 1) or 1))

    @property
    def compute_target(self) -> Any:
        return self.run_config.target

    @compute_target.setter
    def compute_target(self, value: Any) -> None:
        self.run_config.target = value

    @property
    def environment(self) -> Environment:
        return self.run_config.environment

    @environment.setter
    def environment(self, value: Environment) -> None:
        self.run_config.environment = value

    @property
    def max_run_duration_seconds(self) -> float | None:
        return self.run_config.max_run_duration_seconds

    def _submit(self, experiment: Experiment, tags: dict[str, Any] | None = None, **kwargs: Any) -> Run:
        from nbml.runs.submit import submit_script

        return submit_script(experiment, self, tags=tags, **kwargs)


class Estimator(ScriptRunConfig):
    """The SDK's old Estimator, kept so old notebooks run: maps onto ScriptRunConfig."""

    def __init__(self, source_directory: str, *, compute_target: Any = None, entry_script: str | None = None,
                 script_params: dict[str, Any] | None = None, arguments: list[Any] | None = None,
                 pip_packages: list[str] | None = None, conda_packages: list[str] | None = None,
                 conda_dependencies_file: str | None = None, pip_requirements_file: str | None = None,
                 environment_definition: Environment | None = None, use_docker: bool = False,
                 custom_docker_image: str | None = None, custom_docker_base_image: str | None = None,
                 user_managed: bool = False, environment_variables: dict[str, str] | None = None,
                 max_run_duration_seconds: float | None = None, inputs: list[Any] | None = None,
                 **_: Any) -> None:
        args: list[Any] = list(arguments or [])
        for key, value in (script_params or {}).items():
            args += [key] if value is None or value == "" else [key, value]
        env = environment_definition
        if env is None:
            if conda_dependencies_file:
                env = Environment.from_conda_specification("estimator-env", conda_dependencies_file)
            elif pip_requirements_file:
                env = Environment.from_pip_requirements("estimator-env", pip_requirements_file)
            else:
                env = Environment("estimator-env")
            if pip_packages or conda_packages:
                deps = env.python.conda_dependencies or CondaDependencies()
                deps.pip_packages += list(pip_packages or [])
                deps.conda_packages += list(conda_packages or [])
                env.python.conda_dependencies = deps
            env.python.user_managed_dependencies = user_managed
            image = custom_docker_image or custom_docker_base_image
            if use_docker or image:
                env.docker.enabled = True
                env.docker.base_image = image
            env.environment_variables.update(environment_variables or {})
        super().__init__(source_directory=source_directory, script=entry_script, arguments=args,
                         compute_target=compute_target, environment=env,
                         max_run_duration_seconds=max_run_duration_seconds or DEFAULT_MAX_RUN_DURATION)
        self.run_config.data = list(inputs or [])
