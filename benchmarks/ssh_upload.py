"""Snapshot upload to an SSH target vs ``rsync -a`` of the same folder over the same sshd, in one run.

Starts a real OpenSSH sshd on 127.0.0.1 (needs root and openssh-server, as the ssh tests do), builds a
project folder, and times:

Each figure is the best of ``--repeats`` (3) tries, the same for both tools:

- nbml first: a new connection, then staging a run of a snapshot the host has never seen;
- nbml repeat: a new connection, then staging another run of the same snapshot (a new job folder);
- rsync first: ``rsync -a`` into an empty folder; rsync repeat: the same command again (nothing changed).

Goal: first upload within 1.5x of rsync, repeat faster than rsync.

    python benchmarks/ssh_upload.py [--files 5000] [--big-mb 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "targets"))

from sshd import SshServer, available  # noqa: E402

from nbml.compute.base import EnvSpec, JobSpec  # noqa: E402
from nbml.compute.ssh import SSHBackend  # noqa: E402
from nbml.snapshot import take_snapshot  # noqa: E402
from nbml.workspace import Workspace  # noqa: E402


def make_project(folder: Path, files: int, big_mb: int) -> None:
    for i in range(files):
        path = folder / f"pkg{i // 250}" / f"mod_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# module {i}\nVALUE = {i}\n" + "x = 1\n" * (i % 50))
    if big_mb:
        (folder / "data.bin").write_bytes(os.urandom(big_mb << 20))


async def stage(config: dict[str, object], ws: Workspace, run_id: str, snap_files: dict) -> tuple[float, dict]:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    backend = SSHBackend("bench", config, ws.path)
    try:
        job = JobSpec(run_id=run_id, argv=["x.py"], env=EnvSpec(name="d", hash="0"), files=snap_files,
                      blob_dir=ws.path / "snapshots" / "blobs")
        await backend.stage(job, lambda line: None)
        return time.perf_counter() - t0, dict(backend.last_upload)
    finally:
        await backend.close()


async def host_python(config: dict[str, object], ws: Workspace) -> str:
    backend = SSHBackend("bench", config, ws.path)
    try:
        return str((await backend.info())["python"])
    finally:
        await backend.close()


def rsync(server: SshServer, source: Path, dest: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["rsync", "-a", "-e", " ".join(server.ssh_command()), f"{source}/", f"{server.host}:{dest}/"],
                   check=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--big-mb", type=int, default=20, help="one incompressible file of this size (0: none)")
    parser.add_argument("--repeats", type=int, default=3, help="each figure is the best of this many")
    args = parser.parse_args()
    why = available()
    if why:
        print(f"skipped: {why}")
        return 0
    with tempfile.TemporaryDirectory(prefix="nbml-bench-") as tmp:
        base = Path(tmp)
        server = SshServer(base / "sshd").start()
        try:
            source = base / "project"
            make_project(source, args.files, args.big_mb)
            ws = Workspace(path=base / "ws")
            snap = take_snapshot(ws, source)
            config = server.target_config(remote_root=str(base / "remote-cache"), run_root=str(base / "remote-runs"))
            config["remote_python"] = asyncio.run(host_python(config, ws))  # attach records it the same way
            # Best of N for every figure (this machine may be shared): each first upload goes to an empty cache
            # and each first rsync to an empty folder; repeats reuse the last of them.
            firsts, r_firsts = [], []
            for i in range(args.repeats):
                config["remote_root"] = str(base / f"remote-cache-{i}")
                seconds, up1 = asyncio.run(stage(config, ws, f"first{i}", snap.files))
                firsts.append(seconds)
                r_firsts.append(rsync(server, source, base / f"rsync-dest-{i}"))
            first, r_first = min(firsts), min(r_firsts)
            repeat = min(asyncio.run(stage(config, ws, f"again{i}", snap.files))[0] for i in range(args.repeats))
            r_repeat = min(rsync(server, source, base / f"rsync-dest-{args.repeats - 1}") for _ in range(args.repeats))
        finally:
            server.stop()
    mb = snap.total_size / 1e6
    print(f"snapshot: {snap.file_count} files, {mb:.1f} MB; first nbml upload sent {up1['blobs_sent']} blobs")
    print(f"{'':8}{'nbml':>10}{'rsync -a':>10}{'ratio':>8}   goal")
    print(f"{'first':8}{first:>9.2f}s{r_first:>9.2f}s{first / r_first:>8.2f}   <= 1.5")
    print(f"{'repeat':8}{repeat:>9.2f}s{r_repeat:>9.2f}s{repeat / r_repeat:>8.2f}   <  1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
