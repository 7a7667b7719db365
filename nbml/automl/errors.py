"""AutoML's exceptions (the SDK's names): raised before any iteration runs, saying what to fix."""

from __future__ import annotations

from nbml.errors import UserErrorException


class ConfigException(UserErrorException):
    """An AutoMLConfig setting is missing, unknown or contradicts another one."""


class DataException(UserErrorException):
    """The training data can't be used as given (shape, labels, columns, get_data())."""
