"""The iterations table and status bar of a parent run, as a small anywidget (ships with plotly's widget)."""

from __future__ import annotations

import pathlib
import threading
from typing import Any

import anywidget
import traitlets

from nbml.widgets._iterations import ChildrenState, sort_and_page, table_columns

_HERE = pathlib.Path(__file__).parent


class IterationTable(anywidget.AnyWidget):  # type: ignore[misc]
    """Status bar + paged, sortable table; ``selected`` holds the clicked iteration's run id."""

    _esm = _HERE / "_table.js"
    _css = _HERE / "_table.css"

    columns = traitlets.List(table_columns(None)).tag(sync=True)
    rows: traitlets.List[dict[str, Any]] = traitlets.List([]).tag(sync=True)
    # The status bar, packed (see StatusBar): int32 iterations, uint8 status indexes into `bar_statuses`
    # ([status, colour] pairs), float64 scores (NaN: none). `bar_metric`/`bar_goal` title and shade the cells.
    bar_iterations = traitlets.Bytes(b"").tag(sync=True)
    bar_status = traitlets.Bytes(b"").tag(sync=True)
    bar_scores = traitlets.Bytes(b"").tag(sync=True)
    bar_statuses: traitlets.List[list[str]] = traitlets.List([]).tag(sync=True)
    bar_metric = traitlets.Unicode("").tag(sync=True)
    bar_goal = traitlets.Unicode("maximize").tag(sync=True)
    sort_by = traitlets.Unicode("iteration").tag(sync=True)
    descending = traitlets.Bool(False).tag(sync=True)
    page = traitlets.Int(0).tag(sync=True)
    pages = traitlets.Int(1).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    page_size = traitlets.Int(10).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    shown = traitlets.Unicode("").tag(sync=True)  # the run whose details are on show: the page scrolls to them

    pipeline_label = "Pipeline"

    def __init__(self, state: ChildrenState, lock: threading.RLock | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state = state
        self._lock = lock or threading.RLock()
        self._bar_run_ids: list[str] = []
        self.observe(self._on_view_change, names=["sort_by", "descending", "page", "page_size"])
        self.on_msg(self._on_message)

    @property
    def bar_count(self) -> int:
        """How many cells the status bar shows."""
        return len(self._bar_run_ids)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # A click on a status bar cell: the browser knows its position, the run ids stay here.
        if isinstance(content, dict) and content.get("type") == "select-cell":
            index = content.get("index")
            if isinstance(index, int) and 0 <= index < len(self._bar_run_ids):
                run_id = self._bar_run_ids[index]
                self.selected = "" if self.selected == run_id else run_id

    def _on_view_change(self, _change: dict[str, Any]) -> None:
        with self._lock:  # the polling thread patches the same rows
            self.refresh()

    def set_metric(self, metric: str | None) -> None:
        """Name the score columns after the metric on show."""
        columns = table_columns(metric, self.pipeline_label)
        if columns != self.columns:
            self.columns = columns

    def refresh(self, changed: set[str] | None = None) -> None:
        """Recompute the visible page (and the status bar when iterations changed); send only what differs."""
        rows = self._state.ordered()
        visible, pages = sort_and_page(rows, self.sort_by, self.descending, self.page, self.page_size)
        with self.hold_sync():
            if changed is None or changed:
                bar = self._state.status_bar(self.bar_statuses)
                self._bar_run_ids = bar.run_ids
                if bar.names != self.bar_statuses:
                    self.bar_statuses = bar.names
                for name, value in (("bar_iterations", bar.iterations), ("bar_status", bar.statuses),
                                    ("bar_scores", bar.scores), ("bar_metric", self._state.metric or ""),
                                    ("bar_goal", self._state.metric_goal)):
                    if getattr(self, name) != value:
                        setattr(self, name, value)
            if pages != self.pages:
                self.pages = pages
            if self.page > pages - 1:
                self.page = pages - 1
            if len(rows) != self.total:
                self.total = len(rows)
            if visible != self.rows:
                self.rows = visible


class SnapshotGuard(anywidget.AnyWidget):  # type: ignore[misc]
    """Invisible: hides the output's static snapshot while the live widget is on show."""

    _esm = _HERE / "_guard.js"
