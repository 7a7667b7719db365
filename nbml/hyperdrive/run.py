"""HyperDriveRun: the parent run of a hyperparameter search."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from nbml._progress import Progress
from nbml.runs.follow import idle
from nbml.runs.kinds import register
from nbml.runs.run import Run
from nbml.runs.status import TERMINAL


class HyperDriveRun(Run):
    """Children are script runs ``<parent>_<n>``, each with a ``hyperparameters`` property."""

    @property
    def _metric(self) -> tuple[str, bool]:
        cfg = self.config
        return cfg["primary_metric_name"], cfg["primary_metric_goal"] == "MAXIMIZE"

    def _final(self, run_id: str) -> float | None:
        name, _ = self._metric
        value = self._store.get_metrics(run_id, name).get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return None

    def get_children_sorted_by_primary_metric(self, top: int = 0, reverse: bool = False,
                                              discard_no_metric: bool = False) -> list[dict[str, Any]]:
        """Children best first (``reverse=True``: worst first), as dicts with run_id, hyperparameters,
        best_primary_metric and status."""
        _, maximize = self._metric
        rows = []
        for rec in self._store.children(self.id):
            value = self._final(rec["run_id"])
            if value is None and discard_no_metric:
                continue
            rows.append({"run_id": rec["run_id"], "status": rec["status"], "best_primary_metric": value,
                         "hyperparameters": self._store.get_properties(rec["run_id"]).get("hyperparameters")})
        with_metric = sorted((r for r in rows if r["best_primary_metric"] is not None),
                             key=lambda r: r["best_primary_metric"], reverse=maximize != reverse)
        ordered = with_metric + [r for r in rows if r["best_primary_metric"] is None]
        return ordered[:top] if top else ordered

    def get_best_run_by_primary_metric(self, include_failed: bool = True, include_canceled: bool = True) -> Run | None:
        """The child with the best final value of the primary metric (None if none logged it)."""
        for row in self.get_children_sorted_by_primary_metric(discard_no_metric=True):
            if (row["status"] == "Failed" and not include_failed) or (row["status"] == "Canceled"
                                                                      and not include_canceled):
                continue
            return Run(self.experiment, row["run_id"])
        return None

    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True, timeout_seconds: float | None = None) -> dict[str, Any]:
        """Wait for the search; with show_output, print a line as each child run ends, under a bar of runs
        done out of max_total_runs."""
        if show_output:
            self._print_progress(timeout_seconds)
        return super().wait_for_completion(show_output=False, raise_on_error=raise_on_error,
                                           timeout_seconds=timeout_seconds)

    def _print_progress(self, timeout_seconds: float | None, poll: float = 0.5) -> None:
        out = sys.stdout
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        name, maximize = self._metric
        out.write(f"HyperDrive run {self.id}: primary metric {name} ({'max' if maximize else 'min'}imize)\n")
        out.flush()
        printed: set[str] = set()
        best: float | None = None
        with Progress("Runs", total=int(self.config.get("max_total_runs") or 0) or None, unit="done") as progress:
            while True:
                status = self.get_status()
                ended = [r for r in self._store.children(self.id) if r["status"] in TERMINAL
                         and r["run_id"] not in printed]
                for rec in sorted(ended, key=lambda r: r.get("ended_at") or 0):
                    printed.add(rec["run_id"])
                    value = self._final(rec["run_id"])
                    if value is not None and (best is None or (value > best if maximize else value < best)):
                        best = value
                    params = self._store.get_properties(rec["run_id"]).get("hyperparameters") or "{}"
                    progress.write(f"{rec['run_id']}  {rec['status']:<9}  {name}={value}  best={best}  {params}\n",
                                   out)
                    progress.update(1)
                if status in TERMINAL or (deadline is not None and time.monotonic() > deadline):
                    return
                idle(poll)  # keeps a RunDetails widget of this kernel live while the cell waits

    def get_hyperparameters(self) -> dict[str, dict[str, Any]]:
        """{child run id: its hyperparameters}."""
        return {rec["run_id"]: json.loads(self._store.get_properties(rec["run_id"]).get("hyperparameters") or "{}")
                for rec in self._store.children(self.id)}

    def get_metrics(self, name: str | None = None, recursive: bool = False, run_type: str | None = None,
                    populate: bool = False) -> dict[str, Any]:
        """Like the SDK: {child run id: its metrics} for a HyperDrive parent."""
        return {rec["run_id"]: self._store.get_metrics(rec["run_id"], name) for rec in self._store.children(self.id)}


register("hyperdrive", HyperDriveRun)
