"""Submitting a script run: validate everything first, so a failed submit leaves nothing behind."""

from __future__ import annotations

import difflib
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbml.compute.targets import resolve_target
from nbml.errors import UserErrorException
from nbml.runs import containerinstance
from nbml.runs.ids import new_run_id
from nbml.runs.supervisor import start_supervisor

if TYPE_CHECKING:
    from nbml.runs.config import ScriptRunConfig
    from nbml.runs.experiment import Experiment
    from nbml.runs.run import Run
    from nbml.workspace import Workspace


def check_script(source_directory: str, script: str | None) -> tuple[Path, str]:
    """Resolve and syntax-check the entry script; returns (source dir, script path relative to it)."""
    source = Path(source_directory).expanduser().resolve()
    if not source.is_dir():
        raise UserErrorException(f"source_directory {str(source)!r} doesn't exist; pass the folder that holds the "
                                 "training script.")
    if not script:
        raise UserErrorException("ScriptRunConfig needs script='train.py' (a file inside source_directory).")
    path = (source / script).resolve()
    if source not in path.parents:
        raise UserErrorException(f"script {script!r} is outside source_directory {str(source)!r}; move it into the "
                                 "folder or set source_directory to the folder that holds it.")
    if not path.is_file():
        candidates = [p.relative_to(source).as_posix() for p in source.rglob("*.py")][:2000]
        close = difflib.get_close_matches(script, candidates, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UserErrorException(f"Script {script!r} not found in {source}.{hint}")
    if path.suffix == ".py":
        try:
            compile(path.read_bytes(), str(path), "exec")
        except SyntaxError as exc:
            raise UserErrorException(
                f"{script} has a syntax error at line {exc.lineno}: {exc.msg}\n    {(exc.text or '').rstrip()}\n"
                "Fix it and submit again."
            ) from None
    return source, path.relative_to(source).as_posix()


def start_recorded_run(ws: Workspace, run_id: str, tags: dict[str, Any] | None,
                       properties: dict[str, Any]) -> None:
    """Tag a just-inserted run and start its supervisor; any failure removes the run and its folder again."""
    try:
        if tags:
            ws.store.set_tags(run_id, tags)
        ws.store.add_properties(run_id, properties)
        start_supervisor(ws.path, run_id)
    except BaseException:
        ws.store.delete_run(run_id)
        shutil.rmtree(ws.run_dir(run_id), ignore_errors=True)
        raise


def submit_script(experiment: Experiment, config: ScriptRunConfig, tags: dict[str, Any] | None = None,
                  show_output: bool = False, **_: Any) -> Run:
    from nbml.runs.run import Run
    from nbml.snapshot import take_snapshot

    ws = experiment.workspace
    source, script = check_script(config.source_directory, config.script)
    target_ref, limits = containerinstance.resolve(ws, config.compute_target, config.run_config)
    target = resolve_target(ws, target_ref)
    distributed = _distributed_settings(config, target)
    warm = _warm_settings(config)
    env = config.environment
    spec = env.spec()
    notes = env.unmapped()
    if notes:
        warnings.warn(f"Environment {env.name!r}: not installed with pip: {'; '.join(notes)}.", stacklevel=3)
    if target.target_kind == "local" and not spec.docker_enabled:
        # Build (or find) the environment now: a bad package fails the submit, not a run.
        from nbml.envbuild import ensure_local_env

        ensure_local_env(ws.path / "envs", spec, _progress(spec.pip))
    arguments, data_bindings = data_bindings_of(ws, config)
    snapshot = take_snapshot(ws, source)
    run_id = new_run_id(experiment.name)
    run_config: dict[str, Any] = {
        "driver": "nbml.runs.script_driver",
        "script": script,
        "arguments": arguments,
        "source_directory": str(source),
        "snapshot_id": snapshot.id,
        "env": spec.to_dict(),
        "environment_name": env.name,
        "max_run_duration_seconds": config.max_run_duration_seconds,
    }
    if data_bindings:
        run_config["data"] = data_bindings
    if limits:
        run_config["resources"] = limits
    if warm:
        run_config.update(warm)
    spark = _spark_settings(config, target.target_kind)
    if spark:
        run_config["spark"] = spark
    properties = {"script": script, "arguments": " ".join(arguments), "environment": env.name}
    if distributed:
        from nbml.compute._ranks import run_properties

        run_config["distributed"] = distributed
        properties.update(run_properties(distributed))
    ws.store.insert_run(run_id, experiment.name, "script", target.name, run_config, snapshot_id=snapshot.id)
    start_recorded_run(ws, run_id, tags, properties)
    run = Run(experiment, run_id)
    if show_output:
        run.wait_for_completion(show_output=True)
    return run


def _warm_settings(config: ScriptRunConfig) -> dict[str, Any]:
    """run_config.warm_worker and its keep-alive, checked before anything is recorded (docs/runs.md)."""
    rc = config.run_config
    if not getattr(rc, "warm_worker", False):
        return {}
    from nbml.runs.warm_shared import check_keep_alive

    keep_alive = check_keep_alive(getattr(rc, "warm_worker_keep_alive_seconds", None))
    return {"warm_worker": True, **({"warm_worker_keep_alive_seconds": keep_alive} if keep_alive else {})}


def _spark_settings(config: ScriptRunConfig, kind: str) -> dict[str, Any] | None:
    """run_config.spark for a Spark target (or framework="pyspark"): what the job's spark-submit gets."""
    rc = config.run_config
    spark = getattr(rc, "spark", None)
    if kind != "spark" and str(getattr(rc, "framework", "")).lower() != "pyspark":
        return None
    return {"framework": str(getattr(rc, "framework", "python")), **(spark.to_dict() if spark is not None else {})}


def _distributed_settings(config: ScriptRunConfig, target: Any) -> dict[str, Any] | None:
    """The checked ``distributed`` config of a submit (None for one process); errors before anything is recorded."""
    from nbml.train._distributed import check_target

    distributed = config.distributed() if hasattr(config, "distributed") else None
    if distributed is None:
        return None
    max_nodes = int(target.config.get("max_nodes") or 1) if target.target_kind == "dask" else 1
    check_target(distributed, target.target_kind, max_nodes)
    return distributed


def data_bindings_of(ws: Workspace, config: ScriptRunConfig) -> tuple[list[str], list[dict[str, Any]]]:
    """The arguments as strings, and the data references / dataset inputs they and the run config name."""
    rc = config.run_config
    refs = getattr(rc, "data_references", None) or {}
    inputs = getattr(rc, "data", None) or []
    if not refs and not inputs and all(isinstance(a, str | int | float) for a in config.arguments):
        return [str(a) for a in config.arguments], []
    from nbml.data.binding import check, extract

    arguments, bindings = extract(list(config.arguments), refs, list(inputs))
    check(ws, bindings)
    return arguments, bindings


def _progress(packages: list[str]) -> Any:
    """Print a one-line notice, then the installer's output only if building takes a while."""
    if not packages:
        return lambda _line: None
    state = {"started": False}

    def log(line: str) -> None:
        if not state["started"]:
            print(f"Preparing environment ({', '.join(packages)}); built once and reused...", file=sys.stderr,
                  flush=True)
            state["started"] = True
        if os.environ.get("NBML_VERBOSE"):
            print(line, file=sys.stderr, flush=True)

    return log
