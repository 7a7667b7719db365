"""Automated machine learning: AutoMLConfig → a parent run whose iterations are child runs on any target."""

from nbml.automl.config import AutoMLConfig
from nbml.automl.explain import retrieve_model_explanation

__all__ = ["AutoMLConfig", "AutoMLRun", "retrieve_model_explanation"]


def __getattr__(name: str) -> object:
    if name == "AutoMLRun":  # imported lazily: it pulls in the run machinery
        from nbml.automl.run import AutoMLRun

        return AutoMLRun
    raise AttributeError(f"module 'nbml.automl' has no attribute {name!r}")
