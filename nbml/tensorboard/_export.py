"""``export_to_tensorboard(run, logdir)``: a run's metrics as TensorBoard event files.

Written with TensorBoard's own summary writer (``tensorboard.summary.Writer``), so neither TensorFlow nor
PyTorch is needed. Each run gets the folder ``<logdir>/<run id>``; a scalar metric becomes a scalar series
(its steps as logged, else 0, 1, 2... in logging order, at the time it was logged); a list metric becomes
a series stepped by position. Other kinds (tables, rows, images, strings) have no scalar form and are
left out, which the return value says.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nbml.tensorboard._server import require_tensorboard


def _runs(run_data: Any, recursive: bool) -> list[Any]:
    runs = list(run_data) if isinstance(run_data, Iterable) and not hasattr(run_data, "run_dir") else [run_data]
    out: list[Any] = []
    for run in runs:
        out.append(run)
        if recursive and hasattr(run, "get_children"):
            out += list(run.get_children(recursive=True))
    return out


def _number(value: Any) -> float | None:
    """A metric value as a float (NaN and infinities included), or None for anything that isn't a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def export_to_tensorboard(run_data: Any, logdir: str, logger: Any = None, recursive: bool = True) -> dict[str, list[str]]:
    """Write the metrics of a run (or runs, and with `recursive` their children) under `logdir`.

    Returns ``{run id: [metric names left out]}`` for metrics that have no scalar form.
    """
    require_tensorboard()
    from tensorboard.summary import Writer

    skipped: dict[str, list[str]] = {}
    for run in _runs(run_data, recursive):
        store = run.workspace.store
        folder = Path(logdir) / run.id
        folder.mkdir(parents=True, exist_ok=True)
        writer = Writer(str(folder))
        counters: dict[str, int] = {}
        left: set[str] = set()
        try:
            for row in store.metric_rows(run.id):
                name, kind, value = row["name"], row["kind"], row["value"]
                if kind == "scalar" and _number(value) is not None:
                    step = row["step"] if row["step"] is not None else counters.get(name, 0)
                    counters[name] = step + 1
                    writer.add_scalar(name, float(value), int(step), wall_time=row["logged_at"])
                elif kind == "list" and isinstance(value, list) and all(_number(v) is not None for v in value):
                    for i, v in enumerate(value):
                        writer.add_scalar(name, float(v), i, wall_time=row["logged_at"])
                else:
                    left.add(name)
            writer.flush()
        finally:
            writer.close()
        if left:
            skipped[run.id] = sorted(left)
            if logger is not None:
                logger.info("run %s: metrics without a scalar form not exported: %s", run.id, ", ".join(sorted(left)))
    return skipped
