"""The workspace: a folder holding the store (nbml.db) and the files beside it."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.errors import RunNotFound, WorkspaceError
from nbml.store import Store

if TYPE_CHECKING:
    from nbml.compute.targets import ComputeTarget
    from nbml.runs.experiment import Experiment
    from nbml.runs.run import Run

CONFIG_DIR = ".nbml"
CONFIG_FILE = "config.json"
# SDK constructor arguments that name an Azure subscription: nbml workspaces are folders instead.
_AZURE_ARGS = ("subscription_id", "resource_group", "workspace_name", "location", "create_resource_group",
               "sku", "storage_account", "key_vault", "app_insights", "container_registry")


def default_root() -> Path:
    """The embedded default workspace: $NBML_HOME, else ~/.nbml."""
    return Path(os.environ.get("NBML_HOME") or Path.home() / ".nbml").expanduser()


class _ComputeTargets(dict):  # type: ignore[type-arg]
    """`ws.compute_targets` is a dict (name -> target); calling it lists the targets, as 2018 notebooks do."""

    def __call__(self) -> list[ComputeTarget]:
        return list(self.values())


class Workspace:
    """A workspace folder: runs, experiments, compute targets, environments and models.

    The SDK's Azure attributes have local values, so notebooks that print them run: ``subscription_id``
    and ``resource_group`` are ``"local"``, ``location`` is this machine's host name.

    Parameters
    ----------
    name
        Display name; stored in the folder's config.json.
    path
        The workspace folder (the one holding ``config.json`` and ``nbml.db``). Defaults to the embedded
        default workspace (``$NBML_HOME`` or ``~/.nbml``).
    """

    #: Local stand-ins for the SDK's Azure attributes (a workspace here is a folder, not an Azure resource).
    subscription_id = "local"
    resource_group = "local"

    def __init__(self, name: str | None = None, path: str | os.PathLike[str] | None = None, **_ignored: Any) -> None:
        _refuse_azure_args("Workspace(...)", _ignored)
        root = Path(path).expanduser().resolve() if path is not None else default_root()
        self.path = root
        _ensure_writable(root)
        cfg_file = root / CONFIG_FILE
        cfg: dict[str, Any] = {}
        if cfg_file.exists():
            try:
                cfg = json.loads(cfg_file.read_text())
            except ValueError as exc:
                raise WorkspaceError(f"{cfg_file} is not valid JSON ({exc}); fix or delete it.") from exc
        if not cfg or (name and cfg.get("name") != name and not cfg.get("name")):
            cfg = {"name": name or cfg.get("name") or "default", "version": 1}
            _atomic_write(cfg_file, json.dumps(cfg, indent=2))
        self.name: str = cfg.get("name", "default")
        self._config = cfg
        self.store = Store(root)
        for sub in ("snapshots", "runs", "models", "envs", "jobs"):
            (root / sub).mkdir(exist_ok=True)
        from nbml.runs.recovery import recover_all

        # After a crash or reboot: runs whose supervisor is gone get a new one; (run id, what was done).
        self.recovered_runs: list[tuple[str, str]] = recover_all(self.store)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, _file_name: str | None = None,
                    auth: Any = None, **_ignored: Any) -> Workspace:
        """Find ``.nbml/config.json`` walking up from `path` (default: the working directory).

        Falls back to the embedded default workspace when none is found, so notebooks run with no set-up.
        `path` may also point at a config.json file or a workspace folder directly.
        """
        start = Path(path).expanduser().resolve() if path is not None else Path.cwd()
        if start.is_file():
            return cls(path=start.parent)
        if (start / CONFIG_FILE).exists() and (start / "nbml.db").exists():
            return cls(path=start)
        env = os.environ.get("NBML_WORKSPACE")
        if env and path is None:
            return cls(path=env)
        for folder in (start, *start.parents):
            candidate = folder / CONFIG_DIR / CONFIG_FILE
            if candidate.exists():
                return cls(path=_pointed(candidate))
        return cls(path=default_root())

    @classmethod
    def create(cls, name: str, path: str | os.PathLike[str] = ".", exist_ok: bool = True, **_ignored: Any) -> Workspace:
        """Create a workspace in ``<path>/.nbml`` (``from_config`` below `path` will find it)."""
        _refuse_azure_args("Workspace.create", _ignored)
        root = Path(path).expanduser().resolve() / CONFIG_DIR
        if (root / CONFIG_FILE).exists() and not exist_ok:
            raise WorkspaceError(f"A workspace already exists at {root}; pass exist_ok=True to use it.")
        _ensure_writable(root)
        if not (root / CONFIG_FILE).exists():
            _atomic_write(root / CONFIG_FILE, json.dumps({"name": name, "version": 1}, indent=2))
        return cls(path=root)

    @classmethod
    def get(cls, name: str | None = None, path: str | os.PathLike[str] | None = None, **_ignored: Any) -> Workspace:
        _refuse_azure_args("Workspace.get", _ignored)
        return cls(name=name, path=path) if path is not None else cls.from_config()

    def write_config(self, path: str | os.PathLike[str] = ".", file_name: str | None = None) -> Path:
        """Write ``<path>/.nbml/config.json`` pointing at this workspace so from_config() finds it there."""
        target = Path(path).expanduser().resolve() / CONFIG_DIR
        if target == self.path:
            return target / CONFIG_FILE
        target.mkdir(parents=True, exist_ok=True)
        out = target / (file_name or CONFIG_FILE)
        _atomic_write(out, json.dumps({"name": self.name, "version": 1, "path": str(self.path)}, indent=2))
        return out

    # -- views ---------------------------------------------------------------------------------
    @property
    def compute_targets(self) -> _ComputeTargets:
        from nbml.compute.targets import LOCAL, ComputeTarget

        out = _ComputeTargets()
        out[LOCAL] = ComputeTarget(self, LOCAL)
        for rec in self.store.list_compute():
            out[rec["name"]] = ComputeTarget(self, rec["name"])
        return out

    @property
    def experiments(self) -> dict[str, Experiment]:
        from nbml.runs.experiment import Experiment

        return {e["name"]: Experiment(self, e["name"]) for e in self.store.list_experiments()}

    @property
    def environments(self) -> dict[str, Any]:
        from nbml.environment import Environment

        return {e["name"]: Environment.get(self, e["name"]) for e in self.store.list_environments()}

    @property
    def models(self) -> dict[str, Any]:
        from nbml.models.registry import Model

        return {m["name"]: Model(self, m["name"]) for m in self.store.list_models()}

    @property
    def datastores(self) -> dict[str, Any]:
        from nbml.data.datastore import datastores

        return datastores(self)

    def get_default_datastore(self) -> Any:
        """The default datastore: the workspace folder ``datastores/workspaceblobstore`` unless another is set."""
        from nbml.data.datastore import Datastore

        return Datastore.get_default(self)

    def set_default_datastore(self, name: str) -> None:
        from nbml.data.datastore import Datastore

        Datastore.get(self, name).set_as_default()

    def get_run(self, run_id: str) -> Run:
        from nbml.runs.run import Run

        return Run.get(self, run_id)

    def run_dir(self, run_id: str) -> Path:
        return self.path / "runs" / run_id

    @property
    def location(self) -> str:
        """Where the workspace lives: this machine's host name (the SDK's Azure region)."""
        return socket.gethostname()

    @property
    def webservices(self) -> dict[str, Any]:
        from nbml.models.deploy import Webservice

        return {s.name: s for s in Webservice.list(self)}

    def get_details(self) -> dict[str, Any]:
        """The SDK's details dict, with local values (see the class docstring), plus the folder."""
        return {"id": str(self.path), "name": self.name, "friendlyName": self.name, "location": self.location,
                "resourceGroup": self.resource_group, "subscriptionId": self.subscription_id,
                "path": str(self.path), "schema": self.store.db.path.name}

    def get_mlflow_tracking_uri(self) -> str:
        """``nbml:///<this folder>``: give it to ``mlflow.set_tracking_uri`` and MLflow logs nbml runs here.

        Needs MLflow (``pip install nbml[mlflow]``); see docs/mlflow.md.
        """
        from nbml.mlflow_plugin import register, tracking_uri

        register()
        return tracking_uri(self.path)

    def __repr__(self) -> str:
        return f"Workspace(name={self.name!r}, path={str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


def _refuse_azure_args(what: str, given: dict[str, Any]) -> None:
    azure = sorted(k for k in given if k in _AZURE_ARGS and given[k] is not None)
    if azure:
        from nbml._azure_only import subscription_error

        raise subscription_error(f"{what} with {', '.join(azure)}")


def _pointed(config_file: Path) -> Path:
    """A config.json written by write_config() may point at a workspace kept elsewhere."""
    try:
        target = json.loads(config_file.read_text()).get("path")
    except ValueError:
        target = None
    return Path(target) if target else config_file.parent


def _ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise WorkspaceError(
            f"The workspace folder {root} isn't writable ({exc.strerror or exc}). Choose a folder you can write: "
            "set NBML_HOME, or Workspace.create(name, path=...) somewhere writable."
        ) from exc


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def get_run_or_raise(ws: Workspace, run_id: str) -> dict[str, Any]:
    rec = ws.store.get_run(run_id)
    if rec is None:
        raise RunNotFound(f"No run {run_id!r} in workspace {ws.name!r} ({ws.path}); check the id with `nbml runs list`.")
    return rec
