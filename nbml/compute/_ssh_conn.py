"""One SSH connection to a target host that verifies the host key, authenticates and reconnects.

`SshSession.call(fn)` runs ``fn(connection)`` and, when the link drops, reconnects with exponential
backoff and runs it again; every operation the backend passes in is idempotent, so a retry resumes the
same work (a read from the same offset, a start that finds the job already started). The host may stay
unreachable for a few seconds; after that the call raises ConnectionError, which the run executor treats
as transient (it counts retries in the run's properties and fails the run after the target's
``unreachable_timeout_seconds``). What counts as a fault of the link is decided in one place,
nbml.compute.transient; any other error is raised at once. Host-key and authentication failures are
`ComputeTargetException`s: retrying can't fix them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from nbml._extras import missing_extra
from nbml.compute import _ssh_secrets as secrets
from nbml.compute.transient import is_transient
from nbml.errors import ComputeTargetException

try:
    import asyncssh
except ImportError as exc:  # the ssh extra is not installed
    raise missing_extra("ssh", exc) from exc

T = TypeVar("T")
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
# AES-GCM first: asyncssh does it with AES-NI through `cryptography`, ~25% faster than its chacha20 default.
FAST_CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
QUICK_ATTEMPTS = 3  # per call; longer outages are retried (and shown) by the run executor


class HostKeyError(ComputeTargetException):
    """The host's key is not in known_hosts, or differs from the one recorded there."""


class AuthenticationError(ComputeTargetException):
    """The host refused the key, agent identities or password."""


@dataclasses.dataclass
class SshSettings:
    target: str
    address: str
    username: str
    port: int = 22
    private_key_file: str | None = None
    known_hosts: list[str] = dataclasses.field(default_factory=lambda: [DEFAULT_KNOWN_HOSTS])
    auth: str = "key"  # key | password | agent
    connect_timeout: float = 15.0
    keepalive_interval: float = 10.0
    extra_known_hosts: str = ""  # known_hosts lines trusted in memory only (while attaching)

    @classmethod
    def from_config(cls, target: str, config: dict[str, Any]) -> SshSettings:
        known = config.get("known_hosts") or [DEFAULT_KNOWN_HOSTS]
        return cls(
            target=target, address=str(config["address"]), username=str(config["username"]),
            port=int(config.get("ssh_port") or 22), private_key_file=config.get("private_key_file"),
            known_hosts=[known] if isinstance(known, str) else list(known), auth=str(config.get("auth") or "key"),
            connect_timeout=float(config.get("connect_timeout") or 15.0),
            keepalive_interval=float(config.get("keepalive_interval") or 10.0),
        )

    @property
    def where(self) -> str:
        return f"{self.username}@{self.address}:{self.port}"


def host_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def _known_hosts(settings: SshSettings) -> asyncssh.SSHKnownHosts:
    files = [os.path.expanduser(p) for p in settings.known_hosts]
    text = "".join(Path(p).read_text() + "\n" for p in files if os.path.exists(p)) + settings.extra_known_hosts
    return asyncssh.import_known_hosts(text)


def recorded_keys(settings: SshSettings) -> list[asyncssh.SSHKey]:
    """The keys known_hosts (and keys trusted in memory) hold for this host and port."""
    trusted, _ca, revoked, *_ = _known_hosts(settings).match(settings.address, "", settings.port)
    return [k for k in trusted if k not in revoked]


def changed_key_message(settings: SshSettings, fingerprint: str | None = None) -> str:
    pattern = host_pattern(settings.address, settings.port)
    offered = f" (it now offers {fingerprint})" if fingerprint else ""
    return (f"The host key of {settings.address}:{settings.port} is not trusted: it CHANGED since it was recorded in "
            f"{', '.join(settings.known_hosts)}{offered}. Someone may be intercepting the connection, or the host "
            "was reinstalled; nbml does not connect, and trust_host_key=True never accepts a changed key. If you "
            f"checked the new key on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), remove the old "
            f"line with ssh-keygen -R '{pattern}' -f FILE for each file above, then attach again.")


def _trust_hint(settings: SshSettings) -> str:
    pattern = host_pattern(settings.address, settings.port)
    return (f"If you trust this host, attach it again with trust_host_key=True (or trust_host_key='SHA256:...' to "
            f"pin its fingerprint), or add its key to {settings.known_hosts[0]}: "
            f"ssh-keyscan -p {settings.port} {settings.address} >> {settings.known_hosts[0]} "
            f"(then compare the fingerprint with ssh-keygen -lf, or check it on the host). Host pattern: {pattern}")


def _auth_options(settings: SshSettings) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if settings.auth == "password":
        password = secrets.obtain(settings.target, secrets.PASSWORD, f"SSH password for {settings.where}: ")
        if password is None:
            raise AuthenticationError(
                f"Compute target {settings.target!r} logs in with a password, which nbml never stores. Set "
                f"{secrets.env_names(settings.target, secrets.PASSWORD)} in the environment that starts runs, "
                "or attach it again with a private key (recommended)."
            )
        return {"password": password, "client_keys": [], "preferred_auth": "password,keyboard-interactive"}
    if settings.private_key_file:
        path = os.path.expanduser(settings.private_key_file)
        try:
            key = asyncssh.read_private_key(path)
        except asyncssh.KeyImportError as exc:
            if "passphrase" not in str(exc).lower():
                raise AuthenticationError(f"Can't read the private key {path}: {exc}.") from exc
            phrase = secrets.obtain(settings.target, secrets.PASSPHRASE, f"Passphrase for {path}: ")
            if phrase is None:
                if os.environ.get("SSH_AUTH_SOCK"):
                    return {"client_keys": None}  # the agent may hold the decrypted key
                raise AuthenticationError(
                    f"The private key {path} is encrypted and no passphrase is available (nbml never stores it). "
                    f"Load it into ssh-agent (ssh-add {path}), or set "
                    f"{secrets.env_names(settings.target, secrets.PASSPHRASE)}."
                ) from exc
            try:
                key = asyncssh.read_private_key(path, phrase)
            except asyncssh.KeyEncryptionError as exc2:
                raise AuthenticationError(f"The passphrase for {path} is wrong.") from exc2
        except OSError as exc:
            raise AuthenticationError(f"Can't read the private key file {path}: {exc.strerror}.") from exc
        opts["client_keys"] = [key]
        opts["agent_path"] = None
    return opts


async def connect_once(settings: SshSettings, known_hosts: Any = None) -> asyncssh.SSHClientConnection:
    """One connection attempt. Transient failures raise ConnectionError; the rest ComputeTargetException."""
    try:
        return await asyncssh.connect(
            settings.address, settings.port, username=settings.username,
            known_hosts=_known_hosts(settings) if known_hosts is None else known_hosts,
            connect_timeout=settings.connect_timeout, keepalive_interval=settings.keepalive_interval,
            keepalive_count_max=3, encryption_algs=FAST_CIPHERS, **_auth_options(settings),
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        if recorded_keys(settings):
            raise HostKeyError(changed_key_message(settings)) from None
        raise HostKeyError(
            f"The host key of {settings.address}:{settings.port} is not trusted ({exc.reason}): the host is not in "
            f"{', '.join(settings.known_hosts)}. {_trust_hint(settings)}"
        ) from None
    except asyncssh.PermissionDenied as exc:
        how = {"password": "the password", "agent": "the ssh-agent's identities"}.get(
            settings.auth, f"the key {settings.private_key_file}" if settings.private_key_file else "your default keys")
        raise AuthenticationError(
            f"{settings.where} refused {how} ({exc.reason}). Check the user name, and that the public key is in "
            "the user's ~/.ssh/authorized_keys on the host (ssh-copy-id does that)."
        ) from None
    except (OSError, asyncssh.DisconnectError, asyncssh.ChannelOpenError) as exc:
        raise ConnectionError(f"can't reach {settings.address}:{settings.port}: {exc}") from exc


class SshSession:
    """A lazily opened, automatically reopened connection (one per backend object)."""

    def __init__(self, settings: SshSettings, on_retry: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.on_retry = on_retry
        self.attempts = 0  # failed connection attempts so far, shown to the user
        self.reconnects = 0
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self.sftp_available: bool | None = None  # None until the first SFTP request
        self._lock = asyncio.Lock()
        self._down_since: float | None = None

    def _say(self, message: str) -> None:
        if self.on_retry is not None:
            self.on_retry(message)

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The open connection, reconnecting (a few quick tries with backoff) if it dropped.

        A host that stays unreachable raises ConnectionError: the caller (the run executor) counts its
        retries where users see them and fails the run after the target's unreachable_timeout_seconds.
        """
        async with self._lock:
            if self._conn is not None:
                if not self._conn.is_closed():
                    return self._conn
                self._drop(ConnectionResetError("closed by the host or the network"))
            delay = 0.5
            for attempt in range(1, QUICK_ATTEMPTS + 1):
                try:
                    self._conn = await connect_once(self.settings)
                    break
                except ConnectionError as exc:
                    self.attempts += 1
                    self._down_since = self._down_since or time.monotonic()
                    if attempt == QUICK_ATTEMPTS:
                        raise
                    self._say(f"SSH {self.settings.address}:{self.settings.port} unreachable ({exc}); "
                              f"attempt {self.attempts}, next in {delay:.1f} s")
                    await asyncio.sleep(delay)
                    delay *= 2
            if self._down_since is not None:
                self.reconnects += 1
                self._say(f"SSH {self.settings.address}:{self.settings.port} reconnected after "
                          f"{time.monotonic() - self._down_since:.1f} s")
            self._down_since = None
            self._sftp = None
            assert self._conn is not None
            return self._conn

    async def sftp(self) -> asyncssh.SFTPClient | None:
        """The SFTP client, or None when the host's sshd has no SFTP subsystem (hardened hosts, some images).

        That is found out once per session (the host refuses the subsystem request); callers then move files
        over exec channels instead of retrying a request that can never succeed.
        """
        if self.sftp_available is False:
            return None
        conn = await self.connection()
        if self._sftp is None:
            try:
                self._sftp = await conn.start_sftp_client()
            except asyncssh.ChannelOpenError as exc:
                if exc.code != asyncssh.OPEN_REQUEST_SESSION_FAILED or conn.is_closed():
                    raise  # a refused channel (too many sessions, the link closing): transient
                self.sftp_available = False
                self._say(f"{self.settings.where} has no SFTP subsystem (no 'Subsystem sftp' line in its "
                          "sshd_config): files are read and copied over exec channels instead")
                return None
            self.sftp_available = True
        return self._sftp

    def _drop(self, exc: BaseException) -> None:
        if self._conn is not None:
            self._conn.abort()
        self._conn = None
        self._sftp = None
        self._down_since = self._down_since or time.monotonic()
        self._say(f"SSH connection to {self.settings.address}:{self.settings.port} lost ({exc or type(exc).__name__}); "
                  "reconnecting")

    async def call(self, fn: Callable[[SshSession], Awaitable[T]]) -> T:
        """Run ``fn(self)``; when the link drops, reconnect (with backoff) and run it again."""
        failures = 0
        while True:
            await self.connection()
            try:
                return await fn(self)
            except Exception as exc:
                link_down = self._conn is None or self._conn.is_closed()
                if not is_transient(exc) and not (link_down and isinstance(exc, (OSError, asyncssh.Error))):
                    raise  # the operation is wrong, not the link: retrying can't help
                failures += 1
                self._drop(exc)
                if failures >= 8:  # the host answers but every operation dies: let the caller decide
                    raise ConnectionError(f"SSH operation on {self.settings.where} keeps failing: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            try:
                await asyncio.wait_for(self._conn.wait_closed(), 5)
            except (TimeoutError, OSError, asyncssh.Error):
                pass
        self._conn = None
        self._sftp = None
