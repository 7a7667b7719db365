"""Fixtures of the data tests: a datastore with a small CSV, and the real targets of tests/targets."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "targets"))
from sshd import SshServer, available

SCRIPT = '''
import json, os, sys
from nbml import Run

run = Run.get_context()
seen = {"args": sys.argv[1:], "cwd": os.getcwd(), "inputs": {},
        "env": {k: v for k, v in os.environ.items() if k.startswith("AZUREML_DATAREFERENCE_")}}
seen["contents"] = {a: sorted(os.listdir(a)) if os.path.isdir(a) else open(a).read()
                    for a in sys.argv[1:] if os.path.exists(a)}
for name, value in run.input_datasets.items():
    seen["inputs"][name] = value if isinstance(value, str) else value.to_pandas_dataframe().to_dict("list")
os.makedirs("outputs", exist_ok=True)
with open("outputs/seen.json", "w") as fh:
    json.dump(seen, fh)
'''


def make_csv(folder: Path, name: str = "iris.csv", rows: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("a,b,label\n" + "".join(f"{i},{i * 0.5},{i % 3}\n" for i in range(rows)))
    return path


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data-src"
    make_csv(folder / "tabular")
    (folder / "raw").mkdir()
    (folder / "raw" / "x.bin").write_bytes(bytes(range(256)) * 64)
    return folder


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    why = available()
    if why:
        pytest.skip(why)
    server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()
