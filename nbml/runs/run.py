"""Run: a training run recorded in the workspace store, readable and controllable from any process."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.errors import ActivityFailedException, UserErrorException
from nbml.runs import recovery
from nbml.runs.logging_api import RunLoggingMixin
from nbml.runs.status import CANCELED, COMPLETED, FAILED, RUNNING, TERMINAL

if TYPE_CHECKING:
    from nbml.models.registry import Model
    from nbml.runs.experiment import Experiment
    from nbml.runs.script_run import ContextRun, OfflineRun
    from nbml.workspace import Workspace


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z") if ts else None


class Run(RunLoggingMixin):
    """A run of an experiment. ``Run(experiment, run_id)`` or ``Run.get(ws, run_id)`` reattaches from any process."""

    def __init__(self, experiment: Experiment, run_id: str, _record: dict[str, Any] | None = None) -> None:
        from nbml.workspace import get_run_or_raise

        self.experiment = experiment
        self.id = run_id
        self._rec = _record or get_run_or_raise(experiment.workspace, run_id)

    # -- identity ------------------------------------------------------------------------------
    @classmethod
    def get(cls, workspace: Workspace, run_id: str) -> Run:
        """Reattach to a run by id (after a kernel restart, from another process, from the CLI)."""
        from nbml.runs.experiment import Experiment
        from nbml.workspace import get_run_or_raise

        rec = get_run_or_raise(workspace, run_id)
        if recovery.ensure_supervised(workspace.store, rec):
            rec = get_run_or_raise(workspace, run_id)
        run = cls(Experiment(workspace, rec["experiment"]), run_id, rec)
        return run._typed()

    def _typed(self) -> Run:
        """The most specific class for this run's kind (an AutoML parent comes back as an AutoMLRun)."""
        from nbml.runs.kinds import run_class

        cls = run_class(self._rec["kind"]) if type(self) is Run else None
        return cls(self.experiment, self.id, self._rec) if cls is not None else self  # type: ignore[no-any-return]

    @staticmethod
    def get_context(allow_offline: bool = True, **_: Any) -> ContextRun | OfflineRun:
        """The current run, inside a script that nbml started; an offline run that prints, elsewhere."""
        from nbml.runs.script_run import get_context

        return get_context(allow_offline)

    @property
    def workspace(self) -> Workspace:
        return self.experiment.workspace

    @property
    def _store(self) -> Any:
        return self.experiment.workspace.store

    @property
    def run_dir(self) -> Path:
        return self.workspace.run_dir(self.id)

    def _refresh(self) -> dict[str, Any]:
        rec = self._store.get_run(self.id)
        if rec is not None:
            self._rec = rec
        return self._rec

    @property
    def status(self) -> str:
        return self.get_status()

    @property
    def type(self) -> str:
        return str(self._rec["kind"])

    @property
    def display_name(self) -> str:
        return str(self._rec.get("display_name") or self.id)

    @property
    def parent(self) -> Run | None:
        pid = self._rec.get("parent_id")
        return Run(self.experiment, pid) if pid else None

    @property
    def number(self) -> int:
        return int(self._rec.get("iteration") or 0)

    @property
    def properties(self) -> dict[str, Any]:
        return self.get_properties()

    @property
    def tags(self) -> dict[str, Any]:
        return self.get_tags()

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self._rec["config_json"])  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return (f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Type: {self.type}, "
                f"Status: {self._rec['status']})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id and other.workspace == self.workspace

    def __hash__(self) -> int:
        return hash(self.id)

    # -- writing (from the notebook) ------------------------------------------------------------
    def _emit(self, event: dict[str, Any]) -> None:
        etype = event["type"]
        if etype == "metric":
            self._store.log_metric(self.id, event["name"], event["kind"], event["value"], event.get("step"))
        elif etype == "tags":
            self._store.set_tags(self.id, event["tags"])
        elif etype == "remove_tags":
            self._store.remove_tags(self.id, event["keys"])
        elif etype == "properties":
            self._store.add_properties(self.id, event["props"])

    def _save_upload(self, name: str, data: bytes) -> None:
        dest = self._safe_path(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)

    # -- status --------------------------------------------------------------------------------
    def get_status(self) -> str:
        rec = self._refresh()
        if rec["status"] not in TERMINAL and recovery.ensure_supervised(self._store, rec):
            rec = self._refresh()  # its holder was gone: a new supervisor adopts it (or it ended Failed)
        return str(rec["status"])

    def get_details(self) -> dict[str, Any]:
        rec = self._refresh()
        cfg = self.config
        details: dict[str, Any] = {
            "runId": self.id,
            "experiment": rec["experiment"],
            "target": rec["compute_target"],
            "status": rec["status"],
            "createdTimeUtc": _iso(rec["created_at"]),
            "startTimeUtc": _iso(rec["started_at"]),
            "endTimeUtc": _iso(rec["ended_at"]),
            "properties": self.get_properties(),
            "tags": self.get_tags(),
            "inputDatasets": [],
            "outputDatasets": [],
            "runDefinition": {k: v for k, v in cfg.items() if k not in ("driver",)},
            "logFiles": {n: str(self.run_dir / n) for n in self.get_file_names() if "log" in n.split("/")[0]},
        }
        if rec.get("error"):
            details["error"] = {"error": {"message": rec["error"]}}
        if cfg.get("distributed"):  # node and process counts, and each rank's state (nbml-logs/ranks.jsonl)
            from nbml.compute._ranks import read_status

            details["distributed"] = {**cfg["distributed"], **read_status(self.run_dir)}
        return details

    def get_rank_log(self, rank: int) -> str:
        """The output of one rank of a distributed run so far (rank 0's is also the run's driver log)."""
        from nbml.compute._ranks import rank_log

        path = self.run_dir / rank_log(rank)
        return path.read_text(errors="replace") if path.exists() else ""

    def get_details_with_logs(self) -> dict[str, Any]:
        details = self.get_details()
        details["logFiles"] = {n: Path(p).read_text(errors="replace") for n, p in details["logFiles"].items()}
        return details

    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True, timeout_seconds: float | None = None) -> dict[str, Any]:
        """Block until the run ends; with show_output, stream its output while waiting, then a summary.

        Raises
        ------
        ActivityFailedException
            If the run ended Failed and `raise_on_error` is true.
        """
        from nbml.runs.follow import follow_logs, idle

        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        if show_output:
            print(f"RunId: {self.id}\nWeb View: /nbml/runs/{self.id}\n", flush=True)
            follow_logs(self, sys.stdout, deadline)
        while self.get_status() not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Run {self.id} still {self._rec['status']} after {timeout_seconds} s.")
            idle(0.2)
        rec = self._rec
        if show_output:
            dur = (rec["ended_at"] or time.time()) - (rec["started_at"] or rec["created_at"])
            print(f"\nExecution Summary\n=================\nRunId: {self.id}\nStatus: {rec['status']}\n"
                  f"Duration: {dur:.1f} s\n", flush=True)
            if rec.get("error"):
                print(f"Error:\n{rec['error']}\n", flush=True)
        if raise_on_error and rec["status"] == FAILED:
            raise ActivityFailedException(f"Run {self.id} failed:\n{rec.get('error') or 'no error recorded'}")
        return self.get_details()

    def cancel(self) -> None:
        """Ask the supervisor to stop the run; it ends Canceled within a few seconds."""
        rec = self._refresh()
        if rec["status"] in TERMINAL:
            return
        self._store.request_cancel(self.id)
        if rec["kind"] == "interactive" or (rec["status"] == "NotStarted" and not rec.get("supervisor_pid")):
            # Nothing runs it yet: a supervisor that starts later finds the run ended and exits.
            recovery.release_interactive(self._store, self.id)
            self._store.set_status(self.id, CANCELED)
        else:  # a dead supervisor is replaced; the new one sees the request and cancels the job
            recovery.ensure_supervised(self._store, rec)

    # -- interactive runs (Experiment.start_logging) -------------------------------------------
    def complete(self, _set_status: bool = True) -> None:
        self._upload_outputs_folder()
        self._store.set_status(self.id, COMPLETED)
        recovery.release_interactive(self._store, self.id)

    def fail(self, error_details: Any = None, error_code: Any = None, _set_status: bool = True) -> None:
        self._upload_outputs_folder()
        self._store.set_status(self.id, FAILED, error=str(error_details) if error_details else None)
        recovery.release_interactive(self._store, self.id)

    def _upload_outputs_folder(self) -> None:
        out = self.config.get("outputs")
        if out and Path(out).is_dir():
            self.upload_folder("outputs", out)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, _tb: Any) -> None:
        if self._refresh()["status"] not in TERMINAL:
            self.fail(repr(exc)) if exc_type else self.complete()

    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: str | None = None) -> Run:
        """Start an interactive child run of this run."""
        from nbml.runs.ids import new_child_id

        child_id = run_id or new_child_id(self.id, self._store.count_runs(parent_id=self.id) + 1)
        self._store.insert_run(child_id, self.experiment.name, "interactive", self._rec["compute_target"],
                               {"outputs": outputs}, parent_id=self.id, display_name=name, status=RUNNING)
        self._store.set_status(child_id, RUNNING)
        recovery.hold_interactive(self._store, child_id)
        return Run(self.experiment, child_id)

    def get_children(self, recursive: bool = False, tags: Any = None, properties: Any = None,
                     type: str | None = None, status: str | None = None, **_: Any) -> Iterator[Run]:
        for rec in self._store.children(self.id):
            run = Run(self.experiment, rec["run_id"], rec)
            if (status and rec["status"] != status) or (type and rec["kind"] != type):
                continue
            if (tags and not _matches(run.get_tags(), tags)) or (properties and not _matches(run.get_properties(),
                                                                                           properties)):
                continue
            yield run
            if recursive:
                yield from run.get_children(recursive=True, tags=tags, properties=properties, type=type, status=status)

    # -- reading -------------------------------------------------------------------------------
    def get_metrics(self, name: str | None = None, recursive: bool = False, run_type: str | None = None,
                    populate: bool = False) -> dict[str, Any]:
        """Metrics by name (a value, or a list when logged several times); recursive adds children's by run id."""
        own = self._store.get_metrics(self.id, name)
        if not recursive:
            return own  # type: ignore[no-any-return]
        out = {self.id: own}
        for child in self.get_children(recursive=True):
            out[child.id] = self._store.get_metrics(child.id, name)
        return out

    def get_tags(self) -> dict[str, Any]:
        return self._store.get_tags(self.id)  # type: ignore[no-any-return]

    def get_properties(self) -> dict[str, Any]:
        return self._store.get_properties(self.id)  # type: ignore[no-any-return]

    # -- files -----------------------------------------------------------------------------------
    def _safe_path(self, name: str) -> Path:
        root = self.run_dir.resolve()
        path = (root / name).resolve()
        if path != root and root not in path.parents:
            raise UserErrorException(f"File name {name!r} points outside the run's folder; use a relative path "
                                     "such as 'outputs/model.joblib'.")
        return path

    def get_file_names(self) -> list[str]:
        root = self.run_dir
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def upload_file(self, name: str, path_or_stream: Any) -> None:
        dest = self._safe_path(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(path_or_stream, "read"):
            dest.write_bytes(path_or_stream.read())
        else:
            shutil.copyfile(path_or_stream, dest)

    def upload_files(self, names: list[str], paths: list[str]) -> None:
        for n, p in zip(names, paths, strict=True):
            self.upload_file(n, p)

    def upload_folder(self, name: str, path: str) -> None:
        for file in Path(path).rglob("*"):
            if file.is_file():
                self.upload_file(f"{name.rstrip('/')}/{file.relative_to(path).as_posix()}", str(file))

    def download_file(self, name: str, output_file_path: str | os.PathLike[str] | None = None,
                      _validate_checksum: bool = False) -> str:
        src = self._safe_path(name)
        if not src.is_file():
            files = self.get_file_names()
            raise UserErrorException(f"Run {self.id} has no file {name!r}. Its files: {', '.join(files) or 'none'}.")
        dest = Path(output_file_path) if output_file_path else Path(Path(name).name)
        if dest.is_dir():
            dest = dest / Path(name).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return str(dest)

    def download_files(self, prefix: str | None = None, output_directory: str | None = None,
                       output_paths: list[str] | None = None, batch_size: int = 100, append_prefix: bool = True,
                       **_: Any) -> list[str]:
        out_dir = Path(output_directory or ".")
        names = [n for n in self.get_file_names() if not prefix or n.startswith(prefix)]
        written = []
        for i, name in enumerate(names):
            rel = name if append_prefix or not prefix else name[len(prefix):].lstrip("/")
            dest = Path(output_paths[i]) if output_paths else out_dir / rel
            written.append(self.download_file(name, dest))
        return written

    def register_model(self, model_name: str, model_path: str | None = None, tags: dict[str, Any] | None = None,
                       properties: dict[str, Any] | None = None, model_framework: str | None = None,
                       model_framework_version: str | None = None, description: str | None = None,
                       **kwargs: Any) -> Model:
        """Register a file or folder of this run's outputs as a model version."""
        from nbml.models.registry import Model

        path = model_path or "outputs"
        src = self._safe_path(path)
        if not src.exists():
            files = [n for n in self.get_file_names() if n.startswith("outputs/")]
            raise UserErrorException(f"Run {self.id} has no file or folder {path!r} to register. Its outputs: "
                                     f"{', '.join(files) or 'none (write files to ./outputs in the script)'}.")
        return Model.register(self.workspace, model_path=str(src), model_name=model_name, tags=tags,
                              properties=properties, description=description, model_framework=model_framework,
                              model_framework_version=model_framework_version,
                              resource_configuration=kwargs.get("resource_configuration"), _run_id=self.id)

    def restore_snapshot(self, snapshot_id: str | None = None, path: str | None = None) -> str:
        from nbml.snapshot import restore

        sid = snapshot_id or self._rec.get("snapshot_id")
        if not sid:
            raise UserErrorException(f"Run {self.id} has no snapshot.")
        dest = Path(path or f"{self.id}_snapshot")
        restore(self.workspace.path, sid, dest)
        return str(dest)


def _matches(have: dict[str, Any], want: Any) -> bool:
    if isinstance(want, str):
        return want in have
    return all(str(have.get(k)) == str(v) for k, v in dict(want).items())
