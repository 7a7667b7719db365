"""Data over SSH: content-addressed into the host's cache, so a second run that reads the same data sends
nothing; an SFTP datastore on a real sshd is fetched into the workspace cache once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from data_helpers import SCRIPT, make_csv
from sshd import SshServer, ssh_attach_args
from waiting import wait_status

from nbml import Experiment, RemoteCompute, ScriptRunConfig
from nbml.data import Dataset, Datastore, DatastoreError

pytestmark = pytest.mark.ssh


def _finish(ws, run) -> tuple[dict, str]:  # type: ignore[no-untyped-def]
    assert wait_status(run, {"Completed", "Failed"}, 90) == "Completed", run.get_details().get("error")
    prepare = (ws.run_dir(run.id) / "nbml-logs" / "prepare_log.txt").read_text()
    return json.loads((ws.run_dir(run.id) / "outputs" / "seen.json").read_text()), prepare


def _bytes_sent(prepare: str) -> int:
    return int(re.search(r"sent \d+ \((\d+) bytes\)", prepare).group(1))  # type: ignore[union-attr]


def test_second_run_reading_the_same_datastore_folder_over_ssh_uploads_zero_bytes(ws, project, sshd: SshServer,
                                                                                  tmp_path: Path, data_folder: Path):
    (data_folder / "raw" / "big.bin").write_bytes(b"\x01" * 300_000)
    src = project(**{"train.py": SCRIPT})
    # The host's interpreter must have pandas for the tabular input: this venv's, over loopback.
    RemoteCompute.attach(ws, "ssh-box", **ssh_attach_args(sshd, tmp_path, python=sys.executable))
    store = Datastore.register_local(ws, "mydata", data_folder)
    tab = Dataset.Tabular.from_delimited_files(path=[(store, "tabular/iris.csv")])
    sent = []
    for _ in range(2):
        config = ScriptRunConfig(source_directory=str(src), script="train.py", compute_target="ssh-box",
                                 arguments=["--data", store.path("raw").as_mount(), tab.as_named_input("iris")])
        seen, prepare = _finish(ws, Experiment(ws, "data-ssh").submit(config))
        sent.append(_bytes_sent(prepare))
        data_dir = seen["args"][1]
        assert data_dir == f"{seen['cwd']}/.nbml/data/{data_dir.rsplit('/', 1)[-1]}"
        assert seen["contents"][data_dir] == ["big.bin", "x.bin"]
        assert seen["inputs"]["iris"]["a"][:3] == [0, 1, 2]
    print(f"bytes sent over SSH: first run {sent[0]}, second run {sent[1]}")
    assert sent[0] > 300_000
    assert sent[1] == 0


def test_sftp_datastore_on_a_real_sshd(ws, project, sshd: SshServer, tmp_path: Path):
    remote = tmp_path / "remote-store"
    make_csv(remote / "csv")
    url = f"sftp://{sshd.user}@{sshd.host}:{sshd.port}{remote}"
    store = Datastore.register_sftp(ws, "remote", url, private_key_file=str(sshd.client_key),
                                    private_key_passphrase="never-written-pw", known_hosts=str(sshd.known_hosts))
    assert Datastore.get(ws, "remote").datastore_type == "Sftp"
    # The store, its WAL and every file beside it; read by another process (closing a descriptor of nbml.db in
    # this one would drop SQLite's locks).
    found = subprocess.run(["grep", "-rl", "never-written-pw", str(ws.path)], capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == ""
    up = tmp_path / "up"
    make_csv(up, "more.csv", rows=5)
    store.upload(str(up), target_path="csv", show_progress=False)
    df = Dataset.Tabular.from_delimited_files(path=[(store, "csv/*.csv")]).to_pandas_dataframe()
    assert len(df) == 35

    src = project(**{"train.py": SCRIPT})
    notes = []
    for _ in range(2):
        config = ScriptRunConfig(source_directory=str(src), script="train.py", arguments=[store.path("csv")])
        seen, prepare = _finish(ws, Experiment(ws, "data-sftp").submit(config))
        assert sorted(seen["contents"][seen["args"][0]]) == ["iris.csv", "more.csv"]
        notes.append(re.search(r"fetched (\d+) bytes", prepare).group(1))  # type: ignore[union-attr]
    assert int(notes[0]) > 0 and notes[1] == "0"


def test_sftp_datastore_with_an_unknown_host_key_is_refused_and_not_saved(ws, sshd: SshServer, tmp_path: Path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    url = f"sftp://{sshd.user}@{sshd.host}:{sshd.port}{tmp_path}"
    with pytest.raises(DatastoreError, match="host key .* is not trusted"):
        Datastore.register_sftp(ws, "nokey", url, private_key_file=str(sshd.client_key), known_hosts=str(empty))
    assert "nokey" not in ws.datastores
