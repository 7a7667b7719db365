"""``RunDetails(run).show()``: a live view of a run, updated on the kernel's own event loop.

Widgets are only touched from the thread that runs the kernel's event loop (ipykernel's asyncio loop on the
main thread): a timer on that loop polls the store and patches the view between cells. While a cell blocks
the loop, ``Run.wait_for_completion`` (and AutoML's progress printer) call :func:`pump` from that same thread,
so the usual ``RunDetails(run).show()`` then ``run.wait_for_completion()`` keeps the widget live too.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
import weakref
from typing import Any

import ipywidgets as w

from nbml.widgets._model import esc
from nbml.widgets._snapshot import snapshot_html
from nbml.widgets._table import SnapshotGuard
from nbml.widgets._views import HyperDriveView, ParentView, RunView

POLL_SECONDS = 0.5
_LIVE: weakref.WeakSet[RunDetails] = weakref.WeakSet()


def pump() -> None:
    """Update the live RunDetails of this kernel whose next poll is due; a no-op off the loop's thread.

    Called by blocking waits (``wait_for_completion``) so the widgets stay live while the loop can't run.
    """
    for details in list(_LIVE):
        if details._loop_thread is threading.current_thread():
            details._tick_if_due()


def _resolve(run: Any) -> tuple[Any, str]:
    """(store, run_id) of a Run, AutoMLRun or anything carrying an id and a workspace."""
    run_id = getattr(run, "id", None) or getattr(run, "run_id", None)
    store = getattr(run, "store", None) or getattr(run, "_store", None)
    if store is None:
        for owner in (getattr(run, "experiment", None), run):
            ws = getattr(owner, "workspace", None)
            if ws is not None and getattr(ws, "store", None) is not None:
                store = ws.store
                break
    if not run_id or store is None:
        raise TypeError(f"RunDetails needs a run (e.g. experiment.submit(...) or Run.get(ws, id)), not {run!r}.")
    return store, str(run_id)


class RunDetails:
    """Live details of a run: adapts to a script run or a parent with iterations (AutoML, HyperDrive).

    Parameters
    ----------
    run
        The run to show: what ``Experiment.submit`` returns, or ``Run.get(ws, run_id)`` in a new kernel.
    poll_seconds
        How often the store is read while the run is active.
    """

    def __init__(self, run: Any, poll_seconds: float = POLL_SECONDS) -> None:
        self.run = run
        self.store, self.run_id = _resolve(run)
        self.poll_seconds = poll_seconds
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._next_due = 0.0
        self._failures = 0
        self._stopped = False
        self._started = False
        self._display: Any = None
        self.error = w.HTML()
        record = self.store.get_run(self.run_id)
        if record is None:
            raise ValueError(f"No run {self.run_id!r} in the workspace at {self.store.root}.")
        kind = record.get("kind")
        parent = kind in ("automl", "hyperdrive") or self.store.count_runs(parent_id=self.run_id) > 0
        view_cls = HyperDriveView if kind == "hyperdrive" else ParentView
        self.view: RunView | ParentView = (view_cls(self.store, self.run_id, self._lock) if parent
                                           else RunView(self.store, self.run_id, self._lock))
        self.guard = SnapshotGuard()
        self.widget = w.VBox([self.view.widget, self.error, self.guard])
        self.widget.add_class("nbml-run-details")
        self.updates = 0

    def get_widget(self) -> w.VBox:
        """The widget without displaying it (to place it in a layout of your own)."""
        self._start()
        return self.widget

    def show(self) -> None:
        """Display the widget in the notebook and keep it up to date until the run ends.

        The output also carries a small static HTML snapshot (the run's state, its iterations table and a
        chart as inline SVG), refreshed when the run ends: what a saved notebook shows before its kernel
        runs, and what a viewer without widgets (GitHub, nbviewer, nbconvert) shows.
        """
        from IPython.display import display

        widget = self.get_widget()
        self._display = display(self._snapshot(), raw=True, display_id=True)
        display(widget)

    def _snapshot(self) -> dict[str, str]:
        return {"text/html": snapshot_html(self.view), "text/plain": f"RunDetails of run {self.run_id}"}

    def poll_once(self) -> bool:
        """Read what changed and patch the view; returns whether the run still needs watching."""
        self.view.poll()
        self.updates += 1
        return not self.view.watcher.finished() if isinstance(self.view, RunView) else not self.view.finished()

    @property
    def polling(self) -> bool:
        return self._started and not self._stopped

    def stop(self) -> None:
        """Stop following the store (the widget keeps what it shows)."""
        self._stopped = True
        _LIVE.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Stop following the store and close every widget of the view."""
        self.stop()
        self.view.close()
        self.error.close()
        self.guard.close()
        self.widget.close()

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop runs here (a plain script): the view is drawn once
            self._loop = None
        self._loop_thread = threading.current_thread()
        if not self._poll_safely():
            self._finish()
            return
        if self._loop is None:
            self._stopped = True
            return
        _LIVE.add(self)
        self._schedule()

    def _schedule(self) -> None:
        delay = self.poll_seconds * (1 + min(self._failures, 10))
        self._next_due = time.monotonic() + delay
        if self._loop is not None and not self._stopped:
            self._timer = self._loop.call_later(delay, self._tick)

    def _tick_if_due(self) -> None:
        if not self._stopped and time.monotonic() >= self._next_due:
            if self._timer is not None:
                self._timer.cancel()
            self._tick()

    def _tick(self) -> None:
        self._timer = None
        if self._stopped:
            return
        if self._poll_safely():
            self._schedule()
        else:
            self._finish()

    def _poll_safely(self) -> bool:
        try:
            more = self.poll_once()
        except Exception:  # keep following; show what went wrong instead of dying silently
            self._failures += 1
            self.error.value = (f"<pre style='color:#c62828'>RunDetails could not read the run (retrying):\n"
                                f"{esc(traceback.format_exc(limit=3))}</pre>")
            return True
        if self._failures:
            self._failures = 0
            self.error.value = ""
        return more

    def _finish(self) -> None:
        """The run has ended: stop polling and refresh the output's static snapshot."""
        self.stop()
        if self._display is not None:
            try:
                self._display.update(self._snapshot(), raw=True)
            except Exception:  # the output may be gone (cleared cell); the widget itself is complete
                pass
