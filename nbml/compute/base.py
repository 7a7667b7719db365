"""The one async protocol every compute target implements.

The supervisor and the AutoML coordinator talk only to `ComputeBackend`; they never branch on the kind
of target. A backend runs *jobs*: a job is one process (a script, or an AutoML iteration) started in a
job folder on the target that holds the snapshot files plus::

    outputs/                 files the job writes there come back to the run at the end
    logs/                    streamed back while the job runs
    events.jsonl             what Run.get_context() logs (see nbml.runs.events)
    nbml-logs/driver_log.txt the job's stdout and stderr together
    .nbml/exit_code          written by the job's wrapper when it ends (targets that can't wait() on it)

Every method that takes a `JobHandle` must work from a *different* process than the one that started the
job (a restarted supervisor reattaches with the handle stored in the run record).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

LogFn = Callable[[str], None]

DRIVER_LOG = "nbml-logs/driver_log.txt"
EVENTS_FILE = "events.jsonl"
EXIT_CODE_FILE = ".nbml/exit_code"
#: Where a script run's spark-submit settings (run_config.spark) travel in `JobSpec.extra_files`.
SPARK_SETTINGS = ".nbml/spark.json"
#: Stands for the job folder's absolute path on the target in `JobSpec.argv` and `environ` (data paths).
JOB_DIR_TOKEN = "{{NBML_JOB_DIR}}"


@dataclasses.dataclass
class EnvSpec:
    """What a target needs to prepare a Python environment (see nbml.environment.Environment.spec)."""

    name: str
    hash: str
    user_managed: bool = True
    interpreter_path: str | None = None
    pip: list[str] = dataclasses.field(default_factory=list)
    python_version: str | None = None
    docker_enabled: bool = False
    docker_base_image: str | None = None
    environment_variables: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnvSpec:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclasses.dataclass
class FileEntry:
    sha256: str
    size: int
    mode: int


@dataclasses.dataclass
class JobSpec:
    """One process to run on a target.

    `argv` follows the interpreter: ``["train.py", "--lr", "0.1"]`` or ``["-m", "nbml.automl.child", "spec.json"]``.
    `files` maps a relative path in the job folder to a content-addressed blob in `blob_dir` (the workspace's
    snapshot store); `extra_files` are small files written verbatim (job specs, data pickles).
    """

    run_id: str
    argv: list[str]
    env: EnvSpec
    files: dict[str, FileEntry]
    blob_dir: Path
    environ: dict[str, str] = dataclasses.field(default_factory=dict)
    extra_files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    timeout_seconds: float | None = None
    #: Limits a container target enforces: {"cpu_cores": 1.0, "memory_gb": 2.0} (run_config.container_instance).
    resources: dict[str, float] = dataclasses.field(default_factory=dict)
    #: Nodes a distributed job runs on at once (its process is then nbml.compute._ranks on each node); only
    #: cluster targets (dask) run more than one.
    node_count: int = 1


@dataclasses.dataclass
class JobHandle:
    """JSON-serialisable reference to a started job, stored in the run record."""

    target: str
    job_dir: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # what dataclasses.asdict gives, for JSON values, at a fraction of its cost (once or twice per job)
        return {"target": self.target, "job_dir": self.job_dir, "data": _json_copy(self.data)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobHandle:
        return cls(target=d["target"], job_dir=d["job_dir"], data=dict(d.get("data") or {}))


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, tuples; anything else is kept as is)."""
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_json_copy(v) for v in value)
    return value


@dataclasses.dataclass
class JobState:
    state: Literal["running", "exited", "lost"]
    exit_code: int | None = None
    reason: str | None = None


class ComputeBackend(abc.ABC):
    """Base class of the per-kind backends in nbml.compute.{local,ssh,docker,dask}."""

    kind: ClassVar[str]
    #: Whether a job's folder (``JobHandle.job_dir``) is a path this process reads directly (local, Dask's
    #: shared folder): the executor then mirrors events, logs and outputs in one file-thread call per pass.
    local_files: ClassVar[bool] = False

    def __init__(self, name: str, config: dict[str, Any], workspace_root: Path) -> None:
        self.name = name
        self.config = config
        self.workspace_root = workspace_root

    @abc.abstractmethod
    async def prepare(self, env: EnvSpec, log: LogFn) -> str:
        """Make the environment ready on the target (cached by env.hash); return its python executable."""

    @abc.abstractmethod
    async def stage(self, job: JobSpec, log: LogFn) -> str:
        """Create the job folder and put the job's files in it, sending only content the target lacks."""

    @abc.abstractmethod
    async def start(self, job: JobSpec, python: str, job_dir: str) -> JobHandle:
        """Start the job detached from the caller; it must outlive the caller's connection or process."""

    @abc.abstractmethod
    async def read(self, handle: JobHandle, relpath: str, offset: int, limit: int = 1 << 20) -> bytes:
        """Bytes of a job file from `offset` (at most `limit`); b"" when the file doesn't exist yet."""

    @abc.abstractmethod
    async def list_files(self, handle: JobHandle, prefix: str) -> list[tuple[str, int]]:
        """(relative path, size) of every regular file under `prefix` in the job folder."""

    @abc.abstractmethod
    async def poll(self, handle: JobHandle) -> JobState:
        """Whether the job still runs; its exit code once it ended; `lost` with a reason if it vanished."""

    @abc.abstractmethod
    async def cancel(self, handle: JobHandle, grace_seconds: float = 3.0) -> None:
        """Stop the job's whole process tree (TERM, then KILL after the grace period)."""

    @abc.abstractmethod
    async def fetch(self, handle: JobHandle, relpath: str, dest: Path) -> None:
        """Copy one job file to a local path."""

    async def cleanup(self, handle: JobHandle) -> None:  # noqa: B027 - optional hook
        """Release what the job held on the target (containers, temp folders)."""

    async def status(self) -> dict[str, Any]:
        """The target's state for listings: at least {"state": ...}; clusters add node counts."""
        return {"state": "Succeeded"}

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Close connections held by this backend object."""


def job_environ(job: JobSpec, job_dir: str, runtime_dir: str | None = None) -> dict[str, str]:
    """Variables every job gets, whatever the target: where to log, which run it is."""
    from nbml.mlflow_plugin import mlflow_environ

    env = {
        "NBML_RUN_ID": job.run_id,
        "NBML_JOB_DIR": job_dir,
        "PYTHONUNBUFFERED": "1",
        **mlflow_environ(job.run_id, job.environ.get("NBML_WORKSPACE"), job.env.environment_variables),
        **job.env.environment_variables,
        **{k: v.replace(JOB_DIR_TOKEN, job_dir) for k, v in job.environ.items()},
    }
    if runtime_dir:
        env["PYTHONPATH"] = runtime_dir
    return env


def job_argv(job: JobSpec, job_dir: str) -> list[str]:
    """The job's argv with `JOB_DIR_TOKEN` replaced by the job folder as the process sees it (data paths)."""
    return [a.replace(JOB_DIR_TOKEN, job_dir) for a in job.argv]


def wrapper_script(job_dir: str) -> str:
    """POSIX sh that runs the job with output to the driver log and records its exit code.

    `$@` is the command. Used by targets that can't wait() on the job from the caller's process.
    """
    return (
        f'cd "{job_dir}" && mkdir -p nbml-logs .nbml outputs logs && '
        '"$@" >> nbml-logs/driver_log.txt 2>&1; code=$?; '
        'echo $code > .nbml/exit_code.tmp && mv .nbml/exit_code.tmp .nbml/exit_code'
    )
