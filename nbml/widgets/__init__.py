"""Notebook widgets: ``RunDetails(run).show()``."""

from nbml.widgets.run_details import RunDetails

__all__ = ["RunDetails"]
