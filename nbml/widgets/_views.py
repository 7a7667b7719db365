"""ipywidgets views of a run, patched from the watcher's changes (the what-to-show lives in _model)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go

from nbml.widgets._model import (
    Header,
    esc,
    feature_importance,
    files_html,
    is_number,
    log_html,
    properties_rows,
    table_html,
)
from nbml.widgets._plotly import FigureWidget
from nbml.widgets._ranks import ranks_html, run_rank_view
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


def _floats(values: list[Any]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _section(title: str) -> w.HTML:
    return w.HTML(f"<h4 style='margin:8px 0 2px 0'>{esc(title)}</h4>")


def close_tree(widget: w.Widget) -> None:
    """Close a widget and every widget inside it, so a replaced view leaves no live models in the kernel
    (nor in the browser's widget manager, nor in the notebook's saved widget state)."""
    for child in getattr(widget, "children", ()) or ():
        close_tree(child)
    widget.close()


def experiment_link(experiment: str) -> str:
    from urllib.parse import quote

    return base_url().rstrip("/") + "/nbml/experiments/" + quote(experiment, safe="")


def iteration_figures(predictions: Path, task: str) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """The iteration's charts (title, plotly figure dict) from its out-of-fold predictions, or why there are
    none."""
    try:
        from nbml.automl import iteration_charts as ic
    except ImportError:  # nbml without its AutoML part
        return [], "Charts need nbml's AutoML extra."
    if not predictions.is_file():
        return [], "No out-of-fold predictions stored for this iteration (yet)."
    try:
        figures = ic.charts_from_file(predictions, task)
    except (ic.ChartsUnavailable, OSError, ValueError, KeyError) as err:
        return [], f"No charts: {err}"
    titles = ic.chart_titles(task)
    return [(titles.get(key, key), fig) for key, fig in figures.items()], None


class RunView:
    """Header, properties, one chart per list metric, log panel and outputs of one run."""

    def __init__(self, store: Store, run_id: str, lock: threading.RLock, *, with_header: bool = True) -> None:
        self.watcher = RunWatcher(store, run_id, with_children=False)
        self.lock = lock
        self.header = w.HTML()
        self.props = w.HTML()
        self.ranks = w.HTML()  # a distributed run's ranks (nbml.widgets._ranks)
        self.charts: dict[str, go.FigureWidget] = {}
        self.chart_box = w.Box(layout=w.Layout(flex_flow="row wrap"))
        self.log_choice = w.Dropdown(options=[], description="Log file", layout=w.Layout(width="60%"))
        self.log_choice.add_class("nbml-log-choice")
        self.log_text = w.HTML("<i>No logs yet.</i>")
        self.log_text.add_class("nbml-log-panel")
        self.outputs = w.HTML(files_html([]))
        self.explanation = w.VBox()
        self.iteration = w.VBox()
        self.iteration.add_class("nbml-iteration-charts")
        self._iteration_task: str | None = None
        self._iteration_head: tuple[w.Widget, ...] = ()
        self._iteration_why: str | None = None
        self._iteration_drawn = False
        self._setting_logs = False
        self.log_choice.observe(self._on_log_choice, names="value")
        parts: list[w.Widget] = [self.header] if with_header else []
        parts += [self.props, self.ranks, self.iteration, self.chart_box, _section("Output logs"), self.log_choice,
                  self.log_text, _section("Outputs"), self.outputs, self.explanation]
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
            value = table_html(properties_rows(run, self.watcher.metrics, self.watcher.properties))
            if value != self.props.value:
                self.props.value = value
            ranks = ranks_html(run_rank_view(run, self.watcher.folder))
            if ranks != self.ranks.value:
                self.ranks.value = ranks
        if ch.metrics:
            self._update_charts(ch.metrics)
        if ch.log_files:
            self._update_log_choice()
        if ch.log_text and self.watcher.tail is not None:
            self.log_text.value = log_html(self.watcher.tail.text, self.watcher.tail.truncated)
        if ch.outputs:
            self.outputs.value = files_html(self.watcher.outputs)
        # An iteration's predictions arrive with its outputs, at the latest when it ends: try again then.
        if (ch.outputs or ch.run) and self._iteration_task is not None and not self._iteration_drawn:
            self._draw_iteration_charts()

    def close(self) -> None:
        close_tree(self.widget)

    def show_iteration(self, task: str | None, hyperparameters: dict[str, Any] | None) -> None:
        """An AutoML iteration: its hyperparameters and the charts of its out-of-fold predictions."""
        self._iteration_task = task or "classification"
        parts: list[w.Widget] = []
        if hyperparameters:
            rows = [(str(k), json.dumps(v) if isinstance(v, (dict, list)) else str(v))
                    for k, v in sorted(hyperparameters.items())]
            parts += [_section("Hyperparameters"), w.HTML(table_html(rows, "nbml-hyperparameters"))]
        self._iteration_head = tuple(parts)
        self._draw_iteration_charts()

    def _draw_iteration_charts(self) -> None:
        task = self._iteration_task or "classification"
        figures, why = iteration_figures(self.watcher.folder / "outputs" / "predictions.npz", task)
        charts: list[w.Widget] = []
        for title, fig in figures:
            layout = dict(fig.get("layout") or {})
            # The legend (one entry per class) sits right of the plot: below it, it ran into the x axis's
            # title and past the bottom of the figure. Two charts fit side by side in a usual output area.
            layout.update({"width": 440, "height": 340, "template": "plotly_white",
                           "margin": {"l": 55, "r": 10, "t": 40, "b": 45},
                           "legend": {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top",
                                      "font": {"size": 10}}})
            layout.setdefault("title", {"text": title})
            widget = FigureWidget(data=fig.get("data") or [], layout=layout)
            widget.add_class("nbml-iteration-chart")
            charts.append(widget)
        self._iteration_drawn = bool(figures)
        if not figures and self._iteration_why == why and self.iteration.children:
            return  # nothing new to say
        self._iteration_why = why
        for old in self.iteration.children[len(self._iteration_head):]:
            close_tree(old)
        body: w.Widget = (w.Box(charts, layout=w.Layout(flex_flow="row wrap")) if charts
                          else w.HTML(f"<i>{esc(why)}</i>"))
        self.iteration.children = (*self._iteration_head, _section("Charts"), body)

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
    """A parent run (AutoML, HyperDrive): iterations status bar and table, metric chart, iteration details.

    The metric dropdown drives the chart and the table's two score columns (named after it). A clicked row's
    details open beside the table (below it when the output area is narrow) and are scrolled into view; the
    previous details' widgets are closed.
    """

    kind = "automl"

    def __init__(self, store: Store, run_id: str, lock: threading.RLock) -> None:
        self.store = store
        self.lock = lock
        self.watcher = RunWatcher(store, run_id, with_children=True)
        self.header = w.HTML()
        self.props = w.HTML()
        self.table = IterationTable(self.watcher.children, lock)
        self.table.layout = w.Layout(flex="1 1 560px", min_width="0")
        self.metric_choice = w.Dropdown(options=[], description="Metric", layout=w.Layout(width="50%"))
        self.metric_choice.add_class("nbml-metric-choice")
        self.chart = FigureWidget(
            # Trace names are set at the first draw: names given here don't reach the browser's legend.
            data=[go.Scatter(mode="markers"), go.Scatter(mode="lines", line={"shape": "hv"})],
            layout={"height": 320, "template": "plotly_white", "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
                    "xaxis": {"title": {"text": "Iteration"}}})
        self._unit_ticks = False
        self.detail_box = w.VBox(layout=w.Layout(flex="1 1 480px", min_width="0"))
        self.detail_box.add_class("nbml-iteration-detail")
        self.detail: RunView | None = None
        self._detail_parts: tuple[w.Widget, ...] = ()
        self._drawn: tuple[Any, ...] = ()
        self.metric_choice.observe(self._on_metric, names="value")
        self.table.observe(self._on_select, names="selected")
        self.split = w.Box([self.table, self.detail_box],
                           layout=w.Layout(display="flex", flex_flow="row wrap", align_items="flex-start",
                                           grid_gap="12px"))
        self.split.add_class("nbml-split")
        self.extra = w.VBox()
        self.widget = w.VBox([self.header, self.props, self.metric_choice, self.chart, self.extra,
                              _section("Iterations"), self.split])
        self.widget.add_class("nbml-parent-view")

    def poll(self) -> Changes:
        with self.lock:
            changes = self.watcher.poll()
            self.apply(changes)
            if self.detail is not None:
                self.detail.poll()
        return changes

    def close(self) -> None:
        if self.detail is not None:
            self.detail.close()
        close_tree(self.widget)

    def settings(self) -> dict[str, Any]:
        return {**run_config_of(self.watcher.run), **self.watcher.properties}

    def total_iterations(self) -> int | None:
        for key in ("iterations", "max_total_runs"):
            value = self.settings().get(key)
            try:
                return int(value) if value not in (None, "") else None
            except (TypeError, ValueError):
                continue
        return None

    def summary_rows(self) -> list[tuple[str, str]]:
        run = self.watcher.run
        state = self.watcher.children
        settings = self.settings()
        rows = properties_rows(run, self.watcher.metrics)
        done, known = state.progress()
        total = self.total_iterations()
        rows.insert(1, ("Iterations", f"{done} / {total if total else known}" + (
            f" ({known - done} running)" if known > done else "")))
        extra: list[tuple[str, str]] = []
        if settings.get("task"):
            extra.append(("Task", str(settings["task"])))
        if state.primary_metric:
            extra.append(("Primary metric", f"{state.primary_metric} ({state.goal})"))
        best = state.best_run()
        if best is not None:
            row, score = best
            extra.append(("Best iteration", f"{row.iteration}: {score:.6g}"))
            if row.pipeline:
                extra.append(("Best pipeline", row.pipeline))
        rows[2:2] = extra
        return rows

    def apply(self, ch: Changes) -> None:
        run = self.watcher.run
        if not run:
            return
        self.header.value = Header.from_run(run, base_url()).html() + self._experiment_html()
        value = table_html(self.summary_rows())
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
            self.table.set_metric(self.watcher.children.metric)
        if ch.children:
            self.apply_children(ch)

    def apply_children(self, ch: Changes) -> None:
        """Views of the children beyond the table (HyperDrive's)."""

    def _experiment_html(self) -> str:
        exp = str(self.watcher.run.get("experiment") or "")
        return (f'<div class="nbml-experiment-link" style="font-size:92%"><a href="{esc(experiment_link(exp))}" '
                f'target="_blank" rel="noopener">Compare the runs of experiment {esc(exp)}</a></div>')

    def _on_metric(self, _change: dict[str, Any]) -> None:
        with self.lock:
            name = self.metric_choice.value
            state = self.watcher.children
            if state.choose_metric(None if name == state.primary_metric else name):
                self.table.refresh(set(state.rows))
            self.table.set_metric(state.metric)
            self._redraw_chart()

    def _redraw_chart(self) -> None:
        name = self.metric_choice.value
        if not name:
            return
        xs, ys, best = self.watcher.children.metric_series(name)
        if (name, xs, ys) == self._drawn:  # most events (an iteration starting) leave the chart as it is
            return
        renamed = not self._drawn or self._drawn[0] != name
        self._drawn = (name, xs, ys)
        # plotly_restyle/relayout skip plotly's per-element validation, and float64 arrays travel as binary
        # buffers (plotly's widget turns them into typed arrays): no per-number walk, JSON or parse on the way.
        # At 1,000 iterations that is most of what an update costs.
        self.chart.plotly_restyle({"x": [_floats(xs), _floats(xs)], "y": [_floats(ys), _floats(best)]},
                                  trace_indexes=[0, 1])
        if renamed:
            self.chart.plotly_restyle({"name": [name, "Best so far"]}, trace_indexes=[0, 1])
            self.chart.plotly_relayout({"title.text": f"{name} per iteration", "yaxis.title.text": name})
        # Iterations are whole numbers: over a short span plotly's own ticks would read 0.5, 1.5.
        unit_ticks = bool(xs) and max(xs) - min(xs) < 10
        if unit_ticks != self._unit_ticks:
            self._unit_ticks = unit_ticks
            self.chart.plotly_relayout({"xaxis.dtick": 1 if unit_ticks else None})

    def _on_select(self, change: dict[str, Any]) -> None:
        rid = change["new"]
        with self.lock:
            old, old_parts = self.detail, self._detail_parts
            self.detail, self._detail_parts = None, ()
            if not rid:
                self.detail_box.children = ()
            else:
                state = self.watcher.children
                row = state.rows.get(rid)
                title = f"Iteration {row.iteration}: {row.pipeline}" if row else rid
                self.detail = RunView(self.store, rid, self.lock)
                self.detail.poll()
                if self.kind == "automl" and row is not None and row.iteration is not None:
                    self.detail.show_iteration(str(self.settings().get("task") or "classification"),
                                               state.hyperparameters.get(rid))
                elif state.hyperparameters.get(rid):
                    self.detail.show_iteration(None, state.hyperparameters.get(rid))
                self.detail.show_explanation(state.explained_by.get(rid))
                close = w.Button(description="Close", layout=w.Layout(width="auto"))
                close.add_class("nbml-detail-close")
                close.on_click(lambda _b: setattr(self.table, "selected", ""))
                heading = _section(title)
                self._detail_parts = (heading, close)
                self.detail_box.children = (w.HBox([heading, close], layout=w.Layout(
                    justify_content="space-between", align_items="center")), self.detail.widget)
            self.table.shown = rid or ""
            # The replaced view's widgets are closed once the new ones are in place (no blank flash).
            if old is not None:
                old.close()
            for part in old_parts:
                part.close()

    def finished(self) -> bool:
        return self.watcher.finished() and (self.detail is None or self.detail.watcher.finished())


class HyperDriveView(ParentView):
    """A HyperDrive parent: the children's primary-metric curves, a parallel-coordinates chart of their
    hyperparameters against the metric, and the best run, above the table of children."""

    kind = "hyperdrive"

    def __init__(self, store: Store, run_id: str, lock: threading.RLock) -> None:
        super().__init__(store, run_id, lock)
        self.watcher.children.number_by_order = True
        self.table.pipeline_label = "Hyperparameters"
        self.best = w.HTML()
        self.best.add_class("nbml-best-run")
        self.curves = FigureWidget(layout={"height": 320, "template": "plotly_white", "showlegend": False,
                                           "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
                                           "xaxis": {"title": {"text": "Step"}}})
        self.curves.add_class("nbml-hd-curves")
        self.parallel = FigureWidget(layout={"height": 340, "template": "plotly_white",
                                             "margin": {"l": 60, "r": 60, "t": 60, "b": 30}})
        self.parallel.add_class("nbml-hd-parallel")
        self._curves_drawn: Any = None
        self._parallel_drawn: Any = None
        self.extra.children = (self.best, w.Box([self.curves, self.parallel],
                                                layout=w.Layout(flex_flow="row wrap")))
        self.curves.layout.width = 560
        self.parallel.layout.width = 620

    def apply_children(self, ch: Changes) -> None:
        state = self.watcher.children
        metric = state.primary_metric
        best = state.best_run()
        if best is not None:
            row, score = best
            params = state.hyperparameters.get(row.run_id) or {}
            text = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
            link = base_url().rstrip("/") + "/nbml/runs/" + row.run_id
            self.best.value = (f'<div style="margin:4px 0"><b>Best run</b>: <a href="{esc(link)}" target="_blank" '
                               f'rel="noopener">{esc(row.run_id)}</a> {esc(metric)} {score:.6g}'
                               f'{" (" + esc(text) + ")" if text else ""}</div>')
        if not metric:
            return
        curves = []
        for row in state.ordered():
            value = state.metrics.get(row.run_id, {}).get(metric)
            ys = value if isinstance(value, list) else ([value] if value is not None else [])
            ys = [float(v) for v in ys if is_number(v)]
            if ys:
                curves.append((row.run_id, ys))
        if curves != self._curves_drawn:
            self._curves_drawn = curves
            with self.curves.batch_update():
                self.curves.data = ()
                self.curves.add_traces([go.Scatter(x=list(range(len(ys))), y=ys, mode="lines+markers",
                                                   name=rid, hovertemplate=f"{rid}<br>%{{y}}<extra></extra>")
                                        for rid, ys in curves])
                self.curves.layout.title = {"text": f"{metric} of each child run"}
                self.curves.layout.yaxis = {"title": {"text": metric}}
        self._draw_parallel(metric)

    def _draw_parallel(self, metric: str) -> None:
        state = self.watcher.children
        rows = []
        for row in state.ordered():
            params = state.hyperparameters.get(row.run_id)
            score = state.metrics.get(row.run_id, {}).get(metric)
            if isinstance(score, list):
                score = score[-1] if score else None
            if params and score is not None and is_number(score):
                rows.append((params, float(score)))
        if rows == self._parallel_drawn or len(rows) < 2:
            return
        self._parallel_drawn = rows
        names = sorted({k for params, _ in rows for k in params})
        dims = []
        for name in names:
            values = [params.get(name) for params, _ in rows]
            if all(is_number(v) for v in values):
                dims.append({"label": name, "values": [float(v) for v in values if v is not None]})
            else:  # a choice: categories as ticks
                cats = sorted({str(v) for v in values})
                dims.append({"label": name, "values": [cats.index(str(v)) for v in values],
                             "tickvals": list(range(len(cats))), "ticktext": cats})
        scores = [s for _, s in rows]
        dims.append({"label": metric, "values": scores})
        with self.parallel.batch_update():
            self.parallel.data = ()
            self.parallel.add_trace(go.Parcoords(
                line={"color": scores, "colorscale": "Viridis", "showscale": True,
                      "reversescale": state.goal == "minimize"}, dimensions=dims))
            self.parallel.layout.title = {"text": f"Hyperparameters against {metric}"}


def run_config_of(run: dict[str, Any]) -> dict[str, Any]:
    from nbml.widgets._model import run_config

    return run_config(run)
