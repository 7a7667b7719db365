"""The supervisor's event loop never waits on the store: a locked database holds up one call, not the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from nbml.runs import context as context_mod
from nbml.runs.context import SupervisorContext


def test_a_locked_store_stalls_neither_the_loop_nor_forever_and_the_error_reaches_the_log(ws, tmp_path,
                                                                                        monkeypatch):
    ws.store.insert_run("r1", "loop", "script", "local", {})
    monkeypatch.setattr(context_mod, "STORE_DEADLINE", 1.0)
    log = tmp_path / "supervisor_log.txt"
    ctx = SupervisorContext(ws.store, ws.path, "r1", log)
    blocker = sqlite3.connect(ws.path / "nbml.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock (a real SQLite lock)

    async def scenario() -> tuple[float, BaseException | None]:
        worst, error = 0.0, None

        async def ticker() -> None:
            nonlocal worst
            while True:
                t0 = time.perf_counter()
                await asyncio.sleep(0.01)
                worst = max(worst, time.perf_counter() - t0 - 0.01)

        tick = asyncio.create_task(ticker())
        try:
            await ctx.db(ws.store.set_status, "r1", "Queued")
        except BaseException as exc:
            error = exc
        tick.cancel()
        return worst, error

    try:
        worst, error = asyncio.run(scenario())
    finally:
        blocker.execute("ROLLBACK")  # lets the writer thread's call finish
        blocker.close()
        ctx.close()
    assert isinstance(error, TimeoutError) and "nbml.db" in str(error)
    assert worst < 0.5  # the loop kept running while the call waited on the lock
    assert "store call set_status took more than 1 s" in log.read_text()


@pytest.mark.parametrize("offload", [True, False])
def test_store_calls_through_the_context_keep_their_order(ws, offload):
    ws.store.insert_run("r2", "loop", "script", "local", {})
    ctx = SupervisorContext(ws.store, ws.path, "r2")
    ctx.offload = offload

    async def scenario() -> None:
        for status in ("Queued", "Preparing", "Starting", "Running", "Completed"):
            await ctx.db(ws.store.set_status, "r2", status)

    asyncio.run(scenario())
    ctx.close()
    assert [h["status"] for h in ws.store.status_history("r2")] == ["NotStarted", "Queued", "Preparing", "Starting",
                                                                    "Running", "Completed"]
