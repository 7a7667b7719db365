"""Run one job on any compute backend: prepare, stage, start, ingest, cancel, time out, finalize.

The supervisor's script driver runs one job through here; the AutoML coordinator runs many at once.
Nothing here knows which kind of target it talks to.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbml.compute.base import DRIVER_LOG, EVENTS_FILE, ComputeBackend, JobHandle, JobSpec, JobState
from nbml.errors import EnvironmentBuildError
from nbml.runs import events as ev
from nbml.runs.context import SupervisorContext
from nbml.runs.retry import DEFAULT_UNREACHABLE_TIMEOUT, JobFailed, retrying
from nbml.runs.status import CANCELED, COMPLETED, FAILED, FINALIZING, PREPARING, RUNNING, STARTING, TERMINAL

CHUNK = 4 << 20


class _Mirror:
    """Streams the job's events and log files into the store and the run's folder, by offset."""

    def __init__(self, ctx: SupervisorContext, run_id: str, backend: ComputeBackend, handle: JobHandle) -> None:
        self.ctx, self.run_id, self.backend, self.handle = ctx, run_id, backend, handle
        self.run_dir = ctx.run_dir(run_id)
        self.log_files: set[str] = {DRIVER_LOG}
        self._last_listing = 0.0

    async def events(self) -> int:
        rec = self.ctx.store.get_run(self.run_id)
        offset = int(rec["events_offset"]) if rec else 0
        total = 0
        while True:
            data = await self.backend.read(self.handle, EVENTS_FILE, offset, CHUNK)
            if not data:
                return total
            batch, used = ev.parse(data, offset, self._bad_line)
            if used == 0:
                if len(data) < CHUNK:
                    return total  # a partial last line: wait for the rest
                used = len(data)  # a line longer than a chunk (no nbml writer makes one): report, go on
                self._bad_line(offset, data[:200])
            for rel in ev.value_files(batch):  # big values are files: copy each before the row that names it
                try:
                    await self.backend.fetch(self.handle, f".nbml/uploads/{rel}", self.run_dir / rel)
                except Exception as exc:  # copied again with the outputs; readers show a note until then
                    self.ctx.log(f"run {self.run_id}: could not copy the metric value file {rel} yet: {exc}")
            self.ctx.store.ingest(self.run_id, batch, offset + used)
            offset += used
            total += len(batch)

    def _bad_line(self, offset: int, line: bytes) -> None:
        self.ctx.log(f"run {self.run_id}: events.jsonl at byte {offset} is not a JSON event, not ingested: "
                     f"{line[:200]!r}")

    async def logs(self, force_listing: bool = False) -> None:
        now = time.monotonic()
        if force_listing or now - self._last_listing > 2.0:
            self._last_listing = now
            for rel, _size in await self.backend.list_files(self.handle, "logs"):
                self.log_files.add(rel)
        for rel in sorted(self.log_files):
            dest = self.run_dir / rel
            offset = dest.stat().st_size if dest.exists() else 0
            while True:
                data = await self.backend.read(self.handle, rel, offset, CHUNK)
                if not data:
                    break
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "ab") as fh:
                    fh.write(data)
                offset += len(data)
                if len(data) < CHUNK:
                    break

    async def pump(self, force_listing: bool = False) -> int:
        n = await self.events()
        await self.logs(force_listing)
        return n

    async def outputs(self) -> None:
        for prefix, strip in (("outputs", ""), (".nbml/uploads", ".nbml/uploads/"), ("logs", "")):
            for rel, _size in await self.backend.list_files(self.handle, prefix):
                await self.backend.fetch(self.handle, rel, self.run_dir / rel[len(strip):])


def error_from_log(text: str) -> str | None:
    """The last Python traceback in a log, or None."""
    idx = text.rfind("Traceback (most recent call last):")
    if idx < 0:
        return None
    block = text[idx:].strip()
    lines = block.splitlines()
    # Stop at the exception line: the first unindented line after the header.
    for i, line in enumerate(lines[1:], start=1):
        if line and not line.startswith((" ", "\t")) and not line.startswith("During handling"):
            return "\n".join(lines[: i + 1])[-6000:]
    return block[-6000:]


async def execute(ctx: SupervisorContext, run_id: str, job: JobSpec, backend: ComputeBackend,
                  on_progress: Callable[[str], None] | None = None) -> str:
    """Run `job` for run `run_id` to a terminal state and return that state. Never raises for job failures."""
    store = ctx.store
    ctx.active.add(run_id)
    unreachable = float(backend.config.get("unreachable_timeout_seconds", DEFAULT_UNREACHABLE_TIMEOUT))
    handle: JobHandle | None = None
    mirror: _Mirror | None = None
    final, error = FAILED, None
    try:
        if ctx.is_cancelled(run_id):
            store.set_status(run_id, CANCELED)
            return CANCELED
        store.set_status(run_id, PREPARING)
        prep_log = _prep_logger(ctx, run_id)
        python = await retrying(ctx, run_id, "preparing the environment", lambda: backend.prepare(job.env, prep_log),
                                 unreachable)
        if ctx.is_cancelled(run_id):
            store.set_status(run_id, CANCELED)
            return CANCELED
        store.set_status(run_id, STARTING)
        job_dir = await retrying(ctx, run_id, "uploading the snapshot", lambda: backend.stage(job, prep_log),
                                  unreachable)
        handle = await retrying(ctx, run_id, "starting the job", lambda: backend.start(job, python, job_dir),
                                 unreachable)
        store.set_handle(run_id, handle.to_dict())
        store.set_status(run_id, RUNNING)
        mirror = _Mirror(ctx, run_id, backend, handle)
        final, error = await _watch(ctx, run_id, job, backend, handle, mirror, unreachable)
    except JobFailed as exc:
        final, error = FAILED, str(exc)
    except EnvironmentBuildError as exc:
        final, error = FAILED, str(exc)
    except Exception as exc:  # a bug or an unexpected target error: the run must still end
        ctx.log_exception(f"run {run_id} failed in the supervisor")
        final, error = FAILED, f"{type(exc).__name__}: {exc}"
    finally:
        if handle is not None and mirror is not None:
            final, error = await _finalize(ctx, run_id, backend, handle, mirror, final, error, unreachable)
        store.set_status(run_id, final, error=error)
        _close_children(ctx, run_id, final)
        ctx.active.discard(run_id)
        if handle is not None:
            try:
                await backend.cleanup(handle)
            except Exception:
                ctx.log_exception(f"cleanup of {run_id} failed")
    return final


def _prep_logger(ctx: SupervisorContext, run_id: str) -> Callable[[str], None]:
    path = ctx.run_dir(run_id) / "nbml-logs" / "prepare_log.txt"
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        with open(path, "a") as fh:
            fh.write(line + "\n")

    return log


async def _watch(ctx: SupervisorContext, run_id: str, job: JobSpec, backend: ComputeBackend, handle: JobHandle,
                 mirror: _Mirror, unreachable: float) -> tuple[str, str | None]:
    started = time.monotonic()
    interval = 0.1
    while True:
        got = await retrying(ctx, run_id, "reading the job's events", mirror.pump, unreachable)
        if ctx.is_cancelled(run_id):
            # Checked before the job's state: a job stopped by the cancel ends Canceled, whatever its exit code.
            await backend.cancel(handle)
            return CANCELED, None
        state: JobState = await retrying(ctx, run_id, "checking the job", lambda: backend.poll(handle), unreachable)
        if state.state == "exited":
            if state.exit_code == 0:
                return COMPLETED, None
            reason = f"\n{state.reason}" if state.reason else ""
            return FAILED, f"exit code {state.exit_code}{reason}"  # the traceback is added in _finalize
        if state.state == "lost":
            return FAILED, f"The job's process was lost: {state.reason}"
        if job.timeout_seconds and time.monotonic() - started > job.timeout_seconds:
            await backend.cancel(handle)
            return FAILED, (f"The run exceeded max_run_duration_seconds={job.timeout_seconds:g} and was stopped; "
                            "raise the limit if it needs longer.")
        interval = 0.1 if got else min(interval * 1.5, 0.5)
        await asyncio.sleep(interval)


async def _finalize(ctx: SupervisorContext, run_id: str, backend: ComputeBackend, handle: JobHandle, mirror: _Mirror,
                    final: str, error: str | None, unreachable: float) -> tuple[str, str | None]:
    ctx.store.set_status(run_id, FINALIZING)
    try:
        await retrying(ctx, run_id, "collecting events and logs", lambda: mirror.pump(force_listing=True), unreachable)
        await retrying(ctx, run_id, "copying outputs back", mirror.outputs, unreachable)
    except Exception as exc:
        ctx.log_exception(f"finalizing {run_id}")
        if final == COMPLETED:
            final, error = FAILED, f"The job finished but its outputs could not be copied back: {exc}"
    if final == FAILED and error and error.startswith("exit code"):
        log_path = ctx.run_dir(run_id) / DRIVER_LOG
        text = log_path.read_text(errors="replace")[-200_000:] if log_path.exists() else ""
        code, _, reason = error.partition("\n")
        tb = error_from_log(text)
        error = tb or f"The script ended with {code}. Last output:\n" + "\n".join(text.splitlines()[-20:])
        if reason:
            error += f"\n{reason}"
    return final, error


def _close_children(ctx: SupervisorContext, run_id: str, final: str) -> None:
    """Child runs created inside a script end with it if the script didn't end them."""
    for child in ctx.store.children(run_id):
        if child["kind"] == "child" and child["status"] not in TERMINAL:
            ctx.store.set_status(child["run_id"], COMPLETED if final == COMPLETED else final)


def read_config(ctx: SupervisorContext) -> dict[str, Any]:
    return json.loads(ctx.record["config_json"])  # type: ignore[no-any-return]


def first_line_of_error(error: str | None) -> str:
    if not error:
        return ""
    lines = [ln for ln in error.strip().splitlines() if ln.strip()]
    return re.sub(r"\s+", " ", lines[-1]) if lines else ""


def job_files_root(ws_root: Path) -> Path:
    return ws_root / "snapshots" / "blobs"
