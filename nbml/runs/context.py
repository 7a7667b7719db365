"""What a supervisor hands to a run driver: the store, logging, cancellation and heartbeats.

The supervisor's event loop drives many jobs at once (an AutoML search), so it must never wait on SQLite
or the disk: `await ctx.db(fn, *args)` runs a store call on the context's one writer thread (one
connection, calls in submission order), and `await ctx.io(fn, *args)` runs file work on a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nbml.compute.base import ComputeBackend, EnvSpec
from nbml.compute.targets import LOCAL, backend_class
from nbml.store import Store

T = TypeVar("T")
#: The longest a supervisor waits for one store call (lock waits included) before the call fails.
STORE_DEADLINE = float(os.environ.get("NBML_STORE_DEADLINE_SECONDS", "120"))


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, exc in results:
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)


class SupervisorContext:
    """Shared by the script driver and the AutoML/HyperDrive coordinators that run inside a supervisor."""

    def __init__(self, store: Store, ws_root: Path, run_id: str, log_file: Path | None = None) -> None:
        self.store = store
        self.ws_root = ws_root
        self.run_id = run_id
        self.active: set[str] = {run_id}  # runs whose heartbeat this supervisor keeps
        self.cancel_all = asyncio.Event()
        self._log_fh = open(log_file, "a", buffering=1) if log_file else None  # noqa: SIM115
        self._log_lock = threading.Lock()
        #: False runs store calls on the event loop itself (the old path; benchmarks/supervisor_stall.py).
        self.offload = True
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        # calls made while the writer thread hasn't started the last batch join it: one hand-over for them all
        self._batch: list[tuple[Callable[[], Any], asyncio.Future[Any]]] | None = None
        self._batch_lock = threading.Lock()

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call off the event loop, on the context's writer thread, within STORE_DEADLINE."""
        call = functools.partial(fn, *args, **kwargs)
        if not self.offload:
            return call()
        if self._writer is None:
            self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nbml-store")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._batch_lock:
            if self._batch is None:
                self._batch = []
                self._writer.submit(self._run_batch, loop)
            self._batch.append((call, future))
        try:
            return await asyncio.wait_for(future, STORE_DEADLINE)
        except TimeoutError:
            name = getattr(fn, "__name__", repr(fn))
            self.log(f"store call {name} took more than {STORE_DEADLINE:g} s (is the database locked?)")
            raise TimeoutError(f"The workspace database did not answer {name} within {STORE_DEADLINE:g} s; "
                               "another process may hold a lock on nbml.db.") from None
        except Exception:
            self.log_exception(f"store call {getattr(fn, '__name__', fn)} failed")
            raise

    def _run_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the writer thread: run the waiting calls in order, then hand all their results back at once."""
        with self._batch_lock:
            batch, self._batch = self._batch or [], None
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        for call, future in batch:
            try:
                results.append((future, call(), None))
            except Exception as exc:  # handed to the caller, as run_in_executor would
                results.append((future, None, exc))
            except BaseException as exc:  # (a future can't carry these)
                results.append((future, None, RuntimeError(f"the store call was interrupted: {exc!r}")))
        try:
            loop.call_soon_threadsafe(_settle, results)
        except RuntimeError:  # the loop is closed: nobody waits for these any more
            pass

    async def io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run file work (log appends, copies) on a worker thread."""
        if not self.offload:
            return fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def cancelled(self, run_id: str) -> bool:
        return self.cancel_all.is_set() or await self.db(self.store.cancel_requested, run_id)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    @property
    def record(self) -> dict[str, Any]:
        rec = self.store.get_run(self.run_id)
        assert rec is not None
        return rec

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.record["config_json"])  # type: ignore[no-any-return]

    def run_dir(self, run_id: str) -> Path:
        return self.ws_root / "runs" / run_id

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        if self._log_fh is not None:
            with self._log_lock:  # called from the loop, the writer thread and the heartbeat thread
                self._log_fh.write(line + "\n")

    def log_exception(self, message: str) -> None:
        self.log(message + "\n" + traceback.format_exc())

    def is_cancelled(self, run_id: str) -> bool:
        return self.cancel_all.is_set() or self.store.cancel_requested(run_id)

    def backend_for(self, target_name: str, env: EnvSpec | None = None) -> ComputeBackend:
        rec = self.store.get_compute(target_name)
        if rec is None:
            if target_name != LOCAL:
                raise RuntimeError(f"compute target {target_name!r} was detached from the workspace")
            rec = {"kind": "local", "config": {}}
        if env is not None and env.docker_enabled and rec["kind"] == "local":
            # Environment.docker.enabled on this machine: the job runs in a container on the local engine.
            return backend_class("docker")(target_name, {}, self.ws_root)
        return backend_class(rec["kind"])(target_name, rec["config"], self.ws_root)

    def on_log_line(self) -> Callable[[str], None]:
        return self.log
