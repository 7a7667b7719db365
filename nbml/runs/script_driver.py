"""The supervisor driver of a script run (ScriptRunConfig): one job on the run's compute target."""

from __future__ import annotations

import json

from nbml.compute.base import SPARK_SETTINGS, EnvSpec, JobSpec
from nbml.runs.context import SupervisorContext
from nbml.runs.executor import execute
from nbml.snapshot import load_manifest


def build_job(ctx: SupervisorContext, run_id: str, config: dict, experiment: str) -> JobSpec:  # type: ignore[type-arg]
    argv = [config["script"], *[str(a) for a in config.get("arguments", [])]]
    extra: dict[str, bytes] = {}
    if config.get("distributed"):  # one job whose process is the rank launcher (nbml.compute._ranks)
        from nbml.compute._ranks import job_files

        argv, extra = job_files(config["distributed"], argv)
    if config.get("spark"):  # a Spark target reads its spark-submit settings here (nbml.compute.spark)
        extra[SPARK_SETTINGS] = json.dumps(config["spark"]).encode()
    return JobSpec(
        run_id=run_id,
        argv=argv,
        extra_files=extra,
        env=EnvSpec.from_dict(config["env"]),
        files=load_manifest(ctx.ws_root, config["snapshot_id"]),
        blob_dir=ctx.ws_root / "snapshots" / "blobs",
        environ={"NBML_EXPERIMENT": experiment, "NBML_WORKSPACE": str(ctx.ws_root)},
        timeout_seconds=config.get("max_run_duration_seconds"),
        resources=dict(config.get("resources") or {}),
        node_count=int((config.get("distributed") or {}).get("node_count") or 1),
    )


async def drive(ctx: SupervisorContext) -> None:
    rec = ctx.record
    job = build_job(ctx, ctx.run_id, ctx.config, rec["experiment"])
    backend = ctx.backend_for(rec["compute_target"], job.env)
    if ctx.config.get("warm_worker"):  # opted in: a warm worker of the workspace's shared pool runs the script
        from nbml.runs.warm_shared import shared_backend

        backend = shared_backend(ctx, backend, ctx.config)
    try:
        if ctx.config.get("data"):  # data references become real paths on this target
            from nbml.data.binding import attach_or_fail

            if not await attach_or_fail(ctx, job, ctx.config["data"], backend):
                return
        await execute(ctx, ctx.run_id, job, backend)
    finally:
        await backend.close()
