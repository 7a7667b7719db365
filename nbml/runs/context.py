"""What a supervisor hands to a run driver: the store, logging, cancellation and heartbeats."""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbml.compute.base import ComputeBackend
from nbml.compute.targets import LOCAL, backend_class
from nbml.store import Store


class SupervisorContext:
    """Shared by the script driver and the AutoML/HyperDrive coordinators that run inside a supervisor."""

    def __init__(self, store: Store, ws_root: Path, run_id: str, log_file: Path | None = None) -> None:
        self.store = store
        self.ws_root = ws_root
        self.run_id = run_id
        self.active: set[str] = {run_id}  # runs whose heartbeat this supervisor keeps
        self.cancel_all = asyncio.Event()
        self._log_fh = open(log_file, "a", buffering=1) if log_file else None  # noqa: SIM115

    @property
    def record(self) -> dict[str, Any]:
        rec = self.store.get_run(self.run_id)
        assert rec is not None
        return rec

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.record["config_json"])  # type: ignore[no-any-return]

    def run_dir(self, run_id: str) -> Path:
        return self.ws_root / "runs" / run_id

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        if self._log_fh is not None:
            self._log_fh.write(line + "\n")

    def log_exception(self, message: str) -> None:
        self.log(message + "\n" + traceback.format_exc())

    def is_cancelled(self, run_id: str) -> bool:
        return self.cancel_all.is_set() or self.store.cancel_requested(run_id)

    def backend_for(self, target_name: str) -> ComputeBackend:
        rec = self.store.get_compute(target_name)
        if rec is None:
            if target_name != LOCAL:
                raise RuntimeError(f"compute target {target_name!r} was detached from the workspace")
            rec = {"kind": "local", "config": {}}
        return backend_class(rec["kind"])(target_name, rec["config"], self.ws_root)

    def on_log_line(self) -> Callable[[str], None]:
        return self.log
