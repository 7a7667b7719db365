"""The run a training script gets from ``Run.get_context()``: it appends to the job's event log.

Outside nbml (``python train.py`` by hand) it is an offline run that prints what it logs, so the same
script works both ways.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from nbml.compute.base import EVENTS_FILE
from nbml.runs.events import MAX_EVENT_BYTES, EventWriter, encode
from nbml.runs.logging_api import RunLoggingMixin
from nbml.store.metric_values import dumps, value_file_name

_WRITERS: dict[str, EventWriter] = {}


def _writer(job_dir: str) -> EventWriter:
    w = _WRITERS.get(job_dir)
    if w is None:
        w = _WRITERS[job_dir] = EventWriter(os.path.join(job_dir, EVENTS_FILE))
    return w


class _LiteExperiment:
    def __init__(self, name: str, workspace_path: str | None) -> None:
        self.name = name
        self._ws_path = workspace_path

    @property
    def workspace(self) -> Any:
        from nbml.errors import UserErrorException
        from nbml.workspace import Workspace

        if not self._ws_path or not Path(self._ws_path).is_dir():
            raise UserErrorException("This run executes on a machine without the workspace folder; register "
                                     "models and read other runs from the notebook instead.")
        return Workspace(path=self._ws_path)


class ContextRun(RunLoggingMixin):
    """A run seen from inside its own training process."""

    def __init__(self, run_id: str, job_dir: str, *, target_run: str | None = None) -> None:
        self.id = target_run or run_id
        self._job_dir = job_dir
        self._target = target_run
        self._children = itertools.count(1)
        self._metrics: dict[str, Any] = {}
        self.experiment = _LiteExperiment(os.environ.get("NBML_EXPERIMENT", ""), os.environ.get("NBML_WORKSPACE"))
        parent = os.environ.get("NBML_PARENT_RUN_ID")
        self.parent = ContextRun(parent, job_dir, target_run=parent) if parent and not target_run else None

    @property
    def number(self) -> int:
        return 0

    @property
    def input_datasets(self) -> dict[str, Any]:
        """Datasets given with as_named_input(name): a path (mounted/downloaded files) or a dataset."""
        from nbml.data.inputs import input_datasets

        return input_datasets(self._job_dir)

    def _emit(self, event: dict[str, Any]) -> None:
        if self._target:
            event["run"] = self._target
        line = encode(event)
        is_metric = event.get("type") == "metric"
        if len(line) > MAX_EVENT_BYTES and is_metric:
            # Too big for one event line: the value becomes a file of the run (copied back with it) and the
            # event points at it; readers load it from there.
            rel = value_file_name(str(event["name"]))
            self._save_upload(rel, dumps(event["value"]).encode())
            line = encode({**{k: v for k, v in event.items() if k != "value"}, "value_file": rel})
        if len(line) > MAX_EVENT_BYTES:
            what = f"metric {str(event.get('name'))[:60]!r}" if is_metric else f"{event.get('type')} event"
            raise ValueError(
                f"The {what} is {len(line):,} bytes once written, over the {MAX_EVENT_BYTES:,}-byte limit of one "
                "event; nothing was logged. Shorten the names/values (keep big data as a file with "
                "run.upload_file, or as a metric value, which may be of any size)."
            )
        if is_metric:
            self._metrics.setdefault(event["name"], []).append(event["value"])
        _writer(self._job_dir).write_line(line)

    def _save_upload(self, name: str, data: bytes) -> None:
        dest = Path(self._job_dir) / ".nbml" / "uploads" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(dest)  # whole or absent: the event that names it is written after

    def upload_file(self, name: str, path_or_stream: Any) -> None:
        dest = Path(self._job_dir) / ".nbml" / "uploads" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(path_or_stream, "read"):
            dest.write_bytes(path_or_stream.read())
        else:
            shutil.copyfile(path_or_stream, dest)

    def upload_folder(self, name: str, path: str) -> None:
        for file in Path(path).rglob("*"):
            if file.is_file():
                self.upload_file(f"{name.rstrip('/')}/{file.relative_to(path).as_posix()}", str(file))

    def get_metrics(self, name: str | None = None) -> dict[str, Any]:
        """Metrics this process logged so far (one value, or the series)."""
        out = {k: (v[0] if len(v) == 1 else list(v)) for k, v in self._metrics.items()}
        return {name: out[name]} if name is not None and name in out else ({} if name is not None else out)

    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: str | None = None) -> ContextRun:
        """Create a child run logged through this job's event log."""
        child_id = run_id or f"{self.id}_{next(self._children)}_{uuid.uuid4().hex[:4]}"
        _writer(self._job_dir).write({"type": "child", "run": child_id, "parent": self.id, "name": name or child_id})
        return ContextRun(self.id, self._job_dir, target_run=child_id)

    def complete(self) -> None:
        if self._target:
            _writer(self._job_dir).write({"type": "child_end", "run": self._target, "status": "Completed"})

    def fail(self, error_details: Any = None) -> None:
        if self._target:
            _writer(self._job_dir).write({"type": "child_end", "run": self._target, "status": "Failed"})

    def __enter__(self) -> ContextRun:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.fail() if exc_type else self.complete()

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, context=True)"


class OfflineRun(RunLoggingMixin):
    """Run.get_context() outside nbml: prints what it would log."""

    def __init__(self) -> None:
        self.id = f"OfflineRun_{uuid.uuid4()}"
        self.experiment = _LiteExperiment("offline", None)
        self.parent = None
        self._metrics: dict[str, list[Any]] = {}

    def _emit(self, event: dict[str, Any]) -> None:
        if event.get("type") == "metric":
            self._metrics.setdefault(event["name"], []).append(event["value"])
            print(f"Attempted to log {event['kind']} metric {event['name']}:\n{event['value']}", flush=True)
        else:
            print(f"Attempted to record {event['type']}: {event.get('tags') or event.get('props')}", flush=True)

    def _save_upload(self, name: str, data: bytes) -> None:
        print(f"Attempted to upload {name} ({len(data)} bytes)", flush=True)

    def upload_file(self, name: str, path_or_stream: Any) -> None:
        print(f"Attempted to upload file {name} from {path_or_stream}", flush=True)

    def get_metrics(self, name: str | None = None) -> dict[str, Any]:
        out = {k: (v[0] if len(v) == 1 else v) for k, v in self._metrics.items()}
        return {name: out[name]} if name in out else ({} if name else out)

    def child_run(self, name: str | None = None, **_: Any) -> OfflineRun:
        return OfflineRun()

    def complete(self) -> None:
        pass

    def fail(self, error_details: Any = None) -> None:
        pass

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, offline=True)"


def get_context(allow_offline: bool = True) -> ContextRun | OfflineRun:
    run_id, job_dir = os.environ.get("NBML_RUN_ID"), os.environ.get("NBML_JOB_DIR")
    if run_id and job_dir and os.path.isdir(job_dir):
        return ContextRun(run_id, job_dir)
    if not allow_offline:
        from nbml.errors import UserErrorException

        raise UserErrorException("Run.get_context(allow_offline=False) called outside an nbml run; submit the "
                                 "script with Experiment.submit(ScriptRunConfig(...)).")
    return OfflineRun()


def _now() -> float:
    return time.time()
