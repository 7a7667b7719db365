"""Run states, in the order a run moves through them."""

from __future__ import annotations

NOT_STARTED = "NotStarted"
QUEUED = "Queued"
PREPARING = "Preparing"
STARTING = "Starting"
RUNNING = "Running"
FINALIZING = "Finalizing"
CANCEL_REQUESTED = "CancelRequested"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELED = "Canceled"

ORDER = (NOT_STARTED, QUEUED, PREPARING, STARTING, RUNNING, FINALIZING, CANCEL_REQUESTED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
ACTIVE = frozenset(ORDER)


def is_terminal(status: str) -> bool:
    return status in TERMINAL
