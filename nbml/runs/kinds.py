"""Run kinds and the Run subclasses that read them: a registry, so `Run` knows no higher layer.

A higher layer (AutoML, HyperDrive) registers its class for its kind when its module is imported
(``register("automl", AutoMLRun)`` at the end of ``nbml/automl/run.py``). The registry only knows, by
name, which module holds the class of a kind, and imports it the first time a run of that kind is read:
`Run.get(ws, id)` of a script run never imports AutoML, and the runs layer imports nothing above it.
"""

from __future__ import annotations

import importlib
from typing import Any

#: kind -> the module that registers its Run subclass when imported
MODULES: dict[str, str] = {
    "automl": "nbml.automl.run",
    "hyperdrive": "nbml.hyperdrive.run",
}

_CLASSES: dict[str, type[Any]] = {}


def register(kind: str, cls: type[Any]) -> type[Any]:
    """Make `cls` the class that `Run.get` returns for runs of `kind` (usable as a class decorator)."""
    _CLASSES[kind] = cls
    return cls


def run_class(kind: str) -> type[Any] | None:
    """The registered class for `kind`, importing its module on first use; None for plain runs.

    A kind whose module can't be imported (an optional dependency missing) reads as a plain `Run`.
    """
    cls = _CLASSES.get(kind)
    if cls is None and kind in MODULES:
        try:
            importlib.import_module(MODULES[kind])
        except ImportError:
            return None
        cls = _CLASSES.get(kind)
    return cls
