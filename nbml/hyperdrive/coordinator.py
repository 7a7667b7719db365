"""The HyperDrive parent run's driver: samples parameters, runs script children, applies the policy."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from nbml.hyperdrive.parameters import Sampler
from nbml.hyperdrive.policy import to_terminate
from nbml.runs.context import SupervisorContext
from nbml.runs.executor import execute
from nbml.runs.script_driver import build_job
from nbml.runs.status import CANCELED, COMPLETED, FAILED, RUNNING


def _series(value: Any) -> list[float]:
    values = value if isinstance(value, list) else ([] if value is None else [value])
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            continue
    return out


async def drive(ctx: SupervisorContext) -> None:
    store, parent, cfg = ctx.store, ctx.run_id, ctx.config
    rec = ctx.record
    metric, maximize = cfg["primary_metric_name"], cfg["primary_metric_goal"] == "MAXIMIZE"
    sampler = Sampler(cfg["sampling"], "maximize" if maximize else "minimize", seed=int(cfg.get("seed", 0)))
    deadline = rec["created_at"] + float(cfg["max_duration_minutes"]) * 60 if cfg.get("max_duration_minutes") \
        else math.inf
    store.set_status(parent, RUNNING)
    backend = ctx.backend_for(rec["compute_target"])
    running: dict[asyncio.Task[str], tuple[str, int]] = {}
    finished: dict[str, list[float]] = {}
    evaluated: dict[str, int] = {}
    launched, exhausted, best = 0, False, None
    stopped: set[str] = set()
    try:
        while True:
            stop = exhausted or launched >= cfg["max_total_runs"] or ctx.is_cancelled(parent) or time.time() > deadline
            while not stop and len(running) < cfg["max_concurrent_runs"]:
                asked = sampler.ask()
                if asked is None:
                    exhausted = stop = True
                    break
                token, params = asked
                child = f"{parent}_{launched}"
                args = [*cfg["arguments"], *[str(x) for k, v in params.items() for x in (k, v)]]
                child_cfg = {**{k: cfg[k] for k in ("script", "source_directory", "snapshot_id", "env",
                                                     "environment_name", "max_run_duration_seconds")},
                             "arguments": args, "driver": "nbml.runs.script_driver"}
                store.insert_run(child, rec["experiment"], "script", rec["compute_target"], child_cfg,
                                 snapshot_id=cfg["snapshot_id"], parent_id=parent, iteration=launched)
                store.add_properties(child, {"hyperparameters": json.dumps(params)})
                job = build_job(ctx, child, child_cfg, rec["experiment"])
                job.environ["NBML_PARENT_RUN_ID"] = parent
                running[asyncio.create_task(execute(ctx, child, job, backend))] = (child, token)
                launched += 1
                stop = launched >= cfg["max_total_runs"]
            if not running:
                break
            if ctx.is_cancelled(parent) or time.time() > deadline:
                for child, _ in running.values():
                    if child not in stopped:
                        stopped.add(child)
                        store.request_cancel(child)
            done, _ = await asyncio.wait(running, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                child, token = running.pop(task)
                series = _series(store.get_metrics(child, metric).get(metric))
                finished[child] = series
                final = series[-1] if series and task.result() == COMPLETED else None
                sampler.tell(token, final)
                if series and (best is None or (max if maximize else min)(series[-1], best[1]) == series[-1]):
                    best = (child, series[-1])
                    store.add_properties(parent, {"best_child_run_id": child, "best_metric": str(series[-1])})
            live = {c: _series(store.get_metrics(c, metric).get(metric)) for c, _ in running.values()}
            due = {c: s for c, s in live.items() if len(s) > evaluated.get(c, 0)}
            for c, s in due.items():
                evaluated[c] = len(s)
            if due:
                for child in to_terminate(cfg["policy"], due, {**finished, **{c: s for c, s in live.items()
                                                                               if c not in due}}, maximize):
                    ctx.log(f"policy {cfg['policy']['name']} stops {child}")
                    store.add_properties(child, {"early_termination": cfg["policy"]["name"]})
                    store.request_cancel(child, recursive=False)
    finally:
        for child, _ in running.values():
            store.request_cancel(child)
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await backend.close()
    children = store.children(parent)
    if ctx.is_cancelled(parent):
        store.set_status(parent, CANCELED)
    elif children and all(c["status"] == FAILED for c in children):
        first = next((c["error"] for c in children if c.get("error")), "")
        store.set_status(parent, FAILED, error=f"All {len(children)} child runs failed; the first error:\n{first}")
    else:
        store.set_status(parent, COMPLETED)
