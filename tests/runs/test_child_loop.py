"""The child loop (nbml.runs.children): a child whose job has ended frees its slot at once, so the next child
starts on the target while the supervisor is still copying the first one's outputs back.

Real local jobs. The one fake is `SlowCopyBack`, named as such: the local target with its copy-back slowed
down, as over a slow link to a remote target (a delay nbml can't produce on loopback).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from nbml import Workspace
from nbml.compute.base import EnvSpec, JobHandle, JobSpec
from nbml.compute.local import LocalBackend
from nbml.runs.children import ChildLoop
from nbml.runs.context import SupervisorContext
from nbml.runs.status import FINALIZING
from nbml.snapshot import load_manifest, take_snapshot

CHILD = """
import sys
from nbml import Run
Run.get_context().log("n", int(sys.argv[1]))
open("outputs/out.txt", "w").write(sys.argv[1])
"""
COPY_SECONDS = 2.0


class SlowCopyBack(LocalBackend):
    """FAKE: the local target whose outputs come back slowly, as from a remote machine over a slow link."""

    local_files = False

    async def fetch(self, handle: JobHandle, relpath: str, dest: Path) -> None:
        await asyncio.sleep(COPY_SECONDS)
        await super().fetch(handle, relpath, dest)


def test_the_next_child_starts_while_the_last_one_is_finalized(ws: Workspace) -> None:
    src = Path(tempfile.mkdtemp())
    (src / "child.py").write_text(CHILD)
    files = load_manifest(ws.path, take_snapshot(ws, src).id)
    ws.store.insert_run("loop", "loop", "hyperdrive", "local", {}, status="Running")

    def job(n: int) -> JobSpec:
        ws.store.insert_run(f"loop_{n}", "loop", "script", "local", {}, parent_id="loop", iteration=n)
        return JobSpec(run_id=f"loop_{n}", argv=["child.py", str(n)], env=EnvSpec("t", "t-user", True), files=files,
                       blob_dir=ws.path / "snapshots" / "blobs")

    async def main() -> None:
        ctx = SupervisorContext(ws.store, ws.path, "loop")
        loop: ChildLoop[int] = ChildLoop(ctx, SlowCopyBack("local", {}, ws.path), 1)
        try:
            loop.launch("loop_0", job(0), 0)
            assert loop.free == 0
            while not loop.free:  # until the first job has exited (its outputs are still on their way back)
                assert await loop.wait(30) == [], "the first child ended before it freed its slot"
            assert ws.store.get_run("loop_0")["status"] == FINALIZING
            assert loop.running == [] and loop.finalizing == [("loop_0", 0)]  # no cancel or policy can stop it
            loop.launch("loop_1", job(1), 1)
            assert loop.free == 0 and len(loop) == 2 and loop.running == [("loop_1", 1)]
            ended = await loop.drain()
        finally:
            await loop.close()
            ctx.close()
        assert sorted((f.run_id, f.status) for f in ended) == [("loop_0", "Completed"), ("loop_1", "Completed")]
        first, second = ws.store.get_run("loop_0"), ws.store.get_run("loop_1")
        assert second["started_at"] < first["ended_at"]  # it ran while the first one's outputs came back
        for n in (0, 1):
            assert (ws.path / "runs" / f"loop_{n}" / "outputs" / "out.txt").read_text() == str(n)
            assert ws.store.get_metrics(f"loop_{n}")["n"] in (n, [n])

    asyncio.run(main())
