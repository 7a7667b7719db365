"""Inside a training script: ``Run.get_context().input_datasets`` (written at job start by nbml.data.binding)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nbml.compute.base import JOB_DIR_TOKEN


def input_datasets(job_dir: str | None = None) -> dict[str, Any]:
    """name -> a path (a FileDataset mounted or downloaded) or a dataset whose files are on this machine."""
    folder = job_dir or os.environ.get("NBML_JOB_DIR") or os.getcwd()
    path = Path(folder) / ".nbml" / "data" / "inputs.json"
    if not path.is_file():
        return {}
    from nbml.data.abstract_dataset import from_definition

    out: dict[str, Any] = {}
    for name, entry in json.loads(path.read_text()).items():
        where = str(entry.get("path") or "").replace(JOB_DIR_TOKEN, folder)
        if entry["mode"] in ("mount", "download") and where:
            out[name] = where
            continue
        definition = entry["dataset"]
        definition["sources"] = [{"local": os.path.join(folder, s["job"])} if "job" in s else s
                                 for s in definition["sources"]]
        ds = from_definition(definition)
        ds._registration = entry.get("registration") or {}
        out[name] = ds
    return out
