"""Public compute-target objects (the SDK's ComputeTarget family) backed by store records."""

from __future__ import annotations

import builtins
import importlib
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

from nbml.errors import ComputeTargetException

if TYPE_CHECKING:
    from nbml.compute.base import ComputeBackend
    from nbml.workspace import Workspace

LOCAL = "local"
_FORBIDDEN = set("`~!@#$%^&*()=+_[]{}\\|;:'\",<>/?.")
_BACKENDS: dict[str, str] = {
    "local": "nbml.compute.local:LocalBackend",
    "ssh": "nbml.compute.ssh:SSHBackend",
    "spark": "nbml.compute.spark:SparkBackend",
    "docker": "nbml.compute.docker:DockerBackend",
    "dask": "nbml.compute.dask:DaskBackend",
    "containerinstance": "nbml.compute.docker_aci:ContainerInstanceBackend",
}


def validate_name(name: str) -> str:
    """Apply the SDK's naming rules: under 64 characters, none of ``~!@#$%^&*()=+_[]{}\\|;:'",<>/?.``."""
    if not isinstance(name, str) or not name.strip():
        raise ComputeTargetException("A compute target needs a non-empty name, e.g. 'cpu-cluster'.")
    bad = sorted({ch for ch in name if ch in _FORBIDDEN or ch.isspace()})
    if bad:
        raise ComputeTargetException(
            f"Compute name {name!r} contains {' '.join(repr(c) for c in bad)}; use letters, digits and '-' "
            f"(for example {re.sub(r'[^A-Za-z0-9-]+', '-', name).strip('-') or 'my-target'!r})."
        )
    if len(name) >= 64:
        raise ComputeTargetException(f"Compute name {name[:20]!r}... has {len(name)} characters; it must be under 64.")
    return name


def backend_class(kind: str) -> type[ComputeBackend]:
    try:
        module, cls = _BACKENDS[kind].split(":")
    except KeyError:
        raise ComputeTargetException(f"Unknown compute kind {kind!r}; known kinds: {', '.join(_BACKENDS)}.") from None
    from nbml._extras import TARGET_EXTRAS, require

    if kind in TARGET_EXTRAS:
        require(*TARGET_EXTRAS[kind])  # the hint, not an ImportError deep inside the supervisor
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def register_backend(kind: str, path: str) -> None:
    """Register a backend ("package.module:Class") for a new kind of target."""
    _BACKENDS[kind] = path


class ComputeTarget:
    """A named compute target of a workspace. ``ComputeTarget(ws, name)`` returns the right subclass."""

    type: ClassVar[str] = "ComputeTarget"
    kind: ClassVar[str] = ""
    _by_kind: ClassVar[dict[str, builtins.type[ComputeTarget]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            ComputeTarget._by_kind[cls.kind] = cls

    def __new__(cls, workspace: Workspace | None = None, name: str | None = None) -> ComputeTarget:
        if cls is ComputeTarget and workspace is not None and name is not None:
            record = _record(workspace, name)
            sub = ComputeTarget._by_kind.get(record["kind"]) or _import_kind(record["kind"])
            return super().__new__(sub)
        return super().__new__(cls)

    def __init__(self, workspace: Workspace, name: str) -> None:
        record = _record(workspace, name)
        if self.kind and record["kind"] != self.kind:
            raise ComputeTargetException(
                f"Compute target {name!r} is a {record['kind']} target, not {self.kind}; use ComputeTarget(ws, {name!r})."
            )
        self.workspace = workspace
        self.name = name
        self._record = record

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._record["config"])

    @property
    def provisioning_state(self) -> str:
        return str(self._record["state"])

    @property
    def target_kind(self) -> str:
        return str(self._record["kind"])

    def backend(self) -> ComputeBackend:
        return backend_class(self.target_kind)(self.name, self.config, self.workspace.path)

    def refresh(self) -> None:
        self._record = _record(self.workspace, self.name)

    def get_status(self) -> dict[str, Any]:
        """The target's current state (clusters add node counts by state)."""
        from nbml._aio import run_sync

        async def _status() -> dict[str, Any]:
            backend = self.backend()
            try:
                return await backend.status()
            finally:
                await backend.close()

        return run_sync(_status())

    def wait_for_completion(self, show_output: bool = False, min_node_count: int | None = None,
                            timeout_in_minutes: float = 20) -> None:
        """Wait until the target is ready (immediate for attached targets)."""
        deadline = time.monotonic() + timeout_in_minutes * 60
        while True:
            status = self.get_status()
            if show_output:
                print(f"{self.name}: {status.get('state')}", flush=True)
            nodes = status.get("nodes", {}).get("idle", 0) + status.get("nodes", {}).get("running", 0)
            if status.get("state") in ("Succeeded", "Ready") and (min_node_count is None or nodes >= min_node_count):
                return
            if status.get("state") == "Failed":
                raise ComputeTargetException(f"Compute target {self.name!r} failed: {status.get('error')}")
            if time.monotonic() > deadline:
                raise ComputeTargetException(f"Compute target {self.name!r} not ready after {timeout_in_minutes} min.")
            time.sleep(2)

    def detach(self) -> None:
        """Remove the target from the workspace (the machine itself is untouched)."""
        self.workspace.store.delete_compute(self.name)

    def delete(self) -> None:
        self.detach()

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "kind": self.target_kind, "state": self.provisioning_state,
                "config": self.config}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, kind={self.target_kind!r})"

    @staticmethod
    def create(workspace: Workspace, name: str, provisioning_configuration: Any) -> ComputeTarget:
        """Create a target from a provisioning configuration (e.g. AmlCompute.provisioning_configuration)."""
        return _add(workspace, name, provisioning_configuration, verb="create")

    @staticmethod
    def attach(workspace: Workspace, name: str, attach_configuration: Any) -> ComputeTarget:
        """Attach an existing machine from an attach configuration (e.g. RemoteCompute.attach_configuration)."""
        return _add(workspace, name, attach_configuration, verb="attach")


def _import_kind(kind: str) -> builtins.type[ComputeTarget]:
    """The public class of `kind`, importing its module (nbml.compute.<kind>_target) on first use."""
    try:
        importlib.import_module(f"nbml.compute.{kind}_target")
    except ImportError:
        pass
    return ComputeTarget._by_kind.get(kind, ComputeTarget)


class LocalCompute(ComputeTarget):
    """This machine, the default target: runs start as subprocesses."""

    type = "local"
    kind = "local"


def _record(workspace: Workspace, name: str) -> dict[str, Any]:
    record = workspace.store.get_compute(name)
    if record is None:
        if name == LOCAL:
            return {"name": LOCAL, "kind": "local", "config": {}, "state": "Succeeded"}
        known = ", ".join(t["name"] for t in workspace.store.list_compute()) or "none yet"
        raise ComputeTargetException(
            f"No compute target named {name!r} in workspace {workspace.name!r} (known: local, {known}). "
            "Create or attach one first, e.g. RemoteCompute.attach(ws, ...) or %ml_compute attach."
        )
    return record


def _add(workspace: Workspace, name: str, configuration: Any, verb: str) -> ComputeTarget:
    validate_name(name)
    if name == LOCAL or workspace.store.get_compute(name) is not None:
        raise ComputeTargetException(
            f"A compute target named {name!r} already exists; use ComputeTarget(ws, {name!r}) or detach it first."
        )
    kind = getattr(configuration, "kind", None)
    if kind is None:
        raise ComputeTargetException(
            f"{type(configuration).__name__} is not a compute configuration; build one with e.g. "
            "RemoteCompute.attach_configuration(...) or AmlCompute.provisioning_configuration(...)."
        )
    # The configuration validates and checks reachability before anything is written to the store.
    config = configuration.validate(workspace, name) if hasattr(configuration, "validate") else configuration.to_dict()
    workspace.store.add_compute(name, kind, config)
    target = ComputeTarget(workspace, name)
    hook = getattr(configuration, "on_" + verb, None)
    if hook is not None:
        try:
            hook(target)
        except BaseException:
            workspace.store.delete_compute(name)
            raise
    return target


def resolve_target(workspace: Workspace, target: Any) -> ComputeTarget:
    """Accept a ComputeTarget, a name, or None (meaning local)."""
    if target is None or target == LOCAL:
        return ComputeTarget(workspace, LOCAL)
    if isinstance(target, ComputeTarget):
        return target
    if isinstance(target, str):
        return ComputeTarget(workspace, target)
    raise ComputeTargetException(f"compute_target must be a ComputeTarget or its name, not {type(target).__name__}.")
