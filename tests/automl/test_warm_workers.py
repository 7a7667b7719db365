"""Warm workers (nbml.runs.warm): children of one parent run in long-lived worker processes on the local target,
each child still a run of its own, with its own status, logs, metrics, outputs, time limit and cancel."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import psutil
from warm_parent import WarmParent

from nbml import Workspace
from nbml.runs.warm import WarmBackend
from nbml.snapshot import take_snapshot

CHILD = """
import os, sys, time
from nbml import Run
mode, n = sys.argv[1], int(sys.argv[2])
run = Run.get_context()
open("outputs/worker.txt", "w").write(str(os.getppid()))
print(f"hello from child {n}", flush=True)
print(f"a warning from child {n}", file=sys.stderr, flush=True)
run.log("n", n)
if mode == "wait":  # until the test says so
    while not os.path.exists(os.environ["GO_FILE"]):
        time.sleep(0.05)
elif mode == "sleep":
    time.sleep(120)
elif mode == "fail":
    raise ValueError(f"child {n} failed on purpose")
"""


def _parent(ws: Workspace, parent: str) -> WarmParent:
    """A parent run with a warm pool of 2 on the local target, its children running CHILD."""
    src = Path(tempfile.mkdtemp())
    (src / "child.py").write_text(CHILD)
    return WarmParent(ws, "local", parent, take_snapshot(ws, src).id, src / "go")


def test_every_child_is_its_own_run_with_its_own_logs_and_metrics(ws: Workspace) -> None:
    async def main() -> None:
        p = _parent(ws, "warm_many")
        try:
            ids = [p.launch(n, "fail" if n == 3 else "ok") for n in range(2)]
            for n in range(2, 8):
                while not p.loop.free:
                    await p.loop.wait(0.2)
                ids.append(p.launch(n, "fail" if n == 3 else "ok"))
            await p.finish()
        finally:
            await p.close()
        for n, run_id in enumerate(ids):
            rec = p.rec(run_id)
            log = p.log(run_id)
            # each child's stdout and stderr in its own log, and nobody else's
            assert f"hello from child {n}" in log and f"a warning from child {n}" in log
            assert [f"child {m}" for m in range(8) if f"child {m}\n" in log] == [f"child {n}"]
            assert ws.store.get_metrics(run_id)["n"] in (n, [n])
            if n == 3:
                assert rec["status"] == "Failed" and "ValueError: child 3 failed on purpose" in rec["error"]
            else:
                assert rec["status"] == "Completed", rec["error"]
        workers = {p.worker_pid(r) for r in ids}
        assert 1 <= len(workers) <= 2  # 8 children, at most 2 worker processes: each ran several
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                       for pid in workers)  # the pool stopped its workers when it closed

    asyncio.run(main())


def test_a_killed_worker_fails_only_its_child_and_a_new_worker_takes_over(ws: Workspace) -> None:
    async def main() -> None:
        p = _parent(ws, "warm_kill")
        try:
            a, b = p.launch(0, "sleep"), p.launch(1, "wait")
            victim = await p.until_running(a)
            other = await p.until_running(b)
            assert victim != other
            os.kill(victim, signal.SIGKILL)  # the worker, not the child: it dies with its worker
            ended = await p.until_ended(a)
            assert ended[a].status == "Failed"
            assert p.rec(b)["status"] == "Running"  # the other worker's child goes on
            c = p.launch(2, "ok")
            p.go.touch()
            ended.update(await p.finish())
        finally:
            await p.close()
        assert "warm worker" in p.rec(a)["error"] and "ended before it did" in p.rec(a)["error"]
        assert p.rec(b)["status"] == "Completed" and p.rec(c)["status"] == "Completed"
        assert p.worker_pid(c) not in (victim,)  # a new worker (or the surviving one) ran it
        assert p.worker_pid(b) == other

    asyncio.run(main())


def test_a_timeout_or_a_cancel_stops_only_that_child(ws: Workspace) -> None:
    async def main() -> None:
        p = _parent(ws, "warm_stop")
        try:
            slow = p.launch(0, "sleep", timeout=1.0)
            other = p.launch(1, "wait")
            slow_worker = await p.until_running(slow)
            await p.until_running(other)
            ended = await p.until_ended(slow)
            assert ended[slow].status == "Failed"
            assert p.rec(other)["status"] == "Running"
            cancelled = p.launch(2, "sleep")
            await p.until_running(cancelled)
            p.loop.cancel(cancelled)
            ended.update(await p.until_ended(cancelled))
            assert ended[cancelled].status == "Canceled"
            assert p.rec(other)["status"] == "Running"
            after = p.launch(3, "ok")
            p.go.touch()
            await p.finish()
        finally:
            await p.close()
        assert p.rec(slow)["error"] == "child 0 ran out of time"
        assert p.rec(other)["status"] == "Completed" and p.rec(after)["status"] == "Completed"
        # the stopped children's worker lived on and ran the next children
        assert slow_worker in {p.worker_pid(cancelled), p.worker_pid(after)}
        assert "hello from child 2" in p.log(cancelled)

    asyncio.run(main())


def test_children_go_over_the_link_and_their_folders_are_released(ws: Workspace) -> None:
    async def main() -> None:
        p = _parent(ws, "warm_link")
        try:
            ids = [p.launch(n) for n in range(2)]
            await p.finish()
            ids += [p.launch(n) for n in range(2, 4)]
            await p.finish()
            sockdir = p.backend._sockdir
            assert sockdir is not None and os.path.exists(os.path.join(sockdir, "s"))
            assert (os.stat(sockdir).st_mode & 0o777) == 0o700  # only this user can reach the workers' socket
            worker_logs = [(Path(w.handle.job_dir) / "nbml-logs" / "driver_log.txt").read_text()
                           for w in p.backend.workers]
            assert worker_logs and all("linked to its supervisor" in text for text in worker_logs)
        finally:
            await p.close()
        for run_id in ids:
            assert p.rec(run_id)["status"] == "Completed", p.rec(run_id)["error"]
            assert ws.store.get_metrics(run_id)["n"] in (int(run_id.rsplit("_", 1)[1]),
                                                         [int(run_id.rsplit("_", 1)[1])])
            assert (ws.path / "runs" / run_id / "outputs" / "worker.txt").exists()  # copied back before release
            assert not (ws.path / "jobs" / run_id).exists()  # the job folder is released
        assert not os.path.exists(sockdir)

    asyncio.run(main())


def test_a_worker_that_cannot_connect_takes_its_children_from_files(ws: Workspace, monkeypatch: Any) -> None:
    nowhere = os.path.join(tempfile.mkdtemp(), "no-socket-here")  # a real failed connect (no such socket)

    async def no_link(self: WarmBackend) -> str:
        return nowhere

    monkeypatch.setattr(WarmBackend, "_listen", no_link)

    async def main() -> None:
        p = _parent(ws, "warm_nolink")
        try:
            ok = p.launch(0)
            waiting = p.launch(1, "sleep")
            await p.until_running(waiting)
            p.loop.cancel(waiting)
            ended = await p.until_ended(waiting)
            ended.update(await p.finish())
            assert ended[ok].status == "Completed" and ended[waiting].status == "Canceled"
            worker_logs = [(Path(w.handle.job_dir) / "nbml-logs" / "driver_log.txt").read_text()
                           for w in p.backend.workers]
            assert any("no link to the supervisor" in text for text in worker_logs)
        finally:
            await p.close()
        assert ws.store.get_metrics(ok)["n"] in (0, [0])

    asyncio.run(main())
