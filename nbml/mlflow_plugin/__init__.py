"""MLflow's tracking API writing nbml runs: a tracking-store and artifact-repository plugin for ``nbml://``.

``mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())`` (``nbml:///abs/path/of/workspace``) makes
``mlflow.start_run`` / ``log_param`` / ``log_metric`` / ``set_tag`` / ``log_artifact`` / ``log_model`` and
autologging write runs of the workspace, and ``MlflowClient`` read them back. MLflow finds the plugin by
the entry points ``mlflow.tracking_store`` and ``mlflow.artifact_repository`` (scheme ``nbml``) that nbml's
package metadata declares.

How MLflow's records map onto nbml's:

- experiment: the nbml experiment of the same name (its MLflow id is the name, or ``x``+hash for a name
  MLflow won't take as an id; ``"0"``, MLflow's default, is the experiment ``Default``);
- run: an nbml run (``mlflow.start_run`` in a notebook is an interactive run, like
  ``Experiment.start_logging``), its MLflow id the nbml run id, ``mlflow.runName`` its display name;
- param: a run property ``mlflow.param.<key>``; tag: a run tag; metric: a scalar metric with its step;
- artifact: a file of the run's folder (``runs/<run id>/<path>``); a logged model: the folder
  ``<name>/`` of its run, its record a property ``mlflow.model.<model id>``.

Inside a job nbml started (any target), the job's environment carries ``MLFLOW_TRACKING_URI`` and
``MLFLOW_RUN_ID``: the store writes through the job's event log (like ``Run.get_context()``), never the
SQLite file, and artifacts go to the job's uploads, which come back with the run. There every top-level
run MLflow starts is the job's own run; a nested run is a child run of it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

SCHEME = "nbml"
PARAM_PREFIX = "mlflow.param."
MODEL_PREFIX = "mlflow.model."
INPUT_PREFIX = "mlflow.input."
ARTIFACT_ROOT = "mlflow.artifact_root"
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT = "Default"
_EXPERIMENT_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")  # what MLflow accepts as an experiment id


def tracking_uri(workspace_path: str | os.PathLike[str]) -> str:
    """``nbml:///abs/path``: the MLflow tracking URI of the workspace in that folder."""
    return SCHEME + Path(workspace_path).resolve().as_uri()[len("file"):]


def workspace_path(uri: str) -> Path:
    """The workspace folder a ``nbml://`` URI names (``nbml:relative`` is taken from the current folder)."""
    parsed = urlparse(uri)
    if parsed.scheme != SCHEME:
        raise ValueError(f"{uri!r} is not an nbml URI; it should look like {tracking_uri('/path/to/workspace')!r}")
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"{uri!r} names the host {parsed.netloc!r}; an nbml URI is a folder on this machine, "
                         f"e.g. {tracking_uri('/path/to/workspace')!r}")
    return Path(unquote(parsed.path) or ".").resolve()


def experiment_id(name: str) -> str:
    """The MLflow id of an nbml experiment."""
    if name == DEFAULT_EXPERIMENT:
        return DEFAULT_EXPERIMENT_ID
    if _EXPERIMENT_ID.match(name):
        return name
    return "x" + hashlib.sha1(name.encode()).hexdigest()[:20]


def in_job() -> tuple[str, str] | None:
    """(run id, job folder) when this process is a job nbml started; None elsewhere."""
    run_id, job_dir = os.environ.get("NBML_RUN_ID"), os.environ.get("NBML_JOB_DIR")
    if run_id and job_dir and os.path.isdir(job_dir):
        return run_id, job_dir
    return None


def mlflow_environ(run_id: str, workspace_root: str | None, user_env: dict[str, str]) -> dict[str, str]:
    """What a job's environment gets so that ``mlflow.log_*`` in its script land in its run, no set-up.

    Nothing when the user's environment names a tracking server of its own, or the job has no workspace.
    """
    if "MLFLOW_TRACKING_URI" in user_env or not workspace_root:
        return {}
    return {"MLFLOW_TRACKING_URI": tracking_uri(workspace_root), "MLFLOW_RUN_ID": run_id}


def tracking_store(store_uri: str, artifact_uri: str | None = None) -> object:
    """Entry point ``mlflow.tracking_store``: the store for a ``nbml://`` URI."""
    from nbml.mlflow_plugin.store import JobStore, WorkspaceStore

    job = in_job()
    if job is not None:
        return JobStore(store_uri, *job)
    return WorkspaceStore(store_uri)


def artifact_repository(artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> object:
    """Entry point ``mlflow.artifact_repository``: files of a run's folder."""
    from nbml.mlflow_plugin.artifacts import NbmlArtifactRepository

    return NbmlArtifactRepository(artifact_uri, tracking_uri=tracking_uri)


def register() -> None:
    """Make MLflow know the ``nbml`` scheme in this process when nbml's entry points aren't installed.

    (nbml imported from a source folder, a job's runtime copy): the same builders the entry points name.
    """
    try:
        from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    except ImportError:
        return
    try:
        _tracking_store_registry.get_store_builder(SCHEME + ":///")
    except Exception:
        _tracking_store_registry.register(SCHEME, tracking_store)
    if SCHEME not in _artifact_repository_registry.get_registered_artifact_repositories():
        _artifact_repository_registry.register(SCHEME, artifact_repository)


def entry_point_files() -> dict[str, str]:
    """The files of a minimal ``nbml-<version>.dist-info`` declaring the plugin's entry points (relative paths)."""
    from nbml import __version__

    info = f"nbml-{__version__}.dist-info"
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: nbml\nVersion: {__version__}\n",
        f"{info}/entry_points.txt": (f"[mlflow.tracking_store]\n{SCHEME} = nbml.mlflow_plugin:tracking_store\n\n"
                                     f"[mlflow.artifact_repository]\n{SCHEME} = nbml.mlflow_plugin:artifact_repository\n"),
    }


def write_entry_points(folder: str | os.PathLike[str]) -> list[Path]:
    """Declare the plugin's entry points in `folder` (a job's runtime folder on its PYTHONPATH), so MLflow in
    the job finds them whether or not its Python has nbml installed. Returns the files' paths."""
    written = []
    for rel, text in entry_point_files().items():
        path = Path(folder) / rel
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.replace(path)  # whole or absent: jobs of other runs may be reading it
        written.append(path)
    return written
