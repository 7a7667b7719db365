"""MLflow's artifact repository for ``nbml://`` URIs: a run's artifacts are files of its run folder.

In the notebook (or any process with the workspace folder) the files are written into ``runs/<run id>/``
directly. Inside a job they go to the job's uploads (``.nbml/uploads/``), which the supervisor copies
into the run's folder with its outputs, from whichever target ran it.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

from nbml.mlflow_plugin import SCHEME, in_job, workspace_path

#: Runs this process created inside its job (nested MLflow runs): their artifacts' folder in the uploads.
JOB_CHILDREN: dict[str, str] = {}
CHILDREN_DIR = "mlflow-children"


def job_workspace() -> Path | None:
    """The workspace folder the job's MLFLOW_TRACKING_URI names (a path of the machine that started it)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    return workspace_path(uri) if uri.startswith(SCHEME + ":") else None


def local_folder(path: Path) -> Path:
    """Where the artifacts of `path` (a folder of a run, as the artifact URI names it) are on this machine."""
    job = in_job()
    ws = job_workspace() if job is not None else None
    if job is None or ws is None:
        return path
    try:
        parts = path.relative_to(ws).parts
    except ValueError:
        return path
    if len(parts) < 2 or parts[0] != "runs":
        return path
    run_id, rest = parts[1], parts[2:]
    uploads = Path(job[1]) / ".nbml" / "uploads"
    if run_id == job[0]:
        return uploads.joinpath(*rest)
    if run_id in JOB_CHILDREN:
        return uploads.joinpath(JOB_CHILDREN[run_id], *rest)
    return path


class NbmlArtifactRepository(LocalArtifactRepository):
    """LocalArtifactRepository over the run folder (or the job's uploads) that a ``nbml://`` URI names."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        self._artifact_dir = str(local_folder(workspace_path(artifact_uri)))
