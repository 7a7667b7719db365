"""Time from submit to every rank running: nbml's distributed runs beside the same script started by hand.

For 1, 2 and 4 ranks, each way is timed from the moment it is started (``Experiment.submit`` for nbml,
``Popen`` of ``mpirun`` / ``torchrun`` by hand) to the moment the last rank's script begins (each rank writes
its ``time.time()`` first thing). nbml's number includes its supervisor, the snapshot and the rank launcher;
the difference is what nbml adds. The last column is what the rank launcher adds over an ordinary
one-process nbml run (supervisor start, snapshot, staging), timed the same way. Both run on the local target in the same process, so machine load affects
both alike; the figures are medians of ``--repeat`` tries.

    python benchmarks/distributed.py --ranks 1 2 4 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """
import os, sys, time
started = time.time()
rank = next((os.environ[k] for k in ("NBML_RANK", "OMPI_COMM_WORLD_RANK", "RANK") if k in os.environ), "0")
with open(os.path.join(sys.argv[1], f"rank_{rank}"), "w") as fh:
    fh.write(repr(started))
"""


def _last_start(folder: Path, ranks: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(folder.glob("rank_*"))
        if len(files) == ranks:
            try:
                return max(float(f.read_text()) for f in files)
            except ValueError:  # a file being written
                pass
        time.sleep(0.01)
    raise TimeoutError(f"only {len(list(folder.glob('rank_*')))} of {ranks} ranks started in {folder}")


def by_hand(kind: str, ranks: int, script: Path, out: Path) -> float:
    if kind == "mpi":
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none"]
        cmd += ["--allow-run-as-root"] if os.geteuid() == 0 else []
        cmd += [sys.executable, str(script), str(out)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
               str(script), str(out)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return _last_start(out, ranks) - t0
    finally:
        proc.wait(120)


def with_nbml(exp, kind: str, ranks: int, project: Path, out: Path) -> float:  # type: ignore[no-untyped-def]
    from nbml import ScriptRunConfig
    from nbml.core.runconfig import MpiConfiguration, PyTorchConfiguration

    config = (None if kind == "plain" else MpiConfiguration(process_count_per_node=ranks) if kind == "mpi"
              else PyTorchConfiguration("Gloo", process_count=ranks))
    t0 = time.time()
    run = exp.submit(ScriptRunConfig(str(project), "ranks.py", arguments=[str(out)], distributed_job_config=config))
    took = _last_start(out, ranks) - t0
    run.wait_for_completion(timeout_seconds=300)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    kinds = ["mpi"] if shutil.which("mpirun") else []
    try:
        import torch  # noqa: F401

        kinds.append("torch")
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["NBML_HOME"] = str(root / "home")
        from nbml import Experiment, Workspace

        ws = Workspace.from_config(root)
        exp = Experiment(ws, "bench-distributed")
        project = root / "project"
        project.mkdir()
        (project / "ranks.py").write_text(SCRIPT)
        n = 0
        plain = []
        for _ in range(args.repeat):  # an ordinary one-process run: what any nbml run costs to start
            n += 1
            (root / f"n{n}").mkdir()
            plain.append(with_nbml(exp, "plain", 1, project, root / f"n{n}"))
        base = statistics.median(plain)
        print(f"one-process nbml run (no launcher): {base:.2f} s from submit to the script running")
        print(f"{'kind':6} {'ranks':>5} {'by hand s':>10} {'nbml s':>8} {'added s':>8} {'launcher s':>11}")
        for kind in kinds:
            for ranks in args.ranks:
                hand, ours = [], []
                for _ in range(args.repeat):
                    n += 1
                    (root / f"h{n}").mkdir()
                    (root / f"n{n}").mkdir()
                    hand.append(by_hand(kind, ranks, project / "ranks.py", root / f"h{n}"))
                    ours.append(with_nbml(exp, kind, ranks, project, root / f"n{n}"))
                h, o = statistics.median(hand), statistics.median(ours)
                print(f"{kind:6} {ranks:>5} {h:>10.2f} {o:>8.2f} {o - h:>8.2f} {o - base:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
