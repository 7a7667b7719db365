"""Plotly figures for RunDetails without plotly's 5 MB widget bundle in every saved notebook.

plotly's FigureWidget is an anywidget whose ``_esm`` trait holds the whole plotly.js bundle; a notebook saved
with widget state keeps that text once per figure. ``FigureWidget`` here syncs a small loader instead
(``_plotly_loader.js``), which fetches the bundle once per page from the nbml server extension or, where the
page has no nbml extension (VS Code, a bare Notebook), from the kernel as one custom message.
"""

from __future__ import annotations

import gzip
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go

LOADER = Path(__file__).with_name("_plotly_loader.js")
BUNDLE_MSG = "nbml:plotly-bundle"
# Jupyter server drops iopub messages above 1 MB/s (iopub_data_rate_limit; comm_open is exempt, custom messages
# are not), so the kernel sends the gzipped bundle (~1.5 MB) in chunks, paced under that rate.
CHUNK = 256 * 1024
PAUSE_SECONDS = 0.4


def bundle_path() -> Path:
    """plotly's widget bundle (the ES module its FigureWidget would sync as ``_esm``)."""
    return Path(plotly.__file__).parent / "package_data" / "widgetbundle.js"


@cache
def _bundle_gz() -> bytes:
    return gzip.compress(bundle_path().read_bytes(), compresslevel=6, mtime=0)


class FigureWidget(go.FigureWidget):  # type: ignore[misc]
    """``plotly.graph_objects.FigureWidget`` with a small ``_esm``; the bundle is sent only when a page asks."""

    _esm = LOADER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_msg(self._send_bundle)

    def _send_bundle(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == BUNDLE_MSG:
            threading.Thread(target=self._send_chunks, name="nbml-plotly-bundle", daemon=True).start()

    def _send_chunks(self) -> None:
        data = _bundle_gz()
        count = -(-len(data) // CHUNK)
        for index in range(count):
            if index:
                time.sleep(PAUSE_SECONDS)
            self.send({"type": BUNDLE_MSG, "index": index, "count": count},
                      buffers=[data[index * CHUNK:(index + 1) * CHUNK]])
