"""Datastores: named fsspec locations of a workspace (the SDK's ``Datastore``).

The default datastore, ``workspaceblobstore``, is the folder ``<workspace>/datastores/workspaceblobstore``
(``workspacefilestore`` is its sibling), so notebooks that ``upload`` to the default datastore work with no
set-up. ``Datastore.register_local`` adds any folder of this machine, ``Datastore.register_sftp`` a folder on
a host reached over SFTP, and ``Datastore.register_fsspec`` any other fsspec URL. Only the location and
non-secret options are stored; Azure storage calls raise an error naming what to use instead.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.compute import _ssh_secrets as secrets
from nbml.data import registry
from nbml.data._fs import DatastoreError, Location, check_options, expand, location, parse_sftp, secret_target

if TYPE_CHECKING:
    from nbml.data.data_reference import DataReference
    from nbml.workspace import Workspace

BUILTIN = ("workspaceblobstore", "workspacefilestore")
DEFAULT = BUILTIN[0]
_AZURE_HINT = ("Azure storage is not available in nbml (it runs without Azure). Copy the data to a folder and use "
               "Datastore.register_local(ws, name, folder), Datastore.register_sftp(ws, name, "
               "'sftp://user@host:22/folder') for a machine you can reach, or Datastore.register_fsspec(ws, name, "
               "url) for another fsspec filesystem; the default datastore (ws.get_default_datastore()) is a "
               "folder of the workspace.")


def builtin_record(ws_path: Path, name: str) -> dict[str, Any]:
    """The record of a built-in datastore: a folder of the workspace at `ws_path`."""
    folder = Path(ws_path) / "datastores" / name
    return {"name": name, "kind": "local", "url": folder.as_uri(), "config": {"path": str(folder)}}


def datastore_record(ws: Workspace, name: str) -> dict[str, Any]:
    rec = registry.get_datastore(ws.store, name)
    if rec is None and name in BUILTIN:
        rec = builtin_record(ws.path, name)
    if rec is None:
        known = ", ".join([*BUILTIN, *(r["name"] for r in registry.list_datastores(ws.store))])
        raise DatastoreError(f"No datastore {name!r} in workspace {ws.name!r}; known: {known}. Register it with "
                             "Datastore.register_local / register_sftp.")
    return rec


def _name(name: str) -> str:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-" for c in name):
        raise DatastoreError(f"Datastore name {name!r} must be letters, digits, '_' or '-' (e.g. 'training_data').")
    if name in BUILTIN:
        raise DatastoreError(f"{name!r} is the workspace's built-in datastore; choose another name.")
    return name


class Datastore:
    """A named location for data. ``Datastore(ws, name)`` or ``Datastore.get(ws, name)`` returns a registered one."""

    def __init__(self, workspace: Workspace, name: str | None = None) -> None:
        self.workspace = workspace
        rec = datastore_record(workspace, name or _default_name(workspace))
        self.name: str = rec["name"]
        self._record = rec
        self._loc: Location | None = None

    # -- lookup ------------------------------------------------------------------------------------
    @staticmethod
    def get(workspace: Workspace, datastore_name: str) -> Datastore:
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace: Workspace) -> Datastore:
        return Datastore(workspace, _default_name(workspace))

    @staticmethod
    def list(workspace: Workspace) -> builtins.list[Datastore]:
        names = [*BUILTIN, *(r["name"] for r in registry.list_datastores(workspace.store))]
        return [Datastore(workspace, n) for n in names]

    # -- registration -------------------------------------------------------------------------------
    @staticmethod
    def register_local(workspace: Workspace, datastore_name: str, path: str | os.PathLike[str],
                       create_if_not_exists: bool = True, **_: Any) -> Datastore:
        """A folder of this machine (``file://``). Runs on the local target read it in place."""
        name = _name(datastore_name)
        text = str(path)
        if text.startswith("file://"):
            text = text[len("file://"):]
        folder = Path(expand(text))
        if not folder.is_dir():
            if not create_if_not_exists:
                raise DatastoreError(f"{folder} is not a folder; create it or pass create_if_not_exists=True.")
            folder.mkdir(parents=True, exist_ok=True)
        registry.add_datastore(workspace.store, name, "local", folder.as_uri(), {"path": str(folder)})
        return Datastore(workspace, name)

    @staticmethod
    def register_sftp(workspace: Workspace, datastore_name: str, url: str, private_key_file: str | None = None,
                      password: str | None = None, private_key_passphrase: str | None = None,
                      known_hosts: str | None = None, create_if_not_exists: bool = False, **_: Any) -> Datastore:
        """A folder on a host reached over SFTP: ``sftp://user@host:port/absolute/folder``.

        The host key must already be trusted (the user's known_hosts, the file given, or the workspace's, where
        ``RemoteCompute.attach(trust_host_key=True)`` records keys). A password or passphrase is kept in this
        process's memory only; later processes read ``NBML_SSH_PASSWORD_DATASTORE_<NAME>`` (or prompt).
        """
        name = _name(datastore_name)
        parts = parse_sftp(url)
        key = expand(private_key_file) if private_key_file else None
        if key and not os.path.isfile(key):
            raise DatastoreError(f"private_key_file {private_key_file!r} does not exist.")
        from nbml.compute._ssh_conn import DEFAULT_KNOWN_HOSTS
        from nbml.compute.ssh_target import workspace_known_hosts

        config = {**parts, "private_key_file": key, "auth": "key" if key or not password else "password",
                  "known_hosts": [known_hosts or DEFAULT_KNOWN_HOSTS, str(workspace_known_hosts(workspace))]}
        target = secret_target(name)
        secrets.remember(target, secrets.PASSWORD, password)
        secrets.remember(target, secrets.PASSPHRASE, private_key_passphrase)
        rec = {"name": name, "kind": "sftp", "url": url, "config": config}
        try:
            loc = location(rec)  # connects: a bad host key, login or address fails here, before anything is saved
            if not loc.fs.isdir(parts["path"]):
                if not create_if_not_exists:
                    raise DatastoreError(f"{parts['path']} is not a folder on {parts['address']}; create it there or "
                                         "pass create_if_not_exists=True.")
                loc.fs.makedirs(parts["path"], exist_ok=True)
        except BaseException:
            secrets.forget(target)
            raise
        url = f"sftp://{parts['username']}@{parts['address']}:{parts['ssh_port']}{parts['path']}"
        registry.add_datastore(workspace.store, name, "sftp", url, config)
        return Datastore(workspace, name)

    @staticmethod
    def register_fsspec(workspace: Workspace, datastore_name: str, url: str, **storage_options: Any) -> Datastore:
        """Any fsspec URL (``memory://``, ``s3://`` with s3fs installed...); options must not hold secrets."""
        import fsspec

        name = _name(datastore_name)
        check_options(storage_options)
        try:
            json.dumps(storage_options)
        except TypeError as exc:
            raise DatastoreError(f"storage_options must be plain values (they are stored as JSON): {exc}.") from None
        if url.startswith(("sftp://", "ssh://")):
            return Datastore.register_sftp(workspace, name, url)
        if url.startswith("file://") or "://" not in url:
            return Datastore.register_local(workspace, name, url)
        try:
            fsspec.core.url_to_fs(url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise DatastoreError(f"fsspec can't open {url!r}: {exc}") from None
        registry.add_datastore(workspace.store, name, "fsspec", url, {"storage_options": storage_options})
        return Datastore(workspace, name)

    @staticmethod
    def register_azure_blob_container(*_: Any, **__: Any) -> Datastore:
        raise DatastoreError(_AZURE_HINT)

    register_azure_file_share = register_azure_blob_container
    register_azure_data_lake = register_azure_blob_container
    register_azure_data_lake_gen2 = register_azure_blob_container
    register_azure_sql_database = register_azure_blob_container
    register_azure_postgre_sql = register_azure_blob_container
    register_azure_my_sql = register_azure_blob_container
    register_dbfs = register_azure_blob_container

    def unregister(self) -> None:
        if self.name in BUILTIN:
            raise DatastoreError(f"{self.name!r} is built into the workspace and can't be unregistered.")
        registry.delete_datastore(self.workspace.store, self.name)
        secrets.forget(secret_target(self.name))

    def set_as_default(self) -> None:
        registry.set_default_datastore(self.workspace.store, None if self.name in BUILTIN else self.name)

    # -- properties ------------------------------------------------------------------------------------
    @property
    def datastore_type(self) -> str:
        return {"local": "LocalFolder", "sftp": "Sftp"}.get(self._record["kind"], "Fsspec")

    @property
    def url(self) -> str:
        return str(self._record["url"])

    @property
    def kind(self) -> str:
        return str(self._record["kind"])

    @property
    def container_name(self) -> str:
        return Path(self._location().root).name

    def _location(self) -> Location:
        if self._loc is None:
            self._loc = location(self._record)
            if self._loc.local:
                Path(self._loc.root).mkdir(parents=True, exist_ok=True)
        return self._loc

    # -- data --------------------------------------------------------------------------------------------
    def upload(self, src_dir: str | os.PathLike[str], target_path: str | None = None, overwrite: bool = False,
               show_progress: bool = True) -> DataReference:
        """Copy every file under `src_dir` to `target_path` in the datastore; existing files are kept unless
        `overwrite`. Returns a reference to `target_path`."""
        src = Path(src_dir).expanduser()
        if not src.exists():
            raise DatastoreError(f"upload: there is no folder {str(src)!r} (from {os.getcwd()!r}); create it, or "
                                 "give the path of the folder to upload.")
        if not src.is_dir():
            raise DatastoreError(f"upload: {str(src)!r} is not a folder; use upload_files for single files.")
        files = sorted(p for p in src.rglob("*") if p.is_file())
        self._put([(p, p.relative_to(src).as_posix()) for p in files], target_path, overwrite, show_progress)
        return self.path(target_path)

    def upload_files(self, files: builtins.list[str | os.PathLike[str]], relative_root: str | None = None,
                     target_path: str | None = None, overwrite: bool = False,
                     show_progress: bool = True) -> DataReference:
        """Copy `files` to `target_path`, keeping their paths relative to `relative_root` (default: their
        common folder)."""
        paths = [Path(f).expanduser().resolve() for f in files]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DatastoreError(f"upload_files: not a file: {', '.join(missing[:5])}.")
        if not paths:
            return self.path(target_path)
        root = Path(relative_root).expanduser().resolve() if relative_root else \
            Path(os.path.commonpath([str(p.parent) for p in paths]))
        outside = [str(p) for p in paths if root not in p.parents]
        if outside:
            raise DatastoreError(f"upload_files: {outside[0]} is not under relative_root {str(root)!r}.")
        self._put([(p, p.relative_to(root).as_posix()) for p in paths], target_path, overwrite, show_progress)
        return self.path(target_path)

    def _put(self, pairs: builtins.list[tuple[Path, str]], target_path: str | None, overwrite: bool,
             show_progress: bool) -> None:
        loc = self._location()
        base = loc.join(target_path)
        total = len(pairs)
        for i, (src, rel) in enumerate(pairs, start=1):
            dest = f"{base.rstrip('/')}/{rel}"
            if not overwrite and loc.fs.exists(dest):
                if show_progress:
                    print(f"Skipped {rel}: it exists in {self.name} (overwrite=False)", file=sys.stderr)
                continue
            parent = dest.rsplit("/", 1)[0]
            if parent:
                loc.fs.makedirs(parent, exist_ok=True)
            loc.fs.put_file(str(src), dest)
            if show_progress:
                print(f"Uploaded {src}, {i} files out of an estimated total of {total}", file=sys.stderr)
        if show_progress:
            print(f"Uploaded {total} files", file=sys.stderr)

    def download(self, target_path: str | os.PathLike[str], prefix: str | None = None, overwrite: bool = False,
                 show_progress: bool = True) -> int:
        """Copy files under `prefix` to the local folder `target_path`; returns how many were copied."""
        from nbml.data._files import list_files

        loc = self._location()
        count = 0
        for full, rel in list_files(loc, prefix or ""):
            rel_path = f"{prefix.strip('/')}/{rel}" if prefix else rel
            dest = Path(target_path) / rel_path
            if dest.exists() and not overwrite:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            loc.fs.get_file(full, str(dest))
            count += 1
            if show_progress:
                print(f"Downloaded {rel_path}", file=sys.stderr)
        return count

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        from nbml.data.data_reference import DataReference

        return DataReference(self, data_reference_name=data_reference_name, path_on_datastore=path)

    def as_mount(self) -> DataReference:
        return self.path().as_mount()

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        return self.path().as_download(path_on_compute=path_on_compute)

    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, type={self.datastore_type!r}, url={self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Datastore) and other.name == self.name and other.workspace == self.workspace

    def __hash__(self) -> int:
        return hash(self.name)


def _default_name(ws: Workspace) -> str:
    return registry.default_datastore_name(ws.store) or DEFAULT


def datastores(ws: Workspace) -> dict[str, Datastore]:
    """``ws.datastores``: every datastore by name, the built-in ones first."""
    return {d.name: d for d in Datastore.list(ws)}
