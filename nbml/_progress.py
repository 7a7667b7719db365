"""Progress of long work (snapshots, environment and image builds, uploads, searches), shown only where it helps.

A bar in a notebook (tqdm's widget), a line updated in place in a terminal, with counts and sizes; nothing
when the work ends within a second, and nothing in logs: the display appears only on an interactive
output (a Jupyter kernel or a terminal) unless ``NBML_PROGRESS=1`` asks for it anywhere (tests, CI logs);
``NBML_PROGRESS=0`` turns it off. Supervisors run with ``NBML_PROGRESS=0``: their output is a log file.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

#: Seconds of work before a bar appears (shorter work shows nothing).
DELAY = 1.0


def mode() -> str:
    """``"on"``, ``"off"`` or ``"auto"`` (the default: interactive outputs only), from NBML_PROGRESS."""
    value = os.environ.get("NBML_PROGRESS", "").strip().lower()
    if value in ("1", "on", "true", "yes", "always"):
        return "on"
    if value in ("0", "off", "false", "no", "never"):
        return "off"
    return "auto"


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _interactive() -> bool:
    try:
        return _in_notebook() or sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stderr
        return False


class Progress:
    """One task's progress: ``with Progress("Snapshot", total=n, unit="files") as p: p.update(1, nbytes=size)``.

    `total` may be None (unknown: a running count) or set later with ``set_total``. With `sizes`, the bytes
    passed as `nbytes` show beside the count and rate (``1234/50000 [00:04<00:12, 290 files/s, 12.3 MB]``).
    """

    def __init__(self, desc: str, total: float | None = None, unit: str = "files", *, sizes: bool = False,
                 delay: float = DELAY) -> None:
        chosen = mode()
        self.enabled = chosen == "on" or (chosen == "auto" and _interactive())
        self.nbytes = 0
        self._sizes = sizes
        self._bar: Any = None
        if not self.enabled:
            return
        if chosen == "on" and not _in_notebook():
            from tqdm import tqdm  # the text line, even where stderr is not a terminal
        else:
            from tqdm.auto import tqdm  # a widget in a notebook, a text line in a terminal
        self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", delay=0 if chosen == "on" else delay,
                         file=sys.stderr, dynamic_ncols=True, leave=True, mininterval=0.2)

    def update(self, n: float = 1, nbytes: int = 0) -> None:
        self.nbytes += nbytes
        if self._bar is None:
            return
        if self._sizes:
            self._bar.set_postfix_str(_size(self.nbytes), refresh=False)
        self._bar.update(n)

    def note(self, text: str, step: bool = False) -> None:
        """Show `text` (the latest thing done) beside the count; `step` counts one more."""
        if self._bar is None:
            return
        if text:
            self._bar.set_postfix_str(text, refresh=False)
        self._bar.update(1 if step else 0)  # update(0) redraws the text at most every mininterval

    def write(self, text: str, out: TextIO) -> None:
        """Print `text` to `out` without breaking the bar (it is redrawn below the text)."""
        if self._bar is None:
            out.write(text)
            out.flush()
            return
        with self._bar.external_write_mode(file=out):
            out.write(text)
            out.flush()

    def set_total(self, total: float | None) -> None:
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def set_description(self, desc: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(desc, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            if self._sizes:
                self._bar.set_postfix_str(_size(self.nbytes), refresh=False)
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class LogProgress:
    """Progress of work done inside a supervisor, as plain lines in the run's log (read by show_output and
    RunDetails): one line every `interval` seconds, and a last one if the work took that long; short work
    writes nothing. ``LogProgress(log, "Uploading", total=n, total_bytes=b).update(1, nbytes=size)``.
    """

    def __init__(self, log: Callable[[str], None], desc: str, total: int, unit: str = "files",
                 total_bytes: int | None = None, interval: float = 2.0) -> None:
        self.log, self.desc, self.total, self.unit = log, desc, total, unit
        self.total_bytes, self.interval = total_bytes, interval
        self.done = 0
        self.nbytes = 0
        self._start = self._last = time.monotonic()

    def line(self) -> str:
        sizes = _size(self.nbytes) + (f" of {_size(self.total_bytes)}" if self.total_bytes is not None else "")
        return (f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}, {sizes} "
                f"({time.monotonic() - self._start:.0f} s)")

    def update(self, n: int = 1, nbytes: int = 0) -> None:
        self.done += n
        self.nbytes += nbytes
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.log(self.line())

    def close(self) -> None:
        if time.monotonic() - self._start >= self.interval:
            self.log(self.line())


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"  # pragma: no cover - the loop returns
