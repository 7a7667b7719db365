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

from nbml.compute import _staging
from nbml.compute._ranks import failure_message as rank_failure
from nbml.compute._ranks import is_distributed
from nbml.compute.base import DRIVER_LOG, EVENTS_FILE, ComputeBackend, JobHandle, JobSpec, JobState
from nbml.errors import EnvironmentBuildError
from nbml.runs import events as ev
from nbml.runs.context import SupervisorContext
from nbml.runs.retry import DEFAULT_UNREACHABLE_TIMEOUT, JobFailed, retrying
from nbml.runs.status import CANCELED, COMPLETED, FAILED, FINALIZING, PREPARING, RUNNING, STARTING, TERMINAL

CHUNK = 4 << 20
#: What is copied back when a job ends (job folder prefix, and what is cut from its paths in the run folder).
OUTPUT_PREFIXES = (("outputs", ""), (".nbml/uploads", ".nbml/uploads/"), ("logs", ""))
#: A run property set just before a job is started: a supervisor that finds it but no handle knows a job
#: may have started that it can't find.
JOB_STARTING = "nbml.job_starting"
LOST = "The job's process was lost"


class _Mirror:
    """Streams the job's events and log files into the store and the run's folder, by offset.

    Both resume where the last supervisor stopped: events from the run's stored `events_offset` (ingestion
    is idempotent by offset), logs from the size of the local copies.
    """

    def __init__(self, ctx: SupervisorContext, run_id: str, backend: ComputeBackend, handle: JobHandle,
                 job: JobSpec) -> None:
        self.ctx, self.run_id, self.backend, self.handle = ctx, run_id, backend, handle
        self.run_dir = ctx.run_dir(run_id)
        self.log_files: set[str] = {DRIVER_LOG}
        #: Folders listed for new log files every 2 s: `logs` (the script's own), and for a distributed job
        #: `nbml-logs` (each rank's output, ranks.jsonl). A single-process job writes only DRIVER_LOG there,
        #: so it is not listed: one listing fewer per poll, which on SSH and Dask targets is a round trip.
        self.log_prefixes = ("logs", "nbml-logs") if is_distributed(job.argv, job.extra_files, job.node_count) \
            else ("logs",)
        self._last_listing = 0.0
        self._offset: int | None = None

    async def events(self) -> int:
        await self._load_offset()
        total = 0
        while True:
            assert self._offset is not None
            data = await self.backend.read(self.handle, EVENTS_FILE, self._offset, CHUNK)
            if not data:
                return total
            batch, used = await self.ctx.io(self._parse, data, self._offset)  # off the loop
            if used == 0:
                return total  # a partial last line: wait for the rest
            total += await self._ingest(batch, used)

    async def _load_offset(self) -> None:
        if self._offset is None:
            rec = await self.ctx.db(self.ctx.store.get_run, self.run_id)
            self._offset = int(rec["events_offset"]) if rec else 0

    def _parse(self, data: bytes, offset: int) -> tuple[list[tuple[int, dict[str, Any]]], int]:
        """The events in `data` (read from `offset`) and the bytes they use; 0 for a partial last line."""
        batch, used = ev.parse(data, offset, self._bad_line) if data else ([], 0)
        if used == 0 and len(data) >= CHUNK:
            used = len(data)  # a line longer than a chunk (no nbml writer makes one): report, go on
            self._bad_line(offset, data[:200])
        return batch, used

    async def _ingest(self, batch: list[tuple[int, dict[str, Any]]], used: int) -> int:
        """Store `batch` (the next `used` bytes of the events), after copying the value files it names."""
        assert self._offset is not None
        for rel in ev.value_files(batch):  # big values are files: copy each before the row that names it
            try:
                await self.backend.fetch(self.handle, f".nbml/uploads/{rel}", self.run_dir / rel)
            except Exception as exc:  # copied again with the outputs; readers show a note until then
                self.ctx.log(f"run {self.run_id}: could not copy the metric value file {rel} yet: {exc}")
        await self.ctx.db(self.ctx.store.ingest, self.run_id, batch, self._offset + used)
        self._offset += used
        return len(batch)

    def _listing_due(self, force: bool) -> bool:
        """Whether to list the log folders for new files now (every 2 s, or when `force`d)."""
        now = time.monotonic()
        if force or now - self._last_listing > 2.0:
            self._last_listing = now
            return True
        return False

    def _bad_line(self, offset: int, line: bytes) -> None:
        self.ctx.log(f"run {self.run_id}: events.jsonl at byte {offset} is not a JSON event, not ingested: "
                     f"{line[:200]!r}")

    async def logs(self, force_listing: bool = False) -> None:
        if self._listing_due(force_listing):
            for prefix in self.log_prefixes:
                for rel, _size in await self.backend.list_files(self.handle, prefix):
                    self.log_files.add(rel)
        for rel in sorted(self.log_files):
            dest = self.run_dir / rel
            offset = await self.ctx.io(_size_of, dest)
            while True:
                data = await self.backend.read(self.handle, rel, offset, CHUNK)
                if not data:
                    break
                await self.ctx.io(_append, dest, data)
                offset += len(data)
                if len(data) < CHUNK:
                    break

    async def pump(self, force_listing: bool = False) -> int:
        if self.backend.local_files:
            return await self._pump_local(force_listing)
        n = await self.events()
        await self.logs(force_listing)
        return n

    async def outputs(self) -> None:
        if self.backend.local_files:
            await self.ctx.io(self._outputs_local)
            return
        for prefix, strip in OUTPUT_PREFIXES:
            for rel, _size in await self.backend.list_files(self.handle, prefix):
                await self.backend.fetch(self.handle, rel, self.run_dir / rel[len(strip):])

    # -- a job folder this process reads directly: one file-thread call per pass, one store call per batch ----
    async def _pump_local(self, force_listing: bool) -> int:
        await self._load_offset()
        listing = self._listing_due(force_listing)
        total = 0
        while True:
            assert self._offset is not None
            batch, used, more = await self.ctx.io(self._read_local, self._offset, listing)
            listing = False
            if used:
                total += await self._ingest(batch, used)
            if not more:
                return total

    def _read_local(self, offset: int, listing: bool) -> tuple[list[tuple[int, dict[str, Any]]], int, bool]:
        """(events parsed from `offset`, bytes used, whether more may follow), the new log bytes appended."""
        root = Path(self.handle.job_dir)
        data = _staging.read_bytes(root / EVENTS_FILE, offset, CHUNK, root)
        batch, used = self._parse(data, offset)
        if listing:
            for prefix in self.log_prefixes:
                self.log_files.update(rel for rel, _size in _staging.list_tree(root, prefix))
        for rel in sorted(self.log_files):
            dest = self.run_dir / rel
            at = _size_of(dest)
            while True:
                chunk = _staging.read_bytes(root / rel, at, CHUNK, root)
                if not chunk:
                    break
                _append(dest, chunk)
                at += len(chunk)
                if len(chunk) < CHUNK:
                    break
        return batch, used, len(data) >= CHUNK

    def _outputs_local(self) -> None:
        root = Path(self.handle.job_dir)
        for prefix, strip in OUTPUT_PREFIXES:
            for rel, _size in _staging.list_tree(root, prefix):
                _staging.copy_out(root, rel, self.run_dir / rel[len(strip):])


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _append(path: Path, data: bytes) -> None:
    with _staging.open_creating(path, "ab") as fh:
        fh.write(data)


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
                  on_progress: Callable[[str], None] | None = None,
                  on_exit: Callable[[], None] | None = None) -> str:
    """Run `job` for run `run_id` to a terminal state and return that state. Never raises for job failures.

    Adoption: when the run record already holds a job handle (the job was started by a supervisor that
    died), prepare, stage and start are skipped: the job is reattached with ``JobHandle.from_dict``, its
    events are ingested from the stored ``events_offset``, its logs mirrored from the size of the local
    copies, and the run is finalized as usual (outputs and logs copied back, the job's real exit status,
    cleanup). AutoML and HyperDrive coordinators call this the same way for children they adopt. A run
    without a handle starts from prepare, unless its last supervisor had already begun starting the job
    (then nbml can't tell whether a job runs, and the run ends Failed saying so). Only a job that is gone
    with no exit code ends Failed for being lost. `on_exit` is called once the job has ended by itself on the
    target (an exit code was seen) and the run is Finalizing: the child loop starts the next child meanwhile.
    """
    store = ctx.store
    ctx.active.add(run_id)
    unreachable = float(backend.config.get("unreachable_timeout_seconds", DEFAULT_UNREACHABLE_TIMEOUT))
    handle: JobHandle | None = None
    mirror: _Mirror | None = None
    final, error = FAILED, None
    rec, props, cancel_flag = await ctx.db(_opening, store, run_id)  # one store call for the three reads
    stored = json.loads(rec["handle_json"]) if rec is not None and rec.get("handle_json") else None
    if stored:
        handle = JobHandle.from_dict(stored)
        final, _error = await _adopt(ctx, run_id, job, backend, handle, _Mirror(ctx, run_id, backend, handle, job), rec,
                                     unreachable, on_exit)
        return final
    try:
        if props.get(JOB_STARTING):
            raise JobFailed(
                "The run's supervisor stopped while it was starting the job (at "
                f"{props[JOB_STARTING]}), before it recorded the job's handle; the new supervisor found no "
                "handle, so it can't tell whether the job runs or find its results. Submit the run again.")
        if ctx.cancel_all.is_set() or cancel_flag:
            final = CANCELED
            return final
        await ctx.db(store.set_status, run_id, PREPARING)
        prep_log = _prep_logger(ctx, run_id)
        python = await retrying(ctx, run_id, "preparing the environment", lambda: backend.prepare(job.env, prep_log),
                                 unreachable)
        if ctx.cancel_all.is_set() or await ctx.db(_cancelled_else_status, store, run_id, STARTING):
            final = CANCELED
            return final
        job_dir = await retrying(ctx, run_id, "uploading the snapshot", lambda: backend.stage(job, prep_log),
                                  unreachable)
        await ctx.db(store.add_properties, run_id, {JOB_STARTING: time.strftime("%Y-%m-%d %H:%M:%S")})
        handle = await retrying(ctx, run_id, "starting the job", lambda: backend.start(job, python, job_dir),
                                 unreachable)
        await ctx.db(_handle_and_running, store, run_id, handle.to_dict())
        mirror = _Mirror(ctx, run_id, backend, handle, job)
        mirror._offset = int(rec["events_offset"]) if rec else 0  # read above: nothing ingests before the start
        final, error = await _watch(ctx, run_id, job, backend, handle, mirror, unreachable, time.monotonic())
    except JobFailed as exc:
        final, error = FAILED, str(exc)
    except EnvironmentBuildError as exc:
        final, error = FAILED, str(exc)
    except Exception as exc:  # a bug or an unexpected target error: the run must still end
        ctx.log_exception(f"run {run_id} failed in the supervisor")
        final, error = FAILED, f"{type(exc).__name__}: {exc}"
    finally:
        final, error = await _end(ctx, run_id, backend, handle, mirror, final, error, unreachable, on_exit)
    return final


async def _adopt(ctx: SupervisorContext, run_id: str, job: JobSpec, backend: ComputeBackend, handle: JobHandle,
                 mirror: _Mirror, rec: dict[str, Any] | None, unreachable: float,
                 on_exit: Callable[[], None] | None = None) -> tuple[str, str | None]:
    """Take over a job a dead supervisor started: watch it from where that one stopped."""
    assert rec is not None
    ctx.log(f"adopting the job of {run_id} ({handle.target}, {handle.job_dir}) from events offset "
            f"{rec['events_offset']}")
    final, error = FAILED, None
    try:
        if rec["status"] not in (RUNNING, FINALIZING):
            await ctx.db(ctx.store.set_status, run_id, RUNNING)
        # The run's time limit counts from when the job started, not from the adoption.
        started = time.monotonic() - max(0.0, time.time() - (rec.get("started_at") or time.time()))
        final, error = await _watch(ctx, run_id, job, backend, handle, mirror, unreachable, started)
        if final == FAILED and error and error.startswith(LOST):
            error += " (found when a new supervisor took the run over from one that had stopped)"
    except JobFailed as exc:
        final, error = FAILED, str(exc)
    except Exception as exc:
        ctx.log_exception(f"adopting {run_id} failed")
        final, error = FAILED, f"{type(exc).__name__}: {exc}"
    finally:
        final, error = await _end(ctx, run_id, backend, handle, mirror, final, error, unreachable, on_exit)
    return final, error


async def _end(ctx: SupervisorContext, run_id: str, backend: ComputeBackend, handle: JobHandle | None,
               mirror: _Mirror | None, final: str, error: str | None, unreachable: float,
               on_exit: Callable[[], None] | None = None) -> tuple[str, str | None]:
    """Finalize (copy back, real exit status), record the terminal state, then release the job's folder."""
    if handle is not None and mirror is not None:
        final, error = await _finalize(ctx, run_id, backend, handle, mirror, final, error, unreachable, on_exit)
    await ctx.db(_terminal, ctx, run_id, final, error)
    ctx.active.discard(run_id)
    if handle is not None:
        try:
            await backend.cleanup(handle)
        except Exception:
            ctx.log_exception(f"cleanup of {run_id} failed")
    return final, error


#: How `_watch` begins the error of a job that exited by itself with a non-zero code (`_finalize` adds the
#: traceback after it); no other end of `_watch` begins so.
EXIT_CODE = "exit code "


def _ended_by_itself(final: str, error: str | None) -> bool:
    """Whether `_watch` ended on the job's own exit (not a cancel, a time limit or a lost job)."""
    return final == COMPLETED or (final == FAILED and (error or "").startswith(EXIT_CODE))


def _exited(final: str, error: str | None, on_exit: Callable[[], None] | None) -> None:
    """Tell `on_exit` when the job ended by itself: its slot is free while the run finalizes."""
    if on_exit is not None and _ended_by_itself(final, error):
        on_exit()


def _opening(store: Any, run_id: str) -> tuple[dict[str, Any] | None, dict[str, Any], bool]:
    """What `execute` reads first: the run, its properties, whether it was cancelled."""
    return store.get_run(run_id), store.get_properties(run_id), store.cancel_requested(run_id)


def _cancelled_else_status(store: Any, run_id: str, status: str) -> bool:
    """Whether the run was cancelled; if not, move it to `status` (one store call)."""
    if store.cancel_requested(run_id):
        return True
    store.set_status(run_id, status)
    return False


def _handle_and_running(store: Any, run_id: str, handle: dict[str, Any]) -> None:
    store.set_handle(run_id, handle)
    store.set_status(run_id, RUNNING)


def _terminal(ctx: SupervisorContext, run_id: str, final: str, error: str | None) -> None:
    ctx.store.set_status(run_id, final, error=error)
    _close_children(ctx, run_id, final)


def _prep_logger(ctx: SupervisorContext, run_id: str) -> Callable[[str], None]:
    path = ctx.run_dir(run_id) / "nbml-logs" / "prepare_log.txt"

    def log(line: str) -> None:  # called from the backends' worker threads while they prepare
        with _staging.open_creating(path, "a") as fh:
            fh.write(line + "\n")

    return log


async def _watch(ctx: SupervisorContext, run_id: str, job: JobSpec, backend: ComputeBackend, handle: JobHandle,
                 mirror: _Mirror, unreachable: float, started: float) -> tuple[str, str | None]:
    interval = 0.1
    while True:
        got = await retrying(ctx, run_id, "reading the job's events", mirror.pump, unreachable)
        if await ctx.cancelled(run_id):
            # Checked before the job's state: a job stopped by the cancel ends Canceled, whatever its exit code.
            await backend.cancel(handle)
            return CANCELED, None
        state: JobState = await retrying(ctx, run_id, "checking the job", lambda: backend.poll(handle), unreachable)
        if state.state == "exited":
            if state.exit_code == 0:
                return COMPLETED, None
            reason = f"\n{state.reason}" if state.reason else ""
            return FAILED, f"{EXIT_CODE}{state.exit_code}{reason}"  # the traceback is added in _finalize
        if state.state == "lost":
            return FAILED, f"{LOST}: {state.reason}"
        if job.timeout_seconds and time.monotonic() - started > job.timeout_seconds:
            await backend.cancel(handle)
            return FAILED, (f"The run exceeded max_run_duration_seconds={job.timeout_seconds:g} and was stopped; "
                            "raise the limit if it needs longer.")
        interval = 0.1 if got else min(interval * 1.5, 0.5)
        await asyncio.sleep(interval)


async def _finalize(ctx: SupervisorContext, run_id: str, backend: ComputeBackend, handle: JobHandle, mirror: _Mirror,
                    final: str, error: str | None, unreachable: float,
                    on_exit: Callable[[], None] | None = None) -> tuple[str, str | None]:
    await ctx.db(ctx.store.set_status, run_id, FINALIZING)
    _exited(final, error, on_exit)  # the run says Finalizing before its slot goes to the next child
    try:
        await retrying(ctx, run_id, "collecting events and logs", lambda: mirror.pump(force_listing=True), unreachable)
        await retrying(ctx, run_id, "copying outputs back", mirror.outputs, unreachable)
    except Exception as exc:
        ctx.log_exception(f"finalizing {run_id}")
        if final == COMPLETED:
            final, error = FAILED, f"The job finished but its outputs could not be copied back: {exc}"
    if final == FAILED and error and _ended_by_itself(final, error):
        text = await ctx.io(_tail, ctx.run_dir(run_id) / DRIVER_LOG)
        code, _, reason = error.partition("\n")
        tb = await ctx.io(rank_failure, ctx.run_dir(run_id)) or error_from_log(text)  # which rank, if one did
        error = tb or f"The script ended with {code}. Last output:\n" + "\n".join(text.splitlines()[-20:])
        if reason:
            error += f"\n{reason}"
    return final, error


def _tail(path: Path, size: int = 200_000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


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
