"""`RemoteCompute`: attach any machine that has sshd and Python as a compute target (kind ``ssh``)."""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml._aio import run_sync
from nbml._extras import missing_extra
from nbml.compute import _ssh_secrets as secrets
from nbml.compute._ssh_conn import (
    DEFAULT_KNOWN_HOSTS,
    AuthenticationError,
    HostKeyError,
    SshSettings,
    changed_key_message,
    connect_once,
    host_pattern,
    recorded_keys,
)
from nbml.compute.targets import ComputeTarget, validate_name
from nbml.errors import ComputeTargetException

try:
    import asyncssh
except ImportError as exc:  # the ssh extra is not installed
    raise missing_extra("ssh", exc) from exc

if TYPE_CHECKING:
    from nbml.workspace import Workspace

MIN_PYTHON = (3, 8)


def workspace_known_hosts(workspace: Workspace) -> Path:
    """The known_hosts file where host keys trusted with ``trust_host_key`` are recorded."""
    return Path(workspace.path) / "ssh" / "known_hosts"


@dataclasses.dataclass
class RemoteAttachConfiguration:
    """What `RemoteCompute.attach_configuration` returns; `ComputeTarget.attach(ws, name, config)` uses it.

    It holds a password or passphrase only in memory; `validate` checks the host before anything is saved.
    """

    address: str
    ssh_port: int = 22
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    private_key_file: str | None = None
    private_key_passphrase: str | None = dataclasses.field(default=None, repr=False)
    trust_host_key: bool | str = False
    known_hosts: str | None = None
    python: str = "python3"
    unreachable_timeout_seconds: float = 600.0
    connect_timeout: float = 15.0
    remote_root: str = "~/.cache/nbml"
    run_root: str = "/tmp/nbml_run"
    keep_job_dirs: bool = False
    copy_files: bool = False
    kind: str = "ssh"

    def _config(self, workspace: Workspace, name: str) -> dict[str, Any]:
        if not self.address or not isinstance(self.address, str):
            raise ComputeTargetException("RemoteCompute needs address= (a host name or IP address).")
        # Stored absolute: a relative path would mean another file from another working directory.
        key = os.path.abspath(os.path.expanduser(self.private_key_file)) if self.private_key_file else None
        if key and not os.path.isfile(key):
            raise ComputeTargetException(f"private_key_file {self.private_key_file!r} does not exist.")
        if not str(self.run_root).startswith("/"):
            raise ComputeTargetException(f"run_root {self.run_root!r} must be an absolute path on the host, e.g. "
                                         "'/tmp/nbml_run'.")
        auth = "key" if key or not self.password else "password"
        known = [self.known_hosts or DEFAULT_KNOWN_HOSTS, str(workspace_known_hosts(workspace))]
        return {"address": self.address, "ssh_port": int(self.ssh_port), "username": self.username or getpass.getuser(),
                "private_key_file": key, "auth": auth, "known_hosts": known, "python": self.python,
                "unreachable_timeout_seconds": float(self.unreachable_timeout_seconds),
                "connect_timeout": float(self.connect_timeout), "remote_root": self.remote_root,
                "run_root": self.run_root, "keep_job_dirs": bool(self.keep_job_dirs),
                "copy_files": bool(self.copy_files)}

    def validate(self, workspace: Workspace, name: str) -> dict[str, Any]:
        """Check the host key, the login and the remote Python; return the config to store (no secrets)."""
        validate_name(name)
        config = self._config(workspace, name)
        settings = SshSettings.from_config(name, config)
        # Secrets go to memory under this name only; prompt now, while a person is at the notebook.
        secrets.remember(name, secrets.PASSWORD, self.password)
        secrets.remember(name, secrets.PASSPHRASE, self.private_key_passphrase)
        if settings.auth == "password" and not self.password:
            secrets.obtain(name, secrets.PASSWORD, f"SSH password for {settings.where}: ")
        if settings.private_key_file:
            _unlock_key(name, settings.private_key_file)
        try:
            trusted_line, info = run_sync(self._check(workspace, settings))
        except BaseException:
            secrets.forget(name)
            raise
        if tuple(info["version"][:2]) < MIN_PYTHON:
            secrets.forget(name)
            raise ComputeTargetException(
                f"{self.python} on {self.address} is Python {'.'.join(map(str, info['version']))}; nbml needs "
                f"{'.'.join(map(str, MIN_PYTHON))} or newer there. Pass python='/path/to/python3.x'."
            )
        if trusted_line:
            path = workspace_known_hosts(workspace)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as fh:
                fh.write(trusted_line)
        config["remote_python"] = info["python"]
        config["remote_python_version"] = ".".join(map(str, info["version"]))
        return config

    async def _check(self, workspace: Workspace, settings: SshSettings) -> tuple[str | None, dict[str, Any]]:
        from nbml.compute.ssh import SSHBackend

        trusted_line = None
        if self.trust_host_key:
            trusted_line = await _trust(settings, self.trust_host_key)
            settings.extra_known_hosts = trusted_line or ""  # written to the workspace only once the check passes
        try:
            conn = await connect_once(settings)
        except ConnectionError as exc:
            raise ComputeTargetException(
                f"Can't connect to {settings.address}:{settings.port} ({exc.__cause__ or exc}). Check the address, "
                "the port and that sshd runs there; nothing was attached."
            ) from None
        conn.close()
        backend = SSHBackend(settings.target, {"address": settings.address, "username": settings.username,
                                               "python": self.python}, Path(workspace.path))
        backend.settings = settings
        backend.session.settings = settings
        try:
            info = await backend.info()
        finally:
            await backend.close()
        return trusted_line, info


def _unlock_key(name: str, path: str) -> None:
    """Ask for an encrypted key's passphrase now (unless the agent or the environment provides it)."""
    try:
        asyncssh.read_private_key(path)
    except asyncssh.KeyImportError as exc:
        if "passphrase" in str(exc).lower() and not os.environ.get("SSH_AUTH_SOCK"):
            secrets.obtain(name, secrets.PASSPHRASE, f"Passphrase for {path}: ")
    except OSError as exc:
        raise AuthenticationError(f"Can't read the private key file {path}: {exc.strerror}.") from exc


async def _trust(settings: SshSettings, trust: bool | str) -> str | None:
    """Fetch the host's key; accept it if `trust` is True or equals its SHA256 fingerprint."""
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(settings.address, settings.port), settings.connect_timeout)
    except (OSError, asyncssh.Error) as exc:
        raise ComputeTargetException(f"Can't reach {settings.address}:{settings.port} to read its host key: {exc}.") from exc
    if key is None:
        raise HostKeyError(f"{settings.address}:{settings.port} offered no host key.")
    fingerprint = key.get_fingerprint("sha256")
    if isinstance(trust, str) and trust not in (fingerprint, fingerprint.removeprefix("SHA256:")):
        raise HostKeyError(
            f"The host key of {settings.address}:{settings.port} has fingerprint {fingerprint}, not {trust}. "
            "Someone may be intercepting the connection, or the key changed; check it on the host with "
            "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub."
        )
    line = f"{host_pattern(settings.address, settings.port)} {key.export_public_key('openssh').decode().strip()}\n"
    trusted = recorded_keys(settings)
    if any(k.public_data == key.public_data for k in trusted):
        return None
    if trusted:
        # trust_host_key accepts a host seen for the first time, never a key that replaced a recorded one.
        raise HostKeyError(changed_key_message(settings, fingerprint))
    return line



def check_options(config_class: type, label: str, options: dict[str, Any], hide: frozenset[str] = frozenset()) -> None:
    """Refuse attach options that `config_class` (a dataclass) has no field for, listing the known ones
    (less `hide`: fields the call names as parameters anyway)."""
    fields = {f.name for f in dataclasses.fields(config_class)} - {"kind"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ComputeTargetException(f"Unknown {label} option(s) {', '.join(unknown)}; known: "
                                     f"{', '.join(sorted(fields - hide))}.")


class RemoteCompute(ComputeTarget):
    """A machine reached over SSH (``RemoteCompute.attach``); runs go to ``/tmp/nbml_run/<run_id>/`` there."""

    type = "RemoteCompute"
    kind = "ssh"

    @staticmethod
    def attach_configuration(address: str, ssh_port: int = 22, username: str | None = None,
                             password: str | None = None, private_key_file: str | None = None,
                             private_key_passphrase: str | None = None, **options: Any) -> RemoteAttachConfiguration:
        """Describe a machine to attach with ``ComputeTarget.attach(ws, name, config)``.

        Parameters
        ----------
        address, ssh_port, username:
            Where to log in (username defaults to yours).
        password, private_key_file, private_key_passphrase:
            Credentials. Keys (or the ssh-agent) are preferred. A password or passphrase is kept in memory only:
            later processes take it from ``NBML_SSH_PASSWORD[_<NAME>]`` / ``NBML_SSH_KEY_PASSPHRASE[_<NAME>]``,
            the agent, or a prompt.
        **options:
            ``trust_host_key`` (True, or the expected ``"SHA256:..."`` fingerprint) records an unknown host's key;
            ``known_hosts`` (default ~/.ssh/known_hosts), ``python`` (the host's interpreter, default python3),
            ``unreachable_timeout_seconds`` (600), ``connect_timeout`` (15), ``remote_root`` (~/.cache/nbml: caches),
            ``run_root`` (/tmp/nbml_run: job folders), ``keep_job_dirs`` (False: a job folder is removed once its
            outputs are back), ``copy_files`` (False: snapshot files are hard-linked from the host's cache).
        """
        check_options(RemoteAttachConfiguration, "RemoteCompute", options)
        return RemoteAttachConfiguration(address=address, ssh_port=ssh_port, username=username, password=password,
                                         private_key_file=private_key_file,
                                         private_key_passphrase=private_key_passphrase, **options)

    @staticmethod
    def attach(  # type: ignore[override]
            workspace: Workspace, name: str, address: str | RemoteAttachConfiguration | None = None, ssh_port: int = 22,
            username: str | None = None, private_key_file: str | None = None,
            private_key_passphrase: str | None = None, password: str | None = None, **options: Any) -> RemoteCompute:
        """Attach a machine by address and credentials; checks the login and its Python before saving it.

        ``RemoteCompute.attach(ws, name, config)`` with an `attach_configuration` works too.
        """
        if isinstance(address, RemoteAttachConfiguration):
            return ComputeTarget.attach(workspace, name, address)  # type: ignore[return-value]
        if not address:
            raise ComputeTargetException("RemoteCompute.attach needs address= (a host name or IP address).")
        config = RemoteCompute.attach_configuration(address, ssh_port, username, password, private_key_file,
                                                    private_key_passphrase, **options)
        return ComputeTarget.attach(workspace, name, config)  # type: ignore[return-value]

    @property
    def address(self) -> str:
        return str(self.config["address"])

    @property
    def ssh_port(self) -> int:
        return int(self.config.get("ssh_port", 22))

    @property
    def username(self) -> str:
        return str(self.config["username"])

    def detach(self) -> None:
        secrets.forget(self.name)
        super().detach()
