"""``GET /nbml/api/runs/<id>/metrics`` on a run with 100,000 metrics: the full list and ``?after=N``.

Goals (issue 10): ``after=`` under 50 ms, the full list under 1 s.

Measured two ways, each beside today's code path in the same run:

1. Through real Jupyter servers (``jupyter server`` with the nbml extension, token auth, HTTP from this
   process): one server runs this checkout on a schema-3 workspace; a second runs the code of `--old-rev`
   (default: the commit before the metrics rework, extracted with ``git archive``) on the same metrics in a
   schema-2 workspace, so "today" is today's handler, query and schema. Skipped (with a note) when git or
   that revision is not available.
2. In process, the handler's model function to the JSON text it sends: this checkout's
   ``NbmlManager.metrics_text`` against the old route's code kept below (`old_metrics_model` + json.dumps:
   every row folded on every call, whatever `after` says) on the schema-2 database; wall and CPU seconds.

The ``after=`` request asks for the last 10 rows, as a poller does. Run: ``python benchmarks/metrics_route.py``
(about a minute; prints a table with ratios; no assertion).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nbml.server import models  # noqa: E402
from nbml.store import Store  # noqa: E402
from nbml.store.db import MIGRATIONS, _split  # noqa: E402
from nbml.store.metric_values import aggregate  # noqa: E402

RUN = "bench_1_aaaa"
N_METRICS = 100_000
NAMES = ("loss", "accuracy", "lr", "grad_norm", "val_loss")
OLD_REV = "6a6495d"


def seed_new(folder: Path) -> int:
    """A schema-3 workspace with one run of N_METRICS scalars, ingested as a supervisor would."""
    store = Store(folder)
    store.insert_run(RUN, "bench", "script", "local", {})
    batch = [(i, {"type": "metric", "name": NAMES[i % len(NAMES)], "kind": "scalar", "value": i * 1e-4,
                  "t": 1.0 + i}) for i in range(N_METRICS)]
    for start in range(0, N_METRICS, 10_000):
        store.ingest(RUN, batch[start:start + 10_000], start + 10_000)
    last = store.metric_rows(RUN, after_id=N_METRICS - 1)[-1]["id"]
    store.db.close()
    return int(last)


def seed_old(folder: Path) -> None:
    """The same metrics in a schema-2 database (today's schema), written with today's SQL."""
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / "nbml.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for script in MIGRATIONS[:2]:
        for statement in _split(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO experiments VALUES ('bench', 0)")
    conn.execute("INSERT INTO runs(run_id, experiment, kind, status, compute_target, created_at) "
                 "VALUES (?, 'bench', 'script', 'Completed', 'local', 0)", (RUN,))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO metrics(run_id, name, kind, value_json, step, logged_at, source_key) VALUES (?,?,?,?,?,?,?)",
        [(RUN, NAMES[i % len(NAMES)], "scalar", json.dumps(i * 1e-4), None, 1.0 + i, f"{RUN}@{i}")
         for i in range(N_METRICS)])
    conn.execute("COMMIT")
    conn.close()


# -- today's route, kept so the comparison runs on the same machine in the same run ------------------
def old_metrics_model(conn: sqlite3.Connection, run_id: str, after: int) -> dict[str, Any]:
    """NbmlManager.metrics as it was: rows after `after`, plus every row folded again, on every call."""
    rows = [{"id": r[0], "name": r[1], "kind": r[2], "value": json.loads(r[3]), "step": r[4], "logged_at": r[5]}
            for r in conn.execute("SELECT id, name, kind, value_json, step, logged_at FROM metrics "
                                  "WHERE run_id = ? AND id > ? ORDER BY id", (run_id, after))]
    everything = conn.execute("SELECT name, kind, value_json FROM metrics WHERE run_id = ? ORDER BY id", (run_id,))
    folded = aggregate((r[0], r[1], json.loads(r[2])) for r in everything)
    return {"run_id": run_id, "metrics": models.jsonable_metrics(folded),
            "rows": [{**r, "value": models.jsonable_metrics({"v": r["value"]})["v"]} for r in rows],
            "last_id": rows[-1]["id"] if rows else after}


CPU: dict[str, float] = {}


def timed(fn: Callable[[], Any], repeat: int, label: str = "") -> float:
    """Median wall seconds of `fn` (one warm-up call first); its median CPU seconds go to CPU[label]."""
    fn()
    samples, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        samples.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if label:
        CPU[label] = statistics.median(cpu)
    return statistics.median(samples)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A `jupyter server` process with the nbml extension on `workspace`, code from `source`."""

    def __init__(self, source: Path, workspace: Path, root: Path) -> None:
        self.port, self.token = free_port(), "bench-token"
        env = {**os.environ, "PYTHONPATH": str(source), "NBML_HOME": str(root / "home"),
               "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "JUPYTER_CONFIG_DIR": str(root / "config")}
        self.log = root / f"server-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
                 f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={root}",
                 *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
                 "--ServerApp.jpserver_extensions={'nbml.server': True}", f"--NbmlServer.workspace={workspace}"],
                env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=root)
        deadline = time.monotonic() + 300  # a loaded machine starts a server slowly
        while True:
            try:
                self.get("/api/status")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.log.read_text(errors="replace")[-2000:]
                    self.close()
                    raise RuntimeError(f"jupyter server did not start:\n{err}") from None
                time.sleep(0.2)

    def get(self, path: str) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return bytes(resp.read())

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def old_source(rev: str, into: Path) -> Path | None:
    """The nbml package of revision `rev` of this repository, or None when it can't be had."""
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "nbml"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rev", default=OLD_REV, help="git revision whose route is 'today' (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from nbml.server.manager import NbmlManager
    from nbml.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="nbml-bench-metrics-") as tmp:
        root = Path(tmp)
        new_ws, old_ws = root / "ws-new", root / "ws-old"
        new_ws.mkdir()
        last = seed_new(new_ws)
        seed_old(old_ws)
        after = last - 10
        results: list[tuple[str, float, float]] = []

        # 2. In process: the model functions.
        manager = NbmlManager(Workspace(path=str(new_ws)))
        conn = sqlite3.connect(old_ws / "nbml.db")
        new_full = timed(lambda: asyncio.run(manager.metrics_text(RUN, None)), args.repeat, "new full")
        old_full = timed(lambda: json.dumps(old_metrics_model(conn, RUN, 0), allow_nan=False), args.repeat,
                         "old full")
        new_after = timed(lambda: asyncio.run(manager.metrics_text(RUN, after)), args.repeat, "new after")
        old_after = timed(lambda: json.dumps(old_metrics_model(conn, RUN, after), allow_nan=False), args.repeat,
                          "old after")
        conn.close()
        results += [("model function to JSON text: full list", new_full, old_full),
                    ("model function to JSON text: after=N (10 new rows)", new_after, old_after),
                    ("  the same, CPU seconds: full list", CPU["new full"], CPU["old full"]),
                    ("  the same, CPU seconds: after=N", CPU["new after"], CPU["old after"])]

        # 1. Through real servers.
        note = ""
        source = old_source(args.old_rev, root / "old-src")
        servers = [Server(REPO, new_ws, root)]
        try:
            if source is not None:
                servers.append(Server(source, old_ws, root))
            else:
                note = f"(revision {args.old_rev} not available: today's route measured in process only)"
            route = f"/nbml/api/runs/{RUN}/metrics"
            answer = json.loads(servers[0].get(f"{route}?after={after}"))
            assert len(answer["rows"]) == 10 and answer["last_id"] == last, "after= answered the wrong rows"
            timings = [(timed(lambda s=s: s.get(route), args.repeat), timed(lambda s=s: s.get(f"{route}?after={after}"),
                        args.repeat * 3)) for s in servers]
            if len(timings) == 2:
                results += [("HTTP, real jupyter_server: full list", timings[0][0], timings[1][0]),
                            ("HTTP, real jupyter_server: after=N", timings[0][1], timings[1][1])]
            else:
                results += [("HTTP, real jupyter_server: full list", timings[0][0], float("nan")),
                            ("HTTP, real jupyter_server: after=N", timings[0][1], float("nan"))]
        finally:
            for s in servers:
                s.close()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"metrics route on a run with {N_METRICS:,} metrics (median of {args.repeat}+ calls; {os.cpu_count()} "
          f"CPUs, load average {load:.1f}) {note}")
    print(f"| what | this checkout | today ({args.old_rev}) | speed-up |")
    print("| --- | --- | --- | --- |")
    for what, new, old in results:
        print(f"| {what} | {new * 1000:,.1f} ms | {old * 1000:,.1f} ms | {old / new:,.1f}x |")


if __name__ == "__main__":
    main()
