"""The static snapshot of a RunDetails output: plain, escaped HTML with inline SVG charts, a few KB.

It is displayed as its own ``text/html`` output just above the live widget, with a display id, and refreshed
when the run ends. The live widget hides it (``_guard.js``); a notebook reopened before its kernel runs, or
viewed where widgets don't run (nbviewer, GitHub, nbconvert), shows it instead. It never holds script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nbml.widgets._model import Header, esc, properties_rows

if TYPE_CHECKING:
    from nbml.widgets._views import ParentView, RunView

#: Hides the snapshot where the live widget shows in the same output area, by CSS alone: the guard widget
#: (_guard.js) does the same, but anywidget gives up on a model that takes over 2 s to start (a loaded
#: machine), and then both showed. Where no live widget renders (a reopened notebook, nbviewer, nbconvert) the
#: rule matches nothing, and where the output isn't trusted the style is dropped: the snapshot shows.
HIDE_BESIDE_LIVE = ("<style>.jp-OutputArea:has(.nbml-run-details) .nbml-snapshot,"
                    ".output_area:has(.nbml-run-details) .nbml-snapshot{display:none}</style>")
MAX_ROWS = 50  # iterations listed; beyond that the best ones
WIDTH, HEIGHT, PAD = 480, 160, 28


def svg_chart(title: str, xs: Sequence[float], ys: Sequence[float], best: Sequence[float] | None = None) -> str:
    """A small line chart as inline SVG (points of ys, and a step line of best-so-far)."""
    if not ys:
        return ""
    x_lo, x_hi = min(xs), max(xs)
    lo, hi = min(ys), max(ys)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    if x_hi == x_lo:
        x_hi = x_lo + 1

    def point(x: float, y: float) -> str:
        px = PAD + (x - x_lo) / (x_hi - x_lo) * (WIDTH - 2 * PAD)
        py = HEIGHT - PAD - (y - lo) / (hi - lo) * (HEIGHT - 2 * PAD)
        return f"{px:.1f},{py:.1f}"

    dots = "".join(f'<circle cx="{point(x, y).split(",")[0]}" cy="{point(x, y).split(",")[1]}" r="2.5" '
                   f'fill="#1f77b4"/>' for x, y in zip(xs, ys, strict=True))
    line = ""
    if best:
        steps: list[str] = []  # best so far as a step line: flat until the next improvement
        for k, (x, y) in enumerate(zip(xs, best, strict=True)):
            if k:
                steps.append(point(x, best[k - 1]))
            steps.append(point(x, y))
        line = f'<polyline fill="none" stroke="#ff7f0e" stroke-width="1.5" points="{" ".join(steps)}"/>'
    return (f'<svg class="nbml-snapshot-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
            f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{esc(title)}">'
            f'<text x="{PAD}" y="14" font-size="12">{esc(title)}</text>'
            f'<text x="2" y="{PAD}" font-size="10">{hi:.4g}</text>'
            f'<text x="2" y="{HEIGHT - PAD}" font-size="10">{lo:.4g}</text>'
            f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>'
            f"{line}{dots}</svg>")


def _props(rows: Sequence[tuple[str, str]]) -> str:
    # JupyterLab right-aligns table cells: a long value (an error) would push the others out of sight
    cells = "".join(f"<tr><th style='text-align:left;vertical-align:top;padding:1px 8px'>{esc(k)}</th>"
                    f"<td style='text-align:left;padding:1px 8px;max-width:60em;overflow-wrap:anywhere'>{esc(v)}"
                    "</td></tr>" for k, v in rows)
    return f"<table class='nbml-snapshot-props'>{cells}</table>"


def snapshot_html(view: RunView | ParentView) -> str:
    """The snapshot of what `view` shows now."""
    from nbml.widgets._views import ParentView, base_url

    run = view.watcher.run
    if not run:
        return ""
    parts = [Header.from_run(run, base_url()).html()]
    if isinstance(view, ParentView):
        parts.append(_props(view.summary_rows()))
        parts.append(_iterations(view))
    else:
        parts.append(_props(properties_rows(run, view.watcher.metrics, view.watcher.properties)))
        for name, values in sorted(view.watcher.metrics.series().items())[:6]:
            xs = list(range(len(values)))
            parts.append(svg_chart(name, xs, [float(v) for v in values]))
    note = ("<p style='font-size:85%;color:#666'><i>Static snapshot of RunDetails; run the cell for the live "
            "view.</i></p>")
    return f"{HIDE_BESIDE_LIVE}<div class='nbml-snapshot'>{''.join(parts)}{note}</div>"


def _iterations(view: ParentView) -> str:
    state = view.watcher.children
    metric = state.metric
    chart = ""
    if metric:
        xs, ys, best = state.metric_series(metric)
        chart = svg_chart(f"{metric} per iteration", xs, ys, best)
    rows = state.ordered()
    shown = rows
    if len(rows) > MAX_ROWS:
        scored = sorted((r for r in rows if r.metric is not None), key=lambda r: r.metric or 0.0,
                        reverse=state.metric_goal == "maximize")
        shown = scored[:MAX_ROWS]
    head = "".join(f"<th style='text-align:left;padding:1px 8px;white-space:nowrap'>{esc(label)}</th>"
                   for key, label in view.table.columns if key != "run_id")
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left;padding:1px 8px;white-space:nowrap'>{esc(c[key])}</td>"
                         for key, _ in view.table.columns if key != "run_id") + "</tr>"
        for c in (r.cells() for r in shown))
    more = (f"<p><i>{len(rows)} iterations; the best {len(shown)} by {esc(metric)} listed.</i></p>"
            if len(shown) < len(rows) else "")
    return f"{chart}<table class='nbml-snapshot-iterations'><tr>{head}</tr>{body}</table>{more}"
