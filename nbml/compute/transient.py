"""Which errors from a compute target mean "the link is down, try again" (the one list every retry uses).

Only faults of the *connection* are transient: refused, reset or aborted connections, timeouts, an SSH
link lost or disconnected, a Docker engine or Dask scheduler that doesn't answer. Everything else (a
permission error or a missing file on the target, a full disk, an engine that answers with an error) is
the run's real failure: retrying it for minutes would only hide the cause. The run executor
(nbml.runs.retry) and the SSH session's quick reconnects (nbml.compute._ssh_conn) both use this module.

No library is imported here: a target kind whose library isn't installed simply adds nothing.
"""

from __future__ import annotations

import asyncio
import errno
import sys

# Errors that mean a link is gone, not that the operation is wrong (SSH's own are added when asyncssh is
# installed, see _library_errors).
LINK_ERRORS: tuple[type[BaseException], ...] = (
    BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ConnectionRefusedError, TimeoutError,
)

# OSError numbers of a network that is down or a peer that went away (raised as plain OSError by some libraries).
_NETWORK_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EHOSTUNREACH,
    errno.ENETUNREACH, errno.ENETDOWN, errno.EPIPE, errno.EHOSTDOWN,
})


def _library_errors() -> tuple[type[BaseException], ...]:
    """Connection errors of the SSH (asyncssh), Docker (requests) and Dask (distributed) clients.

    Only libraries already imported count: an error of a library can't exist before it is imported, and a
    target kind whose library isn't installed (its extra left out) simply adds nothing.
    """
    found: list[type[BaseException]] = []
    asyncssh = sys.modules.get("asyncssh")
    if asyncssh is not None:
        # A ChannelOpenError is a refused new channel (MaxSessions reached, the link closing), except
        # "Session request failed" (see is_transient); a refused SFTP subsystem is detected by the SSH
        # session, which then works without SFTP.
        found += [asyncssh.ConnectionLost, asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection,
                  asyncssh.ChannelOpenError, asyncssh.DisconnectError]
    rex = sys.modules.get("requests.exceptions")
    if rex is not None:
        # A docker-py call that can't reach the engine, or that times out; never docker.errors.APIError
        # (the engine answered: a missing image or a conflict is not fixed by asking again).
        found += [rex.ConnectionError, rex.Timeout, rex.ChunkedEncodingError]
    comm = sys.modules.get("distributed.comm.core")
    if comm is not None:
        found.append(comm.CommClosedError)
    return tuple(found)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a fault of the link to the target that may go away if the call is made again."""
    if isinstance(exc, (asyncio.TimeoutError, ConnectionError, *LINK_ERRORS, *_library_errors())):
        asyncssh = sys.modules.get("asyncssh")  # an asyncssh error exists only if asyncssh was imported
        if asyncssh is None:
            return True
        if isinstance(exc, asyncssh.ChannelOpenError) and exc.code == asyncssh.OPEN_REQUEST_SESSION_FAILED:
            # The channel opened and the host refused the command or subsystem ("Session request failed"):
            # a policy of the host (no SFTP, a ForceCommand), not a link fault.
            return False
        if isinstance(exc, asyncssh.DisconnectError) and not isinstance(exc, asyncssh.ConnectionLost):
            # The host hung up on purpose: a protocol or key-exchange problem is not transient, a shutdown is.
            return exc.code in (asyncssh.DISC_CONNECTION_LOST, asyncssh.DISC_BY_APPLICATION,
                                asyncssh.DISC_TOO_MANY_CONNECTIONS)
        return True
    # A plain OSError (not a subclass such as PermissionError) carrying the errno of a network fault.
    return type(exc) is OSError and exc.errno in _NETWORK_ERRNOS


def describe(exc: BaseException) -> str:
    """``Type: message`` of an error, for the run's error and log."""
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"
