"""Attaching an SSH machine: host keys verified, credentials checked, secrets never stored, nothing half-made."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sshd import SshServer, ssh_attach_args

from nbml import ComputeTarget, ComputeTargetException, Experiment, RemoteCompute, ScriptRunConfig

pytestmark = pytest.mark.ssh


def _nothing_attached(ws, name: str) -> None:  # type: ignore[no-untyped-def]
    assert name not in ws.compute_targets
    with pytest.raises(ComputeTargetException, match="No compute target named"):
        ComputeTarget(ws, name)


def test_attach_checks_the_host_and_stores_a_target_without_secrets(ws, sshd: SshServer, tmp_path: Path):
    target = RemoteCompute.attach(ws, "box", **ssh_attach_args(sshd, tmp_path))
    assert isinstance(ComputeTarget(ws, "box"), RemoteCompute)
    assert ws.compute_targets["box"].address == "127.0.0.1" and target.ssh_port == sshd.port
    config = target.config
    assert config["remote_python_version"].startswith("3.")
    assert not any("password" in k or "passphrase" in k for k in config)
    assert target.get_status()["state"] == "Succeeded"
    target.detach()
    _nothing_attached(ws, "box")


def test_attach_configuration_with_compute_target_attach(ws, sshd: SshServer, tmp_path: Path):
    args = ssh_attach_args(sshd, tmp_path)
    config = RemoteCompute.attach_configuration(args.pop("address"), args.pop("ssh_port"), args.pop("username"),
                                                private_key_file=args.pop("private_key_file"), **args)
    assert isinstance(ComputeTarget.attach(ws, "box2", config), RemoteCompute)


def test_unknown_host_key_is_refused_with_how_to_trust_it(ws, sshd: SshServer, tmp_path: Path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(ComputeTargetException, match="not trusted") as info:
        RemoteCompute.attach(ws, "box", **ssh_attach_args(sshd, tmp_path, known_hosts=str(empty)))
    assert "trust_host_key=True" in str(info.value) and "ssh-keyscan" in str(info.value)
    _nothing_attached(ws, "box")
    assert not (ws.path / "ssh" / "known_hosts").exists()


def test_changed_host_key_is_refused(ws, sshd: SshServer, tmp_path: Path):
    impostor = tmp_path / "known_hosts"
    other = sshd.other_key.with_suffix(".pub").read_text().split()
    impostor.write_text(f"[{sshd.host}]:{sshd.port} {other[0]} {other[1]}\n")
    with pytest.raises(ComputeTargetException, match="not trusted"):
        RemoteCompute.attach(ws, "box", **ssh_attach_args(sshd, tmp_path, known_hosts=str(impostor)))
    _nothing_attached(ws, "box")


def test_trust_host_key_records_the_key_and_a_wrong_fingerprint_is_refused(ws, sshd: SshServer, tmp_path: Path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    args = ssh_attach_args(sshd, tmp_path, known_hosts=str(empty))
    with pytest.raises(ComputeTargetException, match="fingerprint"):
        RemoteCompute.attach(ws, "box", **args, trust_host_key="SHA256:not-the-key")
    _nothing_attached(ws, "box")
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(sshd.host_key.with_suffix(".pub"))], capture_output=True,
                                 text=True, check=True).stdout.split()[1]
    target = RemoteCompute.attach(ws, "box", **args, trust_host_key=fingerprint)
    assert f"[{sshd.host}]:{sshd.port} ssh-ed25519" in (ws.path / "ssh" / "known_hosts").read_text()
    assert target.get_status()["state"] == "Succeeded"  # later connections verify against the recorded key


def test_wrong_key_is_refused_and_nothing_is_attached(ws, sshd: SshServer, tmp_path: Path):
    with pytest.raises(ComputeTargetException, match="refused the key"):
        RemoteCompute.attach(ws, "box", **ssh_attach_args(sshd, tmp_path, private_key_file=str(sshd.other_key)))
    _nothing_attached(ws, "box")


def test_unreachable_address_is_refused_and_nothing_is_attached(ws, sshd: SshServer, tmp_path: Path):
    from sshd import free_port

    with pytest.raises(ComputeTargetException, match="Can't connect"):
        RemoteCompute.attach(ws, "box", **ssh_attach_args(sshd, tmp_path, ssh_port=free_port(), connect_timeout=3))
    _nothing_attached(ws, "box")


def test_bad_names_and_options_are_refused(ws, sshd: SshServer, tmp_path: Path):
    with pytest.raises(ComputeTargetException, match="contains"):
        RemoteCompute.attach(ws, "my_box", **ssh_attach_args(sshd, tmp_path))
    with pytest.raises(ComputeTargetException, match="Unknown RemoteCompute option"):
        RemoteCompute.attach(ws, "box", **ssh_attach_args(sshd, tmp_path, trust_host=True))


def test_missing_python_on_the_host_is_refused(ws, sshd: SshServer, tmp_path: Path):
    with pytest.raises(ComputeTargetException, match="not found"):
        RemoteCompute.attach(ws, "box", **ssh_attach_args(sshd, tmp_path, python="/nonexistent/python3"))
    _nothing_attached(ws, "box")


def test_passphrase_is_used_but_never_stored_and_runs_get_it_in_memory(ws, project, sshd: SshServer,
                                                                      tmp_path: Path):
    key = tmp_path / "id_locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "correct horse", "-f", str(key)], check=True)
    authorized = sshd.root / "authorized_keys"
    authorized.write_text(authorized.read_text() + key.with_suffix(".pub").read_text())
    RemoteCompute.attach(ws, "locked", **ssh_attach_args(sshd, tmp_path, private_key_file=str(key),
                                                          private_key_passphrase="correct horse"))
    # grep in another process: opening the store's files here would drop this process's SQLite locks.
    found = subprocess.run(["grep", "-rl", "correct horse", str(ws.path)], capture_output=True, text=True)
    assert found.returncode == 1, f"the passphrase was written to {found.stdout}"
    # A run from this process works: its supervisor gets the passphrase through its environment only.
    project(**{"hi.py": "from nbml import Run\nRun.get_context().log('ok', 1)\n"})
    run = Experiment(ws, "locked").submit(ScriptRunConfig(".", "hi.py", compute_target="locked"))
    run.wait_for_completion(raise_on_error=True)
    assert run.get_metrics()["ok"] == 1
    # Another process without the passphrase is told where to put it instead of hanging at a prompt.
    code = textwrap.dedent(f"""
        from nbml import Workspace, ComputeTarget
        print(ComputeTarget(Workspace(path={str(ws.path)!r}), "locked").get_status())
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         env={k: v for k, v in __import__("os").environ.items() if k != "SSH_AUTH_SOCK"})
    assert "NBML_SSH_KEY_PASSPHRASE" in out.stdout, out.stderr


def test_wrong_password_is_refused_and_nothing_is_attached(ws, sshd: SshServer, tmp_path: Path):
    args = ssh_attach_args(sshd, tmp_path, password="not-the-password")
    args.pop("private_key_file")
    with pytest.raises(ComputeTargetException, match="refused the password"):
        RemoteCompute.attach(ws, "box", **args)
    _nothing_attached(ws, "box")


def test_password_target_without_a_password_names_the_variables_to_set(sshd: SshServer, tmp_path: Path):
    from nbml._aio import run_sync
    from nbml.compute.ssh import SSHBackend

    config = sshd.target_config(auth="password", private_key_file=None)
    with pytest.raises(ComputeTargetException, match="NBML_SSH_PASSWORD_PW_BOX or NBML_SSH_PASSWORD"):
        run_sync(SSHBackend("pw-box", config, tmp_path).info())


def test_default_host_paths_work_and_a_relative_run_root_is_refused(ws, project, sshd: SshServer, tmp_path: Path):
    args = ssh_attach_args(sshd, tmp_path)
    del args["remote_root"], args["run_root"]  # ~/.cache/nbml and /tmp/nbml_run, as a user gets them
    # The test sshd gives its sessions a HOME in its own temp folder: the host's ~ is not this process's ~.
    with pytest.raises(ComputeTargetException, match="absolute"):
        RemoteCompute.attach(ws, "plain", **args, run_root="runs")
    RemoteCompute.attach(ws, "plain", **args)
    project(**{"hi.py": "from nbml import Run\nRun.get_context().log('ok', 1)\n"})
    run = Experiment(ws, "plain").submit(ScriptRunConfig(".", "hi.py", compute_target="plain"))
    run.wait_for_completion(raise_on_error=True)
    assert run.get_metrics()["ok"] == 1
    assert any((sshd.home / ".cache" / "nbml" / "lib").iterdir())


def test_trust_host_key_never_accepts_a_changed_key(ws, project, sshd: SshServer, tmp_path: Path):
    host = SshServer(tmp_path / "host").start()
    try:
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        args = ssh_attach_args(host, tmp_path, known_hosts=str(empty))
        RemoteCompute.attach(ws, "box", **args, trust_host_key=True)  # first sight: recorded in the workspace
        host.stop()
        host.new_host_key()  # the host now answers with another key (reinstalled, or someone in between)
        with pytest.raises(ComputeTargetException, match="CHANGED") as info:
            RemoteCompute.attach(ws, "box2", **args, trust_host_key=True)
        assert "ssh-keygen -R" in str(info.value)
        _nothing_attached(ws, "box2")
        project(**{"hi.py": "print('hi')\n"})
        run = Experiment(ws, "changed").submit(ScriptRunConfig(".", "hi.py", compute_target="box"))
        run.wait_for_completion(raise_on_error=False, timeout_seconds=90)
        assert run.get_status() == "Failed"
        assert "CHANGED" in run.get_details()["error"]["error"]["message"]
    finally:
        host.stop()


def test_a_relative_private_key_path_is_stored_absolute(ws, sshd: SshServer, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(sshd.client_key.parent.parent)
    relative = f"./{sshd.client_key.parent.name}/{sshd.client_key.name}"
    target = RemoteCompute.attach(ws, "box", **ssh_attach_args(sshd, tmp_path, private_key_file=relative))
    assert target.config["private_key_file"] == str(sshd.client_key)
    monkeypatch.chdir(tmp_path)  # from another working directory the stored key is still found
    assert ComputeTarget(ws, "box").get_status()["state"] == "Succeeded"
