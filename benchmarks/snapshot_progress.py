"""Snapshot of a large folder (default 50,000 files) with and without the progress line, in one run.

    python benchmarks/snapshot_progress.py [--files 50000] [--repeat 1]

Each snapshot goes into a new workspace (nothing cached), so each hashes and copies every file. The progress
line is drawn to stderr as in a terminal (NBML_PROGRESS=1) and timed against NBML_PROGRESS=0; the ratio is
what the line costs. Timings on a shared machine are noisy: compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from contextlib import redirect_stderr
from pathlib import Path


def make_tree(root: Path, count: int) -> Path:
    src = root / "project"
    for i in range(count):
        folder = src / f"pkg{i // 1000}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"module_{i}.py").write_text(f"VALUE = {i}\n")
    return src


def snapshot_seconds(src: Path, root: Path, progress: str) -> tuple[float, str]:
    from nbml import Workspace
    from nbml.snapshot import take_snapshot

    os.environ["NBML_PROGRESS"] = progress
    ws = Workspace(path=tempfile.mkdtemp(prefix="ws-", dir=root))
    err = io.StringIO()
    start = time.perf_counter()
    with redirect_stderr(err):
        snap = take_snapshot(ws, src, max_mb=10_000)
    seconds = time.perf_counter() - start
    last = err.getvalue().replace("\r", "\n").strip().splitlines()[-1:] or [""]
    assert snap.file_count == len(list(src.rglob("*.py")))
    return seconds, last[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbml-snapshot-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        src = make_tree(root, args.files)
        print(f"{args.files} files written in {time.perf_counter() - start:.1f} s")
        off, on = [], []
        for _ in range(args.repeat):
            off.append(snapshot_seconds(src, root, "0")[0])
            seconds, line = snapshot_seconds(src, root, "1")
            on.append(seconds)
        print(f"snapshot, no progress:   {min(off):6.1f} s")
        print(f"snapshot, progress line: {min(on):6.1f} s   (ratio {min(on) / min(off):.2f})")
        print(f"its last line: {line.strip()}", file=sys.stdout)


if __name__ == "__main__":
    main()
