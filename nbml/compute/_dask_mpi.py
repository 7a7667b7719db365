"""Open MPI across the nodes of a Dask gang job, with no SSH between the workers.

``mpirun`` runs on node 0 (inside that node's rank launcher, ``nbml.compute._ranks``) with ``--host
localhost:P,nbml-node-1:P,...``: node 0 is mpirun's own node, every other node is a name only this module
understands. Open MPI starts its daemon (``orted``) on a remote node by running its ``plm_rsh_agent`` as
``AGENT HOST COMMAND...``; ours is ``python -m nbml.compute._dask_mpi agent``, which hands the command to node
HOST's task through the job folder the workers share (the channel every Dask job of nbml already uses):

- the gang start pins, on each node i > 0, a task whose process is ``python -m nbml.compute._dask_mpi serve
  I`` (in ``.nbml/nodes/<i>``). It waits for ``<id>.cmd`` files in that node's ``.nbml/mpi/`` and runs each
  command with ``/bin/sh -c`` (what sshd would), output in ``<id>.out``, exit code in ``<id>.exit``;
- the agent (a child of mpirun on node 0) writes ``<id>.cmd``, streams ``<id>.out`` to its stdout and exits
  with the command's code, as ssh would. TERM to the agent (mpirun tearing down) writes ``<id>.kill``.

Nothing outlives the job: the server stops every daemon it started, with their whole process trees (it is
their subreaper, so ranks orphaned by a dead daemon are still its descendants), when node 0's job has ended,
when its own task is cancelled (the gang cancels every node when one fails or the run is cancelled), or when
it gets TERM. A node killed outright takes its processes along: the server dies with its worker
(PR_SET_PDEATHSIG), the daemon with the server, the ranks with the daemon; mpirun on node 0 notices the lost
daemon and aborts, and the gang names the lost node.

Several workers of one machine (a LocalCluster) share a hostname; each is still a node of its own for Open
MPI (distinct names in ``--host``), and each node's daemon gets its own shared-memory folder
(``btl_vader_backing_directory``), since Open MPI names its segments after the hostname and the node-local
rank, which would collide. When every worker is on a loopback address, MPI's TCP traffic is told to use
``lo`` (Open MPI excludes it by default).

Standard library only: the server and the agent run with the job's interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

CHANNEL = ".nbml/mpi"
ALIAS = "nbml-node-{}"
#: How long the agent waits for a node's task to take a daemon's command before giving up.
PICKUP_TIMEOUT_S = 90.0
GRACE_S = 3.0
POLL_S = 0.05


def node_dir(job_dir: str, node: int) -> str:
    """Where node `node`'s task keeps its wrapper state (node 0: the job folder itself)."""
    return job_dir if node == 0 else f"{job_dir}/.nbml/nodes/{node}"


def mpi_environ(nodes: int, per_node: int, python: str, loopback: bool) -> dict[str, str]:
    """What every node's process of an MPI gang job gets: the host list and Open MPI's settings."""
    hosts = ",".join(f"{'localhost' if i == 0 else ALIAS.format(i)}:{per_node}" for i in range(nodes))
    env = {"NBML_MPI_HOSTS": hosts,
           "OMPI_MCA_plm_rsh_agent": f"{python} -m nbml.compute._dask_mpi agent",
           "OMPI_MCA_plm_rsh_no_tree_spawn": "1",  # mpirun starts every daemon itself
           "OMPI_MCA_orte_leave_session_attached": "1",  # daemons stay children of the agent's command
           "OMPI_MCA_rmaps_base_mapping_policy": "slot"}  # ranks 0..P-1 on node 0, P..2P-1 on node 1...
    if loopback:
        env["OMPI_MCA_btl_tcp_if_include"] = "lo"
        env["OMPI_MCA_oob_tcp_if_include"] = "lo"
    return env


def probe() -> dict[str, Any]:
    """Run on a worker before the job is placed: what it has of Open MPI, its interpreter and host."""
    return {"mpirun": shutil.which("mpirun"), "orted": shutil.which("orted"), "python": sys.executable,
            "host": socket.gethostname()}


# -- process trees (Linux /proc, standard library) --------------------------------------------------------

def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value)


def _die_with_parent() -> None:
    _prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _reap(own: set[int]) -> None:
    """Collect orphans reparented to this subreaper; not the `own` Popen children, whose codes Popen reads."""
    for pid in _children_map().get(os.getpid(), []):
        if pid not in own:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- the server: node i's task ----------------------------------------------------------------------------

class Server:
    """Runs the commands mpirun's agent hands to this node; stops them all when the job ends here."""

    def __init__(self, job_dir: Path, node: int) -> None:
        self.job_dir = job_dir
        self.node = node
        self.channel = Path(node_dir(str(job_dir), node)) / CHANNEL
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping: str | None = None
        self.shm = self._shm_dir()

    def _shm_dir(self) -> str:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        return tempfile.mkdtemp(prefix=f"nbml-mpi-{self.job_dir.name[:40]}-n{self.node}-", dir=base)

    def _start(self, rid: str) -> None:
        try:
            command = json.loads((self.channel / f"{rid}.cmd").read_text())["command"]
        except (OSError, ValueError, KeyError):
            return
        env = dict(os.environ, OMPI_MCA_btl_vader_backing_directory=self.shm)
        with open(self.channel / f"{rid}.out", "ab", buffering=0) as out:
            proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=self.job_dir, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    preexec_fn=_die_with_parent)
        self.procs[rid] = proc
        _atomic_write(self.channel / f"{rid}.started", str(proc.pid))

    def _stop(self, procs: list[subprocess.Popen[bytes]]) -> None:
        """TERM each process and everything below it, KILL what is left after the grace period."""
        roots = [p.pid for p in procs if p.poll() is None]
        tree = roots + [d for r in roots for d in descendants(r)]
        _signal_all(tree, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(POLL_S)
        # Orphans of the daemon (ranks) are ours as subreaper: kill whatever still lives below us.
        _signal_all(tree + descendants(os.getpid()), signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(Exception):
                p.wait(5)
        _reap({p.pid for p in self.procs.values()})

    def _record_ends(self) -> None:
        for rid, p in self.procs.items():
            code = p.poll()
            if code is not None and not (self.channel / f"{rid}.exit").exists():
                _atomic_write(self.channel / f"{rid}.exit", str(code if code >= 0 else 128 - code))

    def serve(self) -> int:
        from nbml.compute._jobwrap import read_exit

        print(f"nbml: node {self.node} ({socket.gethostname()}) runs Open MPI's daemon when mpirun on node 0 "
              "asks for it", flush=True)
        self.channel.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.channel / "ready", json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        beats = 0
        try:
            while not self.stopping:
                if read_exit(self.job_dir) is not None:
                    self.stopping = "node 0 ended"
                    break
                for cmd in sorted(self.channel.glob("*.cmd")):
                    rid = cmd.name[:-4]
                    if rid not in self.procs:
                        self._start(rid)
                for kill in self.channel.glob("*.kill"):
                    p = self.procs.get(kill.name[:-5])
                    if p is not None and p.poll() is None:
                        self._stop([p])
                self._record_ends()
                beats += 1
                if beats % 20 == 0:
                    _reap({p.pid for p in self.procs.values()})
                time.sleep(POLL_S)
            self._stop(list(self.procs.values()))
            self._record_ends()
        finally:
            shutil.rmtree(self.shm, ignore_errors=True)
        print(f"nbml: node {self.node} stopped ({self.stopping})", flush=True)
        return 0 if self.stopping == "node 0 ended" else 143


def serve(node: int) -> int:
    job_dir = Path(os.environ["NBML_JOB_DIR"])
    if shutil.which("orted") is None:
        from nbml.compute._ranks import append_status

        message = (f"node {node} ({socket.gethostname()}) has no Open MPI: `orted` is not on its PATH. Install "
                   "Open MPI on every worker of the cluster (Debian: apt-get install openmpi-bin).")
        print(f"nbml: {message}", flush=True)
        with contextlib.suppress(OSError):
            append_status(job_dir, failure={"rank": None, "node": node, "message": message})
        return 2
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: ranks whose daemon died are reparented here, not to init
    server = Server(job_dir, node)

    def _on_term(signum: int, _frame: Any) -> None:
        server.stopping = server.stopping or f"stopped by signal {signal.Signals(signum).name}"

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    return server.serve()


# -- the agent: Open MPI's plm_rsh_agent, a child of mpirun on node 0 --------------------------------------

def agent(args: list[str]) -> int:
    if not args:
        print("usage: python -m nbml.compute._dask_mpi agent HOST COMMAND...", file=sys.stderr)
        return 2
    host, command = args[0], " ".join(args[1:])
    match = re.fullmatch(ALIAS.format(r"(\d+)"), host)
    if host in ("localhost", "127.0.0.1") or match is None:
        if host not in ("localhost", "127.0.0.1"):
            print(f"nbml: Open MPI asked to reach host {host!r}, which is no node of this job (nodes are named "
                  f"{ALIAS.format('N')}); do not pass --host or a hostfile to mpirun yourself.", file=sys.stderr)
            return 255
        _die_with_parent()
        os.execv("/bin/sh", ["/bin/sh", "-c", command])
    node = int(match.group(1))  # type: ignore[union-attr]
    _prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG: mpirun gone -> TERM, which asks the node to stop it
    channel = Path(node_dir(os.environ["NBML_JOB_DIR"], node)) / CHANNEL
    channel.mkdir(parents=True, exist_ok=True)
    rid = uuid.uuid4().hex[:12]
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _f: stop.append(signum))
    _atomic_write(channel / f"{rid}.cmd", json.dumps({"command": command}))
    asked = time.monotonic()
    offset = 0
    stopped_at: float | None = None
    while True:
        offset = _copy(channel / f"{rid}.out", offset)
        try:
            code = int((channel / f"{rid}.exit").read_text().strip())
        except (FileNotFoundError, ValueError):
            code = None
        if code is not None:
            _copy(channel / f"{rid}.out", offset)
            return code
        if stop and stopped_at is None:
            stopped_at = time.monotonic()
            (channel / f"{rid}.kill").touch()
        if stopped_at is not None and time.monotonic() - stopped_at > GRACE_S + 2:
            return 128 + stop[0]
        if not (channel / f"{rid}.started").exists() and time.monotonic() - asked > PICKUP_TIMEOUT_S:
            print(f"nbml: node {node}'s task did not take Open MPI's daemon command within {PICKUP_TIMEOUT_S:.0f} s "
                  "(its worker may be gone or overloaded).", file=sys.stderr, flush=True)
            (channel / f"{rid}.cmd").unlink(missing_ok=True)
            return 255
        time.sleep(POLL_S)


def _copy(path: Path, offset: int) -> int:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(1 << 20)
    except FileNotFoundError:
        return offset
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return offset + len(data)


def main(args: list[str]) -> int:
    if args[:1] == ["agent"]:
        return agent(args[1:])
    if args[:1] == ["serve"] and len(args) == 2:
        return serve(int(args[1]))
    print("usage: python -m nbml.compute._dask_mpi agent HOST COMMAND... | serve NODE", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover - run by mpirun and by the Dask gang
    sys.exit(main(sys.argv[1:]))
