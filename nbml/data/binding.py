"""Data references in a run: serialised at submit, turned into real paths on the target when the job starts.

At submit (`extract`), every DataReference, DataPath or dataset input found in the arguments, the
Estimator's script_params, ``run_config.data_references`` or ``inputs`` becomes a *binding* (plain JSON in
the run's config) and its place in the arguments the token ``$AZUREML_DATAREFERENCE_<name>``.

When the job starts (`attach`), each binding becomes a path on the target:

- on the local target (and nbml's own Dask cluster, which runs on this machine), a mounted folder of a
  local datastore is that folder itself: nothing is copied;
- everywhere else (SSH, Docker, an external Dask cluster), and for ``download`` mode, the files join the
  job's manifest under ``.nbml/data/<name>/`` (or ``path_on_compute``) as content-addressed blobs, exactly
  like snapshot files: a target that already holds a blob (the SSH host's cache) is sent nothing. Files of
  an SFTP or other remote datastore are fetched into the workspace's blob store first (once per size and
  mtime). The argument becomes ``{{NBML_JOB_DIR}}/.nbml/data/<name>``, which each backend replaces with
  the job folder's path as the process sees it.

``mount`` is therefore a download made before the script starts; there is no network filesystem.
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path
from typing import Any

from nbml.compute.base import JOB_DIR_TOKEN, ComputeBackend, JobSpec
from nbml.data._files import is_dir, list_files, to_blobs
from nbml.data._fs import DatastoreError, Location, location

TOKEN = "$AZUREML_DATAREFERENCE_"
INPUTS_FILE = ".nbml/data/inputs.json"
DATA_DIR = ".nbml/data"
_TOKEN_RX = re.compile(re.escape(TOKEN) + r"([A-Za-z0-9_-]+)")


def _binding_of(value: Any) -> dict[str, Any] | None:
    from nbml.data.abstract_dataset import AbstractDataset
    from nbml.data.consumption import DatasetConsumptionConfig
    from nbml.data.data_reference import DataReference
    from nbml.data.datapath import DataPath
    from nbml.data.datastore import Datastore

    if isinstance(value, DataReference):
        return value.binding()
    if isinstance(value, DataPath):
        return value.as_mount().binding()
    if isinstance(value, Datastore):
        return value.as_mount().binding()
    if isinstance(value, DatasetConsumptionConfig):
        return value.binding()
    if isinstance(value, AbstractDataset):
        raise DatastoreError("A dataset in the arguments needs to say how the run gets it: "
                             "dataset.as_named_input('name') (then Run.get_context().input_datasets['name']), or "
                             "for a FileDataset .as_mount() / .as_download().")
    return None


def extract(arguments: list[Any], data_references: dict[str, Any] | None = None,
            inputs: list[Any] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """(arguments as strings, bindings) for a run's config; references in the arguments become tokens."""
    bindings: dict[str, dict[str, Any]] = {}

    def add(binding: dict[str, Any]) -> str:
        name = binding["name"]
        if name in bindings and bindings[name] != binding:
            raise DatastoreError(f"Two different data inputs are both named {name!r}; give them distinct names.")
        bindings[name] = binding
        return TOKEN + name

    args = []
    for value in arguments:
        binding = _binding_of(value)
        args.append(add(binding) if binding is not None else str(value))
    from nbml.data.data_reference import DataReferenceConfiguration

    for name, ref in (data_references or {}).items():
        if isinstance(ref, DataReferenceConfiguration):
            add(ref.binding(name))
        else:
            binding = _binding_of(ref)
            if binding is None:
                raise DatastoreError(f"data_references[{name!r}] must be a DataReference or "
                                     f"DataReferenceConfiguration, not {type(ref).__name__}.")
            add({**binding, "name": name})
    for item in inputs or []:
        binding = _binding_of(item)
        if binding is None:
            raise DatastoreError(f"inputs= takes dataset.as_named_input(name) or DataReferences, not {item!r}.")
        add(binding)
    missing = sorted({m for a in args for m in _TOKEN_RX.findall(a)} - set(bindings))
    if missing:
        raise DatastoreError(f"The arguments use {', '.join(TOKEN + m for m in missing)} but no data reference has "
                             "that name; add it to run_config.data_references.")
    return args, list(bindings.values())


def check(ws: Any, bindings: list[dict[str, Any]]) -> None:
    """Fail the submit (not the run) when a named datastore doesn't exist."""
    from nbml.data.datastore import datastore_record

    for b in bindings:
        if "datastore" in b:
            datastore_record(ws, b["datastore"])


# -- at job start ------------------------------------------------------------------------------------------
def _direct_ok(backend: ComputeBackend) -> bool:
    """Whether the job's process sees this machine's files at the same paths."""
    return backend.kind == "local" or (backend.kind == "dask" and not backend.config.get("external"))


def _target_prefix(binding: dict[str, Any]) -> str:
    poc = binding.get("path_on_compute")
    rel = posixpath.normpath(str(poc).strip("/")) if poc else f"{DATA_DIR}/{binding['name']}"
    if rel.startswith(".."):
        raise DatastoreError(f"path_on_compute {poc!r} leaves the job folder; give a relative path.")
    return rel


def attach(ws_root: Path, store: Any, job: JobSpec, bindings: list[dict[str, Any]], backend: ComputeBackend,
           log: Any = None) -> None:
    """Make every binding's data present for `job` on `backend`; replace its tokens by paths (in place)."""
    if not bindings:
        return
    from nbml.data.datastore import BUILTIN, builtin_record
    from nbml.data.registry import get_datastore

    blob_dir = job.blob_dir
    files = dict(job.files)
    paths: dict[str, str] = {}
    inputs: dict[str, Any] = {}
    direct = _direct_ok(backend)

    opened: dict[str, Location] = {}

    def open_store(name: str) -> Location:
        """The datastore's filesystem, opened once per job (an SFTP datastore is one connection)."""
        if name not in opened:
            rec = get_datastore(store, name)
            if rec is None and name in BUILTIN:
                rec = builtin_record(ws_root, name)
            if rec is None:
                raise DatastoreError(f"The run uses datastore {name!r}, which is no longer registered.")
            opened[name] = location(rec)
        return opened[name]

    def stage(loc: Location, found: list[tuple[str, str]], prefix: str) -> None:
        for rel, entry in to_blobs(store, blob_dir, loc, found, log).items():
            files[f"{prefix}/{rel}"] = entry

    for b in bindings:
        name, mode = b["name"], b["mode"]
        if "datastore" in b:
            loc = open_store(b["datastore"])
            path = b.get("path") or ""
            if direct and loc.local and mode == "mount" and not b.get("path_on_compute"):
                paths[name] = loc.join(path)
                continue
            prefix = _target_prefix(b)
            found = list_files(loc, path)
            stage(loc, found, prefix)
            single = not is_dir(loc, path)
            paths[name] = f"{JOB_DIR_TOKEN}/{prefix}" + (f"/{found[0][1]}" if single and found else "")
        else:
            paths[name], inputs[name] = _dataset(b, open_store, direct, stage)
    job.argv = [_TOKEN_RX.sub(lambda m: paths.get(m.group(1), m.group(0)), a) for a in job.argv]
    job.environ = {**job.environ, **{f"AZUREML_DATAREFERENCE_{n}": p for n, p in paths.items()}}
    job.files = files
    if inputs:
        job.extra_files = {**job.extra_files, INPUTS_FILE: json.dumps(inputs).encode()}


def _dataset(b: dict[str, Any], open_store: Any, direct: bool, stage: Any) -> tuple[str, dict[str, Any]]:
    """(path for the arguments, entry of inputs.json) of a dataset input."""
    definition = dict(b["dataset"])
    prefix = _target_prefix(b)
    sources = definition["sources"]
    local_dirs = []
    if direct and b["mode"] != "download" and not b.get("path_on_compute"):
        for src in sources:
            if "datastore" in src:
                loc = open_store(src["datastore"])
                if loc.local:
                    local_dirs.append({**src, "local": loc.join(src["path"])})
            elif "local" in src:
                local_dirs.append(src)
    if local_dirs and len(local_dirs) == len(sources):
        # Read in place: the sources as paths of this machine.
        definition["sources"] = [{"local": s["local"]} for s in local_dirs]
        only = local_dirs[0]["local"] if len(local_dirs) == 1 else None
        path = only if only and Path(only).is_dir() else ""
        if not path and definition.get("kind") == "file" and b["mode"] != "direct":
            return _staged(b, definition, sources, open_store, stage, prefix)
        return path, {"mode": b["mode"], "path": path, "dataset": definition, "registration": b.get("registration")}
    return _staged(b, definition, sources, open_store, stage, prefix)


def _staged(b: dict[str, Any], definition: dict[str, Any], sources: list[dict[str, Any]], open_store: Any, stage: Any,
            prefix: str) -> tuple[str, dict[str, Any]]:
    from fsspec.implementations.local import LocalFileSystem

    from nbml.data.abstract_dataset import resolve_source

    job_sources = []
    for src in sources:
        if "datastore" in src:
            loc = open_store(src["datastore"])
            found = list_files(loc, src["path"])
        elif "local" in src:
            loc = Location(LocalFileSystem(), "/", "file://", True)
            found = list_files(loc, src["local"])
        else:
            loc, found = resolve_source(src, None)
        stage(loc, found, prefix)
        job_sources += [{"job": f"{prefix}/{rel}"} for _full, rel in found]
    definition = {**definition, "sources": job_sources}
    path = f"{JOB_DIR_TOKEN}/{prefix}"
    return path, {"mode": b["mode"], "path": path, "dataset": definition, "registration": b.get("registration")}


async def attach_or_fail(ctx: Any, job: JobSpec, bindings: list[dict[str, Any]], backend: ComputeBackend) -> bool:
    """`attach` for a supervisor's run: its notes go to the run's prepare log; a failure fails the run."""
    import asyncio

    from nbml.runs.executor import _prep_logger
    from nbml.status import FAILED

    log = _prep_logger(ctx, job.run_id)
    try:
        await asyncio.to_thread(attach, ctx.ws_root, ctx.store, job, bindings, backend, log)
    except Exception as exc:
        ctx.log_exception(f"data of {job.run_id}")
        ctx.store.set_status(job.run_id, FAILED, error=f"The run's data could not be made ready: {exc}")
        return False
    return True
