"""Experiment: a named group of runs in a workspace."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.errors import UserErrorException

if TYPE_CHECKING:
    from nbml.runs.run import Run
    from nbml.workspace import Workspace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


class Experiment:
    """``Experiment(ws, "name")``; ``submit(config)`` starts a run and returns it at once."""

    def __init__(self, workspace: Workspace, name: str, **_: Any) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise UserErrorException(
                f"Experiment name {name!r} is not valid: use 1-255 letters, digits, '-', '_' or '.', starting with a "
                "letter or digit (e.g. 'Tutorial-TrainIRIS')."
            )
        self.workspace = workspace
        self.name = name

    def submit(self, config: Any, tags: dict[str, Any] | None = None, **kwargs: Any) -> Run:
        """Submit a ScriptRunConfig, Estimator, AutoMLConfig or HyperDriveConfig.

        Anything with a ``_submit(experiment, tags=..., **kwargs)`` method can be submitted.
        """
        submit = getattr(config, "_submit", None)
        if submit is None:
            raise UserErrorException(
                f"Can't submit a {type(config).__name__}; submit a ScriptRunConfig, AutoMLConfig or HyperDriveConfig."
            )
        return submit(self, tags=tags, **kwargs)  # type: ignore[no-any-return]

    def start_logging(self, *args: Any, outputs: str | None = "./outputs", snapshot_directory: str | None = None,
                      display_name: str | None = None, **kwargs: Any) -> Run:
        """Start an interactive run logged from this process (end it with run.complete())."""
        from nbml.runs.ids import new_run_id
        from nbml.runs.recovery import hold_interactive
        from nbml.runs.run import Run
        from nbml.runs.status import RUNNING

        snapshot_id = None
        if snapshot_directory:
            from nbml.snapshot import take_snapshot

            snapshot_id = take_snapshot(self.workspace, snapshot_directory).id
        run_id = new_run_id(self.name)
        if outputs:
            Path(outputs).mkdir(parents=True, exist_ok=True)  # as the SDK does: scripts write there at once
        store = self.workspace.store
        store.insert_run(run_id, self.name, "interactive", "local", {"outputs": outputs},
                         snapshot_id=snapshot_id, display_name=display_name)
        # Held by this process: its heartbeat thread keeps the run alive for readers however long the pause
        # between cells; the run ends Failed only if this process goes away without complete().
        hold_interactive(store, run_id)
        store.set_status(run_id, RUNNING)
        return Run(self, run_id)

    def get_runs(self, type: str | None = None, tags: Any = None, properties: Any = None,
                 include_children: bool = False) -> Iterator[Run]:
        """Runs of this experiment, newest first."""
        from nbml.runs.run import Run

        for rec in self.workspace.store.list_runs(experiment=self.name, top_level=not include_children, limit=1_000_000):
            if type and rec["kind"] != type:
                continue
            yield Run(self, rec["run_id"], rec)._typed()

    @staticmethod
    def list(workspace: Workspace, experiment_name: str | None = None, **_: Any) -> list[Experiment]:
        """The workspace's experiments (SDK: ``Experiment.list(ws)``), or the one named `experiment_name`."""
        return [e for name, e in workspace.experiments.items() if experiment_name in (None, name)]

    @property
    def id(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.name == self.name and other.workspace == self.workspace

    def __hash__(self) -> int:
        return hash((self.name, str(self.workspace.path)))
