"""Incremental reads of one run from the store and its folder: what changed since the last poll.

Each poll costs a few indexed queries whatever the size of the run: new metric rows after the last id,
children that are new or still active, and log bytes after the last offset.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.runs import recovery
from nbml.runs.status import ACTIVE, TERMINAL
from nbml.widgets._iterations import ChildrenState
from nbml.widgets._model import MetricsState, run_config

if TYPE_CHECKING:
    from nbml.store import Store

LOG_KEEP_BYTES = 128 * 1024
_LOG_FOLDERS = ("logs", "nbml-logs", "azureml-logs")


@dataclasses.dataclass
class Changes:
    run: bool = False
    metrics: set[str] = dataclasses.field(default_factory=set)
    children: set[str] = dataclasses.field(default_factory=set)
    primary_metric: bool = False
    log_files: bool = False
    log_text: bool = False
    outputs: bool = False

    def any(self) -> bool:
        return bool(self.run or self.metrics or self.children or self.primary_metric or self.log_files
                    or self.log_text or self.outputs)


class LogTail:
    """The end of one log file, read by byte offset so each poll reads only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.text = ""
        self.truncated = False

    def read(self) -> bool:
        try:
            size = self.path.stat().st_size
        except OSError:
            return False
        if size < self.offset:  # rewritten from the start
            self.offset, self.text, self.truncated = 0, "", False
        if size == self.offset:
            return False
        start = max(self.offset, size - LOG_KEEP_BYTES)
        with open(self.path, "rb") as fh:
            fh.seek(start)
            data = fh.read(size - start)
        if start > self.offset:
            self.text, self.truncated = "", True
        self.offset = size
        self.text += data.decode("utf-8", errors="replace")
        if len(self.text) > LOG_KEEP_BYTES:
            cut = self.text.find("\n", len(self.text) - LOG_KEEP_BYTES)
            self.text = self.text[cut + 1 if cut >= 0 else len(self.text) - LOG_KEEP_BYTES:]
            self.truncated = True
        return True


class RunWatcher:
    """Reads what changed in one run since the previous :meth:`poll`."""

    def __init__(self, store: Store, run_id: str, *, with_children: bool | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.folder = Path(store.root) / "runs" / run_id
        self.run: dict[str, Any] = {}
        self.properties: dict[str, Any] = {}
        self.metrics = MetricsState()
        self.children = ChildrenState()
        self.with_children = with_children
        self.log_files: dict[str, Path] = {}
        self.log_mtimes: dict[str, float] = {}
        self.active_log: str | None = None
        self.selected_log: str | None = None  # chosen by the user; None follows the active log
        self.tail: LogTail | None = None
        self.outputs: list[tuple[str, int]] = []
        self._known_children: set[str] = set()
        self._active_children: set[str] = set()
        self._final_polls = 0

    # -- polling -------------------------------------------------------------------------------
    def poll(self) -> Changes:
        ch = Changes()
        run = self.store.get_run(self.run_id)
        if run is None:
            return ch
        top_active = run["status"] not in TERMINAL and run.get("parent_id") is None
        if top_active and recovery.ensure_supervised(self.store, run):  # its supervisor died: a new one adopts it
            run = self.store.get_run(self.run_id) or run
        if run != self.run:
            ch.run = True
            self.run = run
        ch.metrics = self.metrics.apply(self.store.metric_rows(self.run_id, after_id=self.metrics.after_id))
        if self.with_children is None:
            self.with_children = self.store.count_runs(parent_id=self.run_id) > 0 or run.get("kind") in (
                "automl", "hyperdrive")
        if self.with_children:
            self._poll_primary_metric(ch)
            self._poll_children(ch)
        elif ch.run or run["status"] not in TERMINAL:  # a job's own properties (a Spark application id) come late
            props = self.store.get_properties(self.run_id)
            if props != self.properties:
                self.properties = props
                ch.run = True
        self._poll_logs(ch)
        self._poll_outputs(ch)
        return ch

    def finished(self) -> bool:
        """True once the run and all its children have ended and a last read has drained their files."""
        done = self.run.get("status") in TERMINAL and not self._active_children
        if not done:
            self._final_polls = 0
            return False
        self._final_polls += 1
        return self._final_polls > 1

    def _poll_primary_metric(self, ch: Changes) -> None:
        props = self.store.get_properties(self.run_id)
        self.properties = props
        config = run_config(self.run)
        metric = (props.get("primary_metric") or config.get("primary_metric")
                  or config.get("primary_metric_name"))  # HyperDrive's spelling
        goal = props.get("primary_metric_goal") or config.get("primary_metric_goal")
        if metric and self.children.set_primary_metric(str(metric), goal):
            ch.primary_metric = True
            ch.children |= set(self.children.rows)

    def _poll_children(self, ch: Changes) -> None:
        s = self.store
        changed: dict[str, dict[str, Any]] = {}
        total = s.count_runs(parent_id=self.run_id)
        if total > len(self._known_children):
            missing = total - len(self._known_children)
            newest = s.list_runs(parent_id=self.run_id, limit=missing + 8, newest_first=True)
            fresh = [r for r in newest if r["run_id"] not in self._known_children]
            if len(fresh) < missing:  # created out of order: read them all once
                fresh = [r for r in s.children(self.run_id) if r["run_id"] not in self._known_children]
            changed.update({r["run_id"]: r for r in fresh})
        active = s.list_runs(parent_id=self.run_id, status=sorted(ACTIVE), limit=1_000_000)
        active_ids = {r["run_id"] for r in active}
        changed.update({r["run_id"]: r for r in active})
        for rid in self._active_children - active_ids - set(changed):
            run = s.get_run(rid)
            if run is not None:
                changed[rid] = run
        self._active_children = active_ids | {
            rid for rid, r in changed.items() if r.get("status") not in TERMINAL}
        if not changed:
            return
        self._known_children |= set(changed)
        ids = list(changed)
        props = {rid: s.get_properties(rid) for rid in ids}
        metrics = s.metrics_for_runs(ids)
        ch.children |= self.children.apply(list(changed.values()), props, metrics)

    def _poll_logs(self, ch: Changes) -> None:
        files: dict[str, Path] = {}
        mtimes: dict[str, float] = {}
        for sub in _LOG_FOLDERS:
            base = self.folder / sub
            if not base.is_dir():
                continue
            for dirpath, _dirs, names in os.walk(base):
                for name in names:
                    path = Path(dirpath) / name
                    rel = path.relative_to(self.folder).as_posix()
                    files[rel] = path
                    try:
                        mtimes[rel] = path.stat().st_mtime
                    except OSError:
                        continue
        if set(files) != set(self.log_files):
            ch.log_files = True
        self.log_files = files
        if mtimes:
            newest = max(mtimes, key=lambda k: mtimes[k])
            if newest != self.active_log and mtimes.get(newest) != self.log_mtimes.get(newest):
                self.active_log = newest
                ch.log_files = True
        self.log_mtimes = mtimes
        shown = self.shown_log()
        if shown is None:
            return
        if self.tail is None or self.tail.path != files[shown]:
            self.tail = LogTail(files[shown])
            ch.log_text = True
        if self.tail.read():
            ch.log_text = True

    def shown_log(self) -> str | None:
        """The log on show: the user's choice, else the most recently written file."""
        if self.selected_log in self.log_files:
            return self.selected_log
        if self.active_log in self.log_files:
            return self.active_log
        return next(iter(sorted(self.log_files)), None)

    def select_log(self, name: str | None) -> None:
        self.selected_log = name
        if name is not None and name in self.log_files:
            self.tail = LogTail(self.log_files[name])
            self.tail.read()

    def _poll_outputs(self, ch: Changes) -> None:
        base = self.folder / "outputs"
        found: list[tuple[str, int]] = []
        if base.is_dir():
            for dirpath, _dirs, names in os.walk(base):
                for name in names:
                    path = Path(dirpath) / name
                    try:
                        found.append((path.relative_to(base).as_posix(), path.stat().st_size))
                    except OSError:
                        continue
        found.sort()
        if found != self.outputs:
            self.outputs = found
            ch.outputs = True

    def read_explanation(self, explained_by: str | None = None) -> Any:
        """The run's explanation if one was stored: a metric, its own outputs/*explanation*.json, or that of
        the run that explained it (AutoML explains a model in a separate child run)."""
        import json

        for name in ("feature_importance", "explanation", "global_importance"):
            if name in self.metrics.values:
                return self.metrics.values[name]
        for base in (self.folder / "outputs", self.folder.parent / (explained_by or "-") / "outputs"):
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*.json")):
                if "explan" in path.name or "importance" in path.name:
                    try:
                        return json.loads(path.read_text())
                    except (OSError, ValueError):
                        continue
        return None
