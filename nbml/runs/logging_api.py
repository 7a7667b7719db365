"""The logging half of the Run API, shared by store-backed runs and runs inside a training script."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from nbml.runs.events import jsonable


class RunLoggingMixin:
    """log / log_list / log_row / log_table / log_image / tags / properties, written through `_emit`."""

    def _emit(self, event: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _save_upload(self, name: str, data: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log a scalar; logging the same name again makes it a series (shown as a chart)."""
        self._emit({"type": "metric", "name": name, "kind": "scalar", "value": jsonable(value), "step": step})

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        """Log a list of values under one name."""
        self._emit({"type": "metric", "name": name, "kind": "list", "value": jsonable(list(value))})

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Append a row to a table metric: ``run.log_row("loss", epoch=1, value=0.3)``."""
        self._emit({"type": "metric", "name": name, "kind": "row", "value": jsonable(kwargs)})

    def log_table(self, name: str, value: dict[str, list[Any]], description: str = "") -> None:
        """Log a table as a dict of equal-length columns."""
        if not isinstance(value, dict):
            raise TypeError("log_table expects a dict of columns, e.g. {'epoch': [1, 2], 'loss': [0.5, 0.3]}")
        self._emit({"type": "metric", "name": name, "kind": "table", "value": jsonable(value)})

    def log_image(self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None,
                  description: str = "") -> None:
        """Log an image file or a matplotlib figure/pyplot; it is kept as ``images/<name>.png``."""
        if (path is None) == (plot is None):
            raise ValueError("log_image needs exactly one of path= (an image file) or plot= (a matplotlib figure)")
        if path is not None:
            data = Path(path).read_bytes()
            suffix = Path(path).suffix or ".png"
        else:
            buf = io.BytesIO()
            fig = plot.gcf() if hasattr(plot, "gcf") else plot
            fig.savefig(buf, format="png")
            data, suffix = buf.getvalue(), ".png"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        rel = f"images/{safe}{suffix}"
        self._save_upload(rel, data)
        self._emit({"type": "metric", "name": name, "kind": "image", "value": rel})

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        self._emit({"type": "metric", "name": name, "kind": "table", "value": {"matrix": jsonable(value)}})

    def tag(self, key: str, value: Any = None) -> None:
        self._emit({"type": "tags", "tags": {key: value}})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._emit({"type": "tags", "tags": dict(tags)})

    def remove_tags(self, tags: list[str]) -> None:
        self._emit({"type": "remove_tags", "keys": list(tags)})

    def add_properties(self, properties: dict[str, Any]) -> None:
        self._emit({"type": "properties", "props": {k: jsonable(v) for k, v in properties.items()}})

    def create_children(self, count: int | None = None, tag_key: str | None = None,
                        tag_values: list[Any] | None = None) -> list[Any]:
        """Start `count` child runs, or one per value of `tag_values` tagged ``{tag_key: value}`` (the SDK's)."""
        from nbml.errors import UserErrorException

        if tag_values is not None and tag_key is None:
            raise UserErrorException("create_children(tag_values=...) needs tag_key, the tag each child gets.")
        if count is None and tag_values is None:
            raise UserErrorException("create_children needs count=N or tag_key= with tag_values=[...].")
        values = list(tag_values) if tag_values is not None else None
        if values is not None and count is not None and count != len(values):
            raise UserErrorException(f"create_children(count={count}) disagrees with the {len(values)} tag_values; "
                                     "pass one of them, or a count equal to len(tag_values).")
        n = len(values) if values is not None else int(count or 0)
        if n < 0:
            raise UserErrorException(f"create_children(count={count}): the count can't be negative.")
        children = [self.child_run() for _ in range(n)]  # type: ignore[attr-defined]
        if values is not None and tag_key is not None:
            for child, value in zip(children, values, strict=True):
                child.tag(tag_key, value)
        return children
