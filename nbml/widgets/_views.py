"""ipywidgets views of a run, patched from the watcher's changes (the what-to-show lives in _model)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import plotly.graph_objects as go

from nbml.widgets._model import (
    Header,
    esc,
    feature_importance,
    files_html,
    log_html,
    properties_rows,
    table_html,
)
from nbml.widgets._plotly import FigureWidget
from nbml.widgets._table import IterationTable
from nbml.widgets._watch import Changes, RunWatcher

if TYPE_CHECKING:
    from nbml.store import Store


def base_url() -> str:
    """The Jupyter server's base URL as the kernel knows it (JupyterHub sets a per-user prefix)."""
    return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or os.environ.get("NBML_BASE_URL") or "/"


def line_chart(title: str, height: int = 260) -> go.FigureWidget:
    return FigureWidget(data=[go.Scatter(mode="lines+markers", name=title)],
                           layout={"title": {"text": title}, "height": height, "template": "plotly_white",
                                   "margin": {"l": 50, "r": 20, "t": 40, "b": 40}})


def _section(title: str) -> w.HTML:
    return w.HTML(f"<h4 style='margin:8px 0 2px 0'>{esc(title)}</h4>")


class RunView:
    """Header, properties, one chart per list metric, log panel and outputs of one run."""

    def __init__(self, store: Store, run_id: str, lock: threading.RLock, *, with_header: bool = True) -> None:
        self.watcher = RunWatcher(store, run_id, with_children=False)
        self.lock = lock
        self.header = w.HTML()
        self.props = w.HTML()
        self.charts: dict[str, go.FigureWidget] = {}
        self.chart_box = w.Box(layout=w.Layout(flex_flow="row wrap"))
        self.log_choice = w.Dropdown(options=[], description="Log file", layout=w.Layout(width="60%"))
        self.log_choice.add_class("nbml-log-choice")
        self.log_text = w.HTML("<i>No logs yet.</i>")
        self.log_text.add_class("nbml-log-panel")
        self.outputs = w.HTML(files_html([]))
        self.explanation = w.VBox()
        self._setting_logs = False
        self.log_choice.observe(self._on_log_choice, names="value")
        parts: list[w.Widget] = [self.header] if with_header else []
        parts += [self.props, self.chart_box, _section("Output logs"), self.log_choice, self.log_text,
                  _section("Outputs"), self.outputs, self.explanation]
        self.widget = w.VBox(parts)
        self.widget.add_class("nbml-run-view")

    def poll(self) -> Changes:
        with self.lock:
            changes = self.watcher.poll()
            self.apply(changes)
        return changes

    def apply(self, ch: Changes) -> None:
        run = self.watcher.run
        if not run:
            return
        self.header.value = Header.from_run(run, base_url()).html()
        if ch.run or ch.metrics or run.get("status") not in ("Completed", "Failed", "Canceled"):
            value = table_html(properties_rows(run, self.watcher.metrics))
            if value != self.props.value:
                self.props.value = value
        if ch.metrics:
            self._update_charts(ch.metrics)
        if ch.log_files:
            self._update_log_choice()
        if ch.log_text and self.watcher.tail is not None:
            self.log_text.value = log_html(self.watcher.tail.text, self.watcher.tail.truncated)
        if ch.outputs:
            self.outputs.value = files_html(self.watcher.outputs)

    def _update_charts(self, names: set[str]) -> None:
        series = self.watcher.metrics.series()
        for name in sorted(names):
            values = series.get(name)
            if values is None or len(values) < 2:
                continue
            fig = self.charts.get(name)
            if fig is None:
                fig = self.charts[name] = line_chart(name)
                fig.layout.width = 420
                self.chart_box.children = (*self.chart_box.children, fig)
            fig.plotly_restyle({"x": [list(range(len(values)))], "y": [list(values)]}, trace_indexes=[0])

    def _update_log_choice(self) -> None:
        names = sorted(self.watcher.log_files)
        shown = self.watcher.shown_log()
        self._setting_logs = True
        try:
            if list(self.log_choice.options) != names:
                self.log_choice.options = names
            if shown is not None and self.log_choice.value != shown:
                self.log_choice.value = shown
        finally:
            self._setting_logs = False

    def _on_log_choice(self, change: dict[str, Any]) -> None:
        if self._setting_logs or change["new"] is None:
            return
        with self.lock:
            # Picking the active log again goes back to following whichever log is being written.
            self.watcher.select_log(None if change["new"] == self.watcher.active_log else change["new"])
            if self.watcher.tail is not None:
                self.log_text.value = log_html(self.watcher.tail.text, self.watcher.tail.truncated)

    def show_explanation(self, explained_by: str | None = None) -> None:
        data = feature_importance(self.watcher.read_explanation(explained_by))
        if data is None:
            self.explanation.children = (w.HTML("<i>No explanation stored for this run.</i>"),)
            return
        names, values = data[:20]
        fig = FigureWidget(
            data=[go.Bar(x=values[::-1], y=names[::-1], orientation="h")],
            layout={"title": {"text": "Feature importance"}, "height": 120 + 18 * len(names),
                    "margin": {"l": 140, "r": 20, "t": 40, "b": 30}, "template": "plotly_white"},
        )
        self.explanation.children = (_section("Explanation"), fig)


class ParentView:
    """A parent run (AutoML, HyperDrive): iterations status bar and table, metric chart, iteration details."""

    def __init__(self, store: Store, run_id: str, lock: threading.RLock) -> None:
        self.store = store
        self.lock = lock
        self.watcher = RunWatcher(store, run_id, with_children=True)
        self.header = w.HTML()
        self.props = w.HTML()
        self.table = IterationTable(self.watcher.children, lock)
        self.metric_choice = w.Dropdown(options=[], description="Metric", layout=w.Layout(width="50%"))
        self.metric_choice.add_class("nbml-metric-choice")
        self.chart = FigureWidget(
            # Trace names are set at the first draw: names given here don't reach the browser's legend.
            data=[go.Scatter(mode="markers"), go.Scatter(mode="lines", line={"shape": "hv"})],
            layout={"height": 320, "template": "plotly_white", "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
                    "xaxis": {"title": {"text": "Iteration"}}})
        self.detail_box = w.VBox()
        self.detail_box.add_class("nbml-iteration-detail")
        self.detail: RunView | None = None
        self._drawn: tuple[Any, ...] = ()
        self.metric_choice.observe(lambda _c: self._redraw_chart(), names="value")
        self.table.observe(self._on_select, names="selected")
        self.widget = w.VBox([self.header, self.props, _section("Iterations"), self.table, self.metric_choice,
                              self.chart, self.detail_box])
        self.widget.add_class("nbml-parent-view")

    def poll(self) -> Changes:
        with self.lock:
            changes = self.watcher.poll()
            self.apply(changes)
            if self.detail is not None:
                self.detail.poll()
        return changes

    def apply(self, ch: Changes) -> None:
        run = self.watcher.run
        if not run:
            return
        self.header.value = Header.from_run(run, base_url()).html()
        best = self.watcher.children.best_run()
        rows = properties_rows(run, self.watcher.metrics)
        rows.insert(1, ("Iterations", str(len(self.watcher.children.rows))))
        if self.watcher.children.primary_metric:
            rows.insert(2, ("Primary metric", f"{self.watcher.children.primary_metric} "
                                              f"({self.watcher.children.goal})"))
        if best is not None:
            rows.insert(3, ("Best iteration", f"{best.iteration} ({best.pipeline}): {best.metric:.6g}"))
        value = table_html(rows)
        if value != self.props.value:
            self.props.value = value
        ticking = self.watcher.children.tick()
        if ch.children or ticking:
            self.table.refresh(ch.children)
        if ch.children or ch.primary_metric:
            names = self.watcher.children.metric_names()
            if list(self.metric_choice.options) != names:
                current = self.metric_choice.value
                self.metric_choice.options = names
                self.metric_choice.value = current if current in names else (names[0] if names else None)
            self._redraw_chart()

    def _redraw_chart(self) -> None:
        name = self.metric_choice.value
        if not name:
            return
        xs, ys, best = self.watcher.children.metric_series(name)
        if (name, xs, ys) == self._drawn:  # most events (an iteration starting) leave the chart as it is
            return
        self._drawn = (name, xs, ys)
        # plotly_restyle/relayout skip plotly's per-element validation (most of the cost at 1,000 points).
        # Plain lists: numpy arrays travel as binary buffers, which plotly's widget fails to apply on update.
        self.chart.plotly_restyle({"x": [xs, xs], "y": [ys, best], "name": [name, "Best so far"]},
                                  trace_indexes=[0, 1])
        self.chart.plotly_relayout({"title.text": f"{name} per iteration", "yaxis.title.text": name})

    def _on_select(self, change: dict[str, Any]) -> None:
        rid = change["new"]
        with self.lock:
            if not rid:
                self.detail, self.detail_box.children = None, ()
                return
            row = self.watcher.children.rows.get(rid)
            title = f"Iteration {row.iteration}: {row.pipeline}" if row else rid
            self.detail = RunView(self.store, rid, self.lock)
            self.detail.poll()
            self.detail.show_explanation(self.watcher.children.explained_by.get(rid))
            self.detail_box.children = (_section(title), self.detail.widget)

    def finished(self) -> bool:
        return self.watcher.finished() and (self.detail is None or self.detail.watcher.finished())
