"""A real OpenSSH sshd on 127.0.0.1 with generated host and user keys, for tests and benchmarks.

It runs as the current user (root here and in CI, hence ``PermitRootLogin``, ``UsePAM no`` and
``StrictModes no``) and listens on a free port. ``connection_pids()`` lists the per-connection sshd
processes, so a test can kill the one serving a client to drop that client's connection for real.

Sessions get a ``HOME`` of their own under the server's folder (``SetEnv``), so what a test leaves in the
host's ``~`` (``~/.cache/nbml``) stays in its temp folder. ``SshServer(root, sftp=False)`` starts a host
without the SFTP subsystem (as hardened hosts and some images are); ``new_host_key()`` changes its key.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> str | None:
    """None when an sshd can be started here, else why not."""
    if not os.path.exists(SSHD):
        return "OpenSSH server is not installed (apt-get install openssh-server; see .ci/steps/20-sshd.sh)"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen is not installed"
    if os.geteuid() != 0:
        return "sshd tests need root (the sshd runs as the current user with privilege separation)"
    return None


def _keygen(path: Path, comment: str, passphrase: str = "") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path)],
                   check=True)


class SshServer:
    """One sshd with its own host key, a client key it accepts and a known_hosts file that trusts it."""

    def __init__(self, root: Path, sftp: bool = True) -> None:
        self.root = root
        self.sftp = sftp
        self.home = root / "home"  # the sessions' $HOME
        self.host = "127.0.0.1"
        self.port = free_port()
        self.user = getpass.getuser()
        self.host_key = root / "ssh_host_ed25519_key"
        self.client_key = root / "id_ed25519"
        self.other_key = root / "id_other"  # a key the server does not accept
        self.known_hosts = root / "known_hosts"
        self.config = root / "sshd_config"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SshServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        for key, comment in ((self.host_key, "host"), (self.client_key, "nbml-test"), (self.other_key, "other")):
            if not key.exists():
                _keygen(key, comment)
        (self.root / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        host_pub = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        self.config.write_text(
            f"Port {self.port}\nListenAddress {self.host}\nHostKey {self.host_key}\n"
            f"PidFile {self.root / 'sshd.pid'}\nAuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "UsePAM no\nStrictModes no\nPermitRootLogin yes\nPubkeyAuthentication yes\n"
            "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
            + ("Subsystem sftp internal-sftp\n" if self.sftp else "")
            + f"MaxStartups 200\nMaxSessions 200\nLogLevel ERROR\nClientAliveInterval 0\nSetEnv HOME={self.home}"
            # The test session's mark (tests/leakcheck.py) reaches the jobs, so a job left running is found.
            + (f" NBML_TEST_SESSION={os.environ['NBML_TEST_SESSION']}" if os.environ.get("NBML_TEST_SESSION") else "")
            + "\n"
        )
        log = open(self.root / "sshd.log", "ab")
        # -D keeps sshd in the foreground so that Popen owns the listener; -e logs to stderr (the file).
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def new_host_key(self) -> None:
        """Give the (stopped) server a new host key, as a reinstalled or impersonated host has; known_hosts
        keeps the old one."""
        assert self.proc is None, "stop() the server first"
        old = self.known_hosts.read_text()
        for path in (self.host_key, self.host_key.with_suffix(".pub")):
            path.unlink()
        _keygen(self.host_key, "host")
        self.start()
        self.known_hosts.write_text(old)

    def connection_pids(self) -> list[int]:
        """Pids of the sshd processes that serve one connection each (children of the listener)."""
        if self.proc is None:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid:
                pids.append(int(entry))
        return pids

    def kill_connections(self) -> int:
        """SIGKILL the sshd processes serving every open connection (the listener stays): links drop for real."""
        killed = 0
        for pid in self.connection_pids():
            for victim in [*_sshd_descendants(pid), pid]:
                try:
                    os.kill(victim, 9)
                    killed += 1
                except ProcessLookupError:
                    pass
        return killed

    def ssh_command(self) -> list[str]:
        """An OpenSSH client command line for this server (for rsync -e)."""
        return ["ssh", "-p", str(self.port), "-i", str(self.client_key), "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]

    def target_config(self, **extra: object) -> dict[str, object]:
        """The config dict an SSH compute target stores for this server."""
        config: dict[str, object] = {"address": self.host, "ssh_port": self.port, "username": self.user,
                                     "private_key_file": str(self.client_key), "known_hosts": str(self.known_hosts)}
        config.update(extra)
        return config


def _sshd_descendants(pid: int) -> list[int]:
    """sshd processes below `pid` (the per-connection privilege-separated children, not user commands)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.find("(") + 1: stat.rfind(")")]
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and name.startswith("sshd"):
            out.append(int(entry))
    return out


def ssh_attach_args(sshd: SshServer, tmp_path: Path, **extra: object) -> dict[str, object]:
    """RemoteCompute.attach keyword arguments for the test sshd, with caches under this test's tmp_path."""
    args: dict[str, object] = {
        "address": sshd.host, "ssh_port": sshd.port, "username": sshd.user,
        "private_key_file": str(sshd.client_key), "known_hosts": str(sshd.known_hosts),
        "remote_root": str(tmp_path / "remote-cache"), "run_root": str(tmp_path / "remote-runs"),
    }
    args.update(extra)
    return args


@pytest.fixture(scope="session", name="sshd")
def sshd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real OpenSSH sshd on 127.0.0.1 (a free port) with generated host and user keys; skips where none can run.

    conftest files that need it import this function (its fixture name is `sshd`).
    """
    why = available()
    if why:
        pytest.skip(why)
    server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()
