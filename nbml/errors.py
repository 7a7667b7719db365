"""Exceptions a user can act on: every message says what was wrong and what to do."""

from __future__ import annotations


class NbmlError(Exception):
    """Base class of every error nbml raises on purpose."""


class WorkspaceError(NbmlError):
    """The workspace folder or its store can't be used."""


class UserErrorException(NbmlError):
    """Bad input from the user (name kept from the Azure ML SDK)."""


class ComputeTargetException(NbmlError):
    """A compute target is missing, misconfigured or unreachable (name kept from the Azure ML SDK)."""


class SnapshotError(UserErrorException):
    """The source directory can't be snapshotted."""


class EnvironmentBuildError(NbmlError):
    """An environment could not be built; the message carries the end of the build log."""


class RunNotFound(UserErrorException):
    """No run with that id in this workspace."""


class ActivityFailedException(NbmlError):
    """A run ended Failed while the caller waited with raise_on_error (name kept from the Azure ML SDK)."""


class ModelNotFound(UserErrorException):
    """No registered model with that name (and version)."""
