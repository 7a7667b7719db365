"""The HyperDrive parent run's driver: samples parameters, runs script children, applies the policy.

Children go through the shared child loop (`nbml.runs.children`). A driver started for a parent that
already has children (its supervisor died and a new one took over) resumes: the sampler replays the
draws made so far (Bayesian trials are rebuilt from their stored records), finished children count
towards the best run and the policy, running ones are adopted, and numbering goes on.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from nbml.data.binding import attach_or_fail
from nbml.hyperdrive.parameters import Sampler
from nbml.hyperdrive.policy import to_terminate
from nbml.runs.children import ChildLoop, child_config, existing_children
from nbml.runs.context import SupervisorContext
from nbml.runs.script_driver import build_job
from nbml.runs.status import CANCELED, COMPLETED, FAILED, RUNNING, TERMINAL
from nbml.runs.warm import script_imports, warm_backend


def _series(value: Any) -> list[float]:
    values = value if isinstance(value, list) else ([] if value is None else [value])
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            continue
    return out


class _Search:
    """The parent's search state: sampler, finished series, best child."""

    def __init__(self, ctx: SupervisorContext) -> None:
        self.ctx, self.store, self.parent, self.cfg = ctx, ctx.store, ctx.run_id, ctx.config
        self.rec = ctx.record
        self.metric, self.maximize = self.cfg["primary_metric_name"], self.cfg["primary_metric_goal"] == "MAXIMIZE"
        self.sampler = Sampler(self.cfg["sampling"], "maximize" if self.maximize else "minimize",
                               seed=int(self.cfg.get("seed", 0)))
        minutes = self.cfg.get("max_duration_minutes")
        self.deadline = self.rec["created_at"] + float(minutes) * 60 if minutes else math.inf
        self.finished: dict[str, list[float]] = {}
        self.evaluated: dict[str, int] = {}
        self.best: tuple[str, float] | None = None

    def series(self, child: str) -> list[float]:
        return _series(self.store.get_metrics(child, self.metric).get(self.metric))

    def child_job(self, child: str, child_cfg: dict[str, Any]) -> Any:
        job = build_job(self.ctx, child, child_cfg, self.rec["experiment"])
        job.environ["NBML_PARENT_RUN_ID"] = self.parent
        return job

    def record(self, n: int, params: dict[str, Any], token: int) -> tuple[str, dict[str, Any]]:
        cfg, child = self.cfg, f"{self.parent}_{n}"
        args = [*cfg["arguments"], *[str(x) for k, v in params.items() for x in (k, v)]]
        child_cfg = {**{k: cfg[k] for k in ("script", "source_directory", "snapshot_id", "env",
                                             "environment_name", "max_run_duration_seconds")},
                     **{k: cfg[k] for k in ("data", "resources") if cfg.get(k)},
                     "arguments": args, "driver": "nbml.runs.script_driver",
                     "search_trial": self.sampler.records.get(token)}
        self.store.insert_run(child, self.rec["experiment"], "script", self.rec["compute_target"], child_cfg,
                              snapshot_id=cfg["snapshot_id"], parent_id=self.parent, iteration=n)
        self.store.add_properties(child, {"hyperparameters": json.dumps(params)})
        return child, child_cfg

    async def launch(self, loop: ChildLoop[int | None], child: str, child_cfg: dict[str, Any],
                     token: int | None) -> None:
        """Start (or adopt) a child; its data references become paths on the target first."""
        job = self.child_job(child, child_cfg)
        if child_cfg.get("data") and not await attach_or_fail(self.ctx, job, child_cfg["data"], loop.backend):
            self.finish(child, FAILED, token)  # attach_or_fail set the child Failed with the reason
            return
        loop.launch(child, job, token)

    def finish(self, child: str, status: str, token: int | None) -> None:
        series = self.series(child)
        self.finished[child] = series
        self.sampler.tell(token, series[-1] if series and status == COMPLETED else None)
        if series and (self.best is None or (max if self.maximize else min)(series[-1], self.best[1]) == series[-1]):
            self.best = (child, series[-1])
            self.store.add_properties(self.parent, {"best_child_run_id": child, "best_metric": str(series[-1])})

    def apply_policy(self, loop: ChildLoop[int | None]) -> None:
        policy = self.cfg["policy"]
        live = {c: self.series(c) for c, _ in loop.running}  # a policy can stop these
        ended = {c: self.series(c) for c, _ in loop.finalizing}  # their job ended: they only count as others
        due = {c: s for c, s in live.items() if len(s) > self.evaluated.get(c, 0)}
        for c, s in due.items():
            self.evaluated[c] = len(s)
        if not due:
            return
        others = {**self.finished, **ended, **{c: s for c, s in live.items() if c not in due}}
        for child in to_terminate(policy, due, others, self.maximize):
            self.ctx.log(f"policy {policy['name']} stops {child}")
            self.store.add_properties(child, {"early_termination": policy["name"]})
            self.store.request_cancel(child, recursive=False)


async def drive(ctx: SupervisorContext) -> None:
    st = _Search(ctx)
    store, parent, cfg = ctx.store, ctx.run_id, ctx.config
    store.set_status(parent, RUNNING)
    # Trials run in warm workers where the target has them (nbml.runs.warm): the packages the script imports
    # are imported once per worker; each trial is still a child run with its own folder, logs and metrics.
    backend = warm_backend(ctx, ctx.backend_for(st.rec["compute_target"]), cfg["max_concurrent_runs"],
                           preload=script_imports(ctx.ws_root, cfg), config=cfg)
    loop: ChildLoop[int | None] = ChildLoop(ctx, backend, cfg["max_concurrent_runs"])
    found = existing_children(ctx, parent)
    past = []
    for rec in found.all:
        series = st.series(rec["run_id"]) if rec["status"] in TERMINAL else []
        value = series[-1] if series and rec["status"] == COMPLETED else None
        past.append((child_config(rec).get("search_trial"), value, rec["status"] not in TERMINAL))
    tokens = st.sampler.resume(past)
    for rec, token in zip(found.all, tokens, strict=True):
        if rec["status"] in TERMINAL:
            st.finish(rec["run_id"], rec["status"], None)  # already told to the sampler by resume()
        else:
            await st.launch(loop, rec["run_id"], child_config(rec), token)
    launched, exhausted = len(found.all), False
    try:
        while True:
            stop = exhausted or launched >= cfg["max_total_runs"] or ctx.is_cancelled(parent) \
                or time.time() > st.deadline
            while not stop and loop.free:
                asked = st.sampler.ask()
                if asked is None:
                    exhausted = stop = True
                    break
                token, params = asked
                child, child_cfg = st.record(launched, params, token)
                await st.launch(loop, child, child_cfg, token)
                launched += 1
                stop = launched >= cfg["max_total_runs"]
            if not len(loop):
                break
            if ctx.is_cancelled(parent) or time.time() > st.deadline:
                loop.cancel_all()
            for done in await loop.wait(1.0):
                st.finish(done.run_id, done.status, done.payload)
            st.apply_policy(loop)
    finally:
        await loop.close()
        await backend.close()
    children = store.children(parent)
    if ctx.is_cancelled(parent):
        store.set_status(parent, CANCELED)
    elif children and all(c["status"] == FAILED for c in children):
        first = next((c["error"] for c in children if c.get("error")), "")
        store.set_status(parent, FAILED, error=f"All {len(children)} child runs failed; the first error:\n{first}")
    else:
        store.set_status(parent, COMPLETED)

