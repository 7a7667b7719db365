"""``RunDetails(run).show()``: a live view of a run that follows the store from a background thread."""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

import ipywidgets as w

from nbml.widgets._model import esc
from nbml.widgets._views import ParentView, RunView

POLL_SECONDS = 0.5


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error = w.HTML()
        record = self.store.get_run(self.run_id)
        if record is None:
            raise ValueError(f"No run {self.run_id!r} in the workspace at {self.store.root}.")
        parent = record.get("kind") in ("automl", "hyperdrive") or self.store.count_runs(parent_id=self.run_id) > 0
        self.view: RunView | ParentView = (ParentView(self.store, self.run_id, self._lock) if parent
                                           else RunView(self.store, self.run_id, self._lock))
        self.widget = w.VBox([self.view.widget, self.error])
        self.widget.add_class("nbml-run-details")
        self.updates = 0

    def get_widget(self) -> w.VBox:
        """The widget without displaying it (to place it in a layout of your own)."""
        self._start()
        return self.widget

    def show(self) -> None:
        """Display the widget in the notebook and keep it up to date until the run ends."""
        from IPython.display import display

        display(self.get_widget())

    def poll_once(self) -> bool:
        """Read what changed and patch the view; returns whether the run still needs watching."""
        self.view.poll()
        self.updates += 1
        return not self.view.watcher.finished() if isinstance(self.view, RunView) else not self.view.finished()

    @property
    def polling(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop following the store (the widget keeps what it shows)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _start(self) -> None:
        if self._thread is not None:
            return
        if not self.poll_once():
            return
        self._thread = threading.Thread(target=self._loop, name=f"nbml-RunDetails-{self.run_id}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.wait(self.poll_seconds * (1 + min(failures, 10))):
            try:
                if not self.poll_once():
                    return
                failures = 0
                self.error.value = ""
            except Exception:  # keep following; show what went wrong instead of dying silently
                failures += 1
                self.error.value = (f"<pre style='color:#c62828'>RunDetails could not read the run (retrying):\n"
                                    f"{esc(traceback.format_exc(limit=3))}</pre>")
                time.sleep(0)
