"""``azureml.tensorboard.export`` under nbml: its names load lazily from the table in ``nbml._sdk_paths``."""

from nbml._sdk_paths import exports

__getattr__, __dir__, __all__ = exports(__name__)
