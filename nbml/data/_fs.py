"""fsspec filesystems behind datastores: a local folder, an SFTP folder (sshfs over asyncssh), any fsspec URL.

SFTP datastores connect like nbml's SSH compute targets do: the host key must be in the user's or the
workspace's known_hosts (never accepted blindly), keys or the agent authenticate, and a password or key
passphrase is held in memory only (``nbml.compute._ssh_secrets`` under the name ``datastore:<name>``, which
also hands it to run supervisors through their environment, never a file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nbml.errors import UserErrorException

SECRET_PREFIX = "datastore:"
_SECRET_OPTION_WORDS = ("password", "secret", "token", "passphrase", "credential", "key")


class DatastoreError(UserErrorException):
    """A datastore can't be registered or reached; the message says why and what to do."""


@dataclass
class Location:
    """A datastore's filesystem and the root folder in it (a path in that filesystem's terms)."""

    fs: Any
    root: str
    url: str
    local: bool

    def join(self, path: str | None) -> str:
        rel = (path or "").strip("/")
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root.rstrip("/") or "/"


def secret_target(name: str) -> str:
    return SECRET_PREFIX + name


def parse_sftp(url: str) -> dict[str, Any]:
    """``sftp://user@host:port/path`` -> its parts; the path is absolute on the host."""
    parts = urlsplit(url)
    if parts.scheme not in ("sftp", "ssh") or not parts.hostname:
        raise DatastoreError(f"{url!r} is not an sftp URL; write it as sftp://user@host:22/absolute/folder.")
    if parts.password:
        raise DatastoreError("Don't put a password in the datastore URL (it would be stored); pass password= to "
                             "register_sftp (kept in memory only) or, better, private_key_file=.")
    return {"address": parts.hostname, "ssh_port": parts.port or 22,
            "username": parts.username or _current_user(), "path": parts.path or "/"}


def _current_user() -> str:
    import getpass

    return getpass.getuser()


def check_options(options: dict[str, Any]) -> None:
    bad = [k for k in options if any(w in k.lower() for w in _SECRET_OPTION_WORDS) and k != "private_key_file"]
    if bad:
        raise DatastoreError(f"Storage option(s) {', '.join(bad)} look like secrets, which nbml never stores. Give "
                             "them through the environment the filesystem library reads (its documented variables).")


def location(record: dict[str, Any]) -> Location:
    """Open the filesystem of a datastore record (as stored by nbml.data.registry)."""
    kind, url, config = record["kind"], record["url"], record.get("config") or {}
    if kind == "local":
        from fsspec.implementations.local import LocalFileSystem

        return Location(LocalFileSystem(), str(config["path"]), url, True)
    if kind == "sftp":
        return Location(_sftp_fs(record["name"], config), str(config["path"]), url, False)
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **(config.get("storage_options") or {}))
    return Location(fs, str(root), url, False)


def _sftp_fs(name: str, config: dict[str, Any]) -> Any:
    try:
        from sshfs import SSHFileSystem
    except ImportError:
        raise DatastoreError("SFTP datastores need the sshfs package: pip install 'nbml[data]' (or pip install "
                             "sshfs).") from None
    import asyncssh

    from nbml.compute._ssh_conn import SshSettings, _auth_options, _known_hosts

    settings = SshSettings.from_config(secret_target(name), config)
    try:
        fs = SSHFileSystem(settings.address, port=settings.port, username=settings.username,
                           known_hosts=_known_hosts(settings), connect_timeout=settings.connect_timeout,
                           skip_instance_cache=True, **_auth_options(settings))
    except asyncssh.HostKeyNotVerifiable as exc:
        raise DatastoreError(
            f"The host key of {settings.address}:{settings.port} is not trusted ({exc.reason}): add it to one of "
            f"{', '.join(settings.known_hosts)} (ssh-keyscan -p {settings.port} {settings.address} >> "
            f"{settings.known_hosts[0]}, then check its fingerprint on the host)."
        ) from None
    except asyncssh.PermissionDenied as exc:
        raise DatastoreError(f"{settings.where} refused the login of datastore {name!r} ({exc.reason}); check the "
                             "user name and key (or password).") from None
    except (OSError, asyncssh.Error) as exc:
        raise DatastoreError(f"Can't reach {settings.address}:{settings.port} for datastore {name!r}: {exc}.") \
            from None
    return fs


def expand(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))
