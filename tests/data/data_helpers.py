"""Helpers of the data tests (a module of its own: `conftest` names clash across test folders)."""

from __future__ import annotations

from pathlib import Path

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
