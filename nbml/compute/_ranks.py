"""The rank launcher: the one process of a distributed job, which starts and watches its ranks on one node.

A distributed run is one job like any other: its process is ``python -m nbml.compute._ranks`` in the job
folder, so every target starts, adopts, cancels and reaps it as it does a single-process job. It reads
``.nbml/ranks.json`` (written at staging) and starts ``process_count_per_node`` ranks of the script:

- ``pytorch``: each rank gets MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, NODE_RANK (what
  ``torch.distributed.init_process_group(init_method='env://')`` reads);
- ``tensorflow``: each task gets TF_CONFIG (workers first, then parameter servers); the job ends when every
  worker has ended, and the parameter servers (which serve forever) are stopped then;
- ``mpi``: Open MPI's ``mpirun`` starts the ranks, each through ``python -m nbml.compute._ranks rank`` (which
  keeps its log and status and then runs the script).

Each rank's stdout and stderr go to ``nbml-logs/driver_log_<rank>.txt``; rank 0's is copied into the job's own
output (``nbml-logs/driver_log.txt``), so the run shows rank 0 by default. Every state change of a rank is a
line appended to ``nbml-logs/ranks.jsonl``. The first rank to fail stops all the others (TERM, then KILL
after a grace period), and the launcher exits with its code after printing which rank failed and its last
error. TERM to the launcher (a cancel) stops every rank the same way. Ranks die with the launcher if it is
killed outright (PR_SET_PDEATHSIG).

Standard library only: it runs in containers and on hosts that have only Python and the nbml package folder.
A multi-node job (Dask) runs one launcher per node with ``NBML_NODE_RANK``, ``NBML_MASTER_ADDR``,
``NBML_MASTER_PORT`` and ``NBML_NODE_HOSTS`` set by the backend.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SPEC_FILE = ".nbml/ranks.json"
STATUS_FILE = "nbml-logs/ranks.jsonl"
GRACE_SECONDS = 3.0


def rank_log(rank: int) -> str:
    """The job-relative path of one rank's output."""
    return f"nbml-logs/driver_log_{rank}.txt"


def run_properties(distributed: dict[str, Any]) -> dict[str, str]:
    """What a distributed run shows among its properties (run page, widget, sidebar)."""
    props = {"nbml.distributed_backend": str(distributed["backend"]),
             "nbml.node_count": str(distributed["node_count"]),
             "nbml.process_count_per_node": str(distributed["process_count_per_node"]),
             "nbml.process_count": str(distributed["node_count"] * distributed["process_count_per_node"])}
    if distributed.get("communication_backend"):
        props["nbml.communication_backend"] = str(distributed["communication_backend"])
    return props


def is_distributed(argv: list[str], extra_files: dict[str, bytes], node_count: int = 1) -> bool:
    """Whether a job (its argv and extra files, as job_files made them) is a distributed one."""
    return node_count > 1 or SPEC_FILE in extra_files or argv[:2] == ["-m", "nbml.compute._ranks"]


def job_files(distributed: dict[str, Any], argv: list[str]) -> tuple[list[str], dict[str, bytes]]:
    """(argv, extra files) that make a job run `argv` (script and arguments) as a distributed job."""
    spec = {"distributed": distributed, "argv": argv}
    return ["-m", "nbml.compute._ranks"], {SPEC_FILE: json.dumps(spec).encode()}


# -- status and errors (also read by the supervisor from the run's copy of the files) ---------------------

def append_status(job_dir: Path, **fields: Any) -> None:
    """One line of ``ranks.jsonl``; a single O_APPEND write, so concurrent ranks never interleave."""
    line = (json.dumps({"time": round(time.time(), 3), **fields}) + "\n").encode()
    fd = os.open(job_dir / STATUS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_status(folder: Path) -> dict[str, Any]:
    """``{"ranks": {rank: {...latest state...}}, "failure": {...} or None}`` from a ``ranks.jsonl``."""
    ranks: dict[int, dict[str, Any]] = {}
    failure = None
    try:
        lines = (folder / STATUS_FILE).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "failure" in rec:
            failure = failure or rec["failure"]
        elif "rank" in rec:
            ranks.setdefault(int(rec["rank"]), {}).update(rec)
    return {"ranks": dict(sorted(ranks.items())), "failure": failure}


def last_error(text: str) -> str:
    """The last Python traceback in a rank's output, else its last lines."""
    text = re.sub(r"(?m)^\[rank\d+\]: ", "", text)  # torch.distributed prefixes each line of a rank's traceback
    idx = text.rfind("Traceback (most recent call last):")
    if idx >= 0:
        lines = text[idx:].strip().splitlines()
        for i, ln in enumerate(lines[1:], start=1):
            if ln and not ln.startswith((" ", "\t")) and not ln.startswith("During handling"):
                return "\n".join(lines[: i + 1])[-4000:]
        return "\n".join(lines)[-4000:]
    return "\n".join(text.strip().splitlines()[-15:])[-4000:]


def rank_view(folder: Path, distributed: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the widget, the sidebar and the run page show of a distributed run (None for one process).

    ``{"backend", "communication_backend", "node_count", "process_count", "process_count_per_node",
    "ranks": [{"rank", "node", "host", "state", "exit_code", "error", "log"}], "failure"}``: every rank of the
    job, ``pending`` until its launcher has started it; ``error`` is the last line of a failed rank's last
    error (its exception), ``log`` the run-relative path of its output.
    """
    if not distributed:
        return None
    status = read_status(folder)
    per_node = int(distributed.get("process_count_per_node") or 1)
    nodes = int(distributed.get("node_count") or 1)
    world = max(nodes * per_node, len(status["ranks"]))
    ranks = []
    for r in range(world):
        s = status["ranks"].get(r, {})
        state = str(s.get("state") or "pending")
        error = ""
        if state == "failed":
            lines = last_error(_read(folder / rank_log(r))).strip().splitlines()
            error = lines[-1] if lines else ""
        ranks.append({"rank": r, "node": int(s.get("node", r // per_node)), "host": s.get("host") or "",
                      "state": state, "exit_code": s.get("exit_code"), "error": error[:500], "log": rank_log(r)})
    failure = status["failure"]
    return {"backend": distributed.get("backend"), "communication_backend": distributed.get("communication_backend"),
            "node_count": nodes, "process_count_per_node": per_node, "process_count": nodes * per_node,
            "ranks": ranks, "failure": str(failure.get("message") or "").splitlines()[0] if failure else None}


def failure_message(folder: Path) -> str | None:
    """The run's error when a rank failed: which rank, on which node, and its last error (None otherwise)."""
    failure = read_status(folder)["failure"]
    if not failure:
        return None
    if failure.get("message"):
        return str(failure["message"])
    return None


# -- the launcher --------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In a rank before exec: be killed when the launcher dies, whatever kills it."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Launcher:
    """Starts this node's ranks, copies rank 0's output, stops everything at the first failure or a TERM."""

    def __init__(self, job_dir: Path, spec: dict[str, Any]) -> None:
        self.job_dir = job_dir
        self.d: dict[str, Any] = spec["distributed"]
        self.argv = _argv(spec, job_dir)
        self.nodes = int(self.d["node_count"])
        self.per_node = int(self.d["process_count_per_node"])
        self.world = self.nodes * self.per_node
        self.node_rank = int(os.environ.get("NBML_NODE_RANK") or 0)
        self.host = socket.gethostname()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping: str | None = None
        self._tail_offset = 0

    # Each rank: its environment, its log file, its process.
    def _rank_env(self, rank: int, local_rank: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"NBML_RANK": str(rank), "NBML_LOCAL_RANK": str(local_rank), "NBML_WORLD_SIZE": str(self.world),
                    "NBML_NODE_RANK": str(self.node_rank)})
        if self.d["backend"] == "pytorch":
            env.update({"MASTER_ADDR": self.master_addr, "MASTER_PORT": str(self.master_port),
                        "WORLD_SIZE": str(self.world), "RANK": str(rank), "LOCAL_RANK": str(local_rank),
                        "NODE_RANK": str(self.node_rank), "LOCAL_WORLD_SIZE": str(self.per_node),
                        "GROUP_RANK": str(self.node_rank)})
        elif self.d["backend"] == "tensorflow":
            env["TF_CONFIG"] = json.dumps(self._tf_config(rank))
        env.update(sdk_environ(self.d["backend"], rank, self.master_addr, self.master_port,
                               self._tf_config(rank) if self.d["backend"] == "tensorflow" else None))
        return env

    def _tf_tasks(self) -> list[tuple[str, int]]:
        w, s = int(self.d["worker_count"]), int(self.d["parameter_server_count"])
        return [("worker", i) for i in range(w)] + [("ps", i) for i in range(s)]

    def _tf_config(self, rank: int) -> dict[str, Any]:
        tasks = self._tf_tasks()
        hosts = self.node_hosts
        cluster: dict[str, list[str]] = {}
        for r, (kind, _i) in enumerate(tasks):
            host = hosts[r // self.per_node] if len(hosts) > 1 else hosts[0]
            cluster.setdefault(kind, []).append(f"{host}:{self.master_port + r}")
        kind, index = tasks[rank]
        return {"cluster": cluster, "task": {"type": kind, "index": index}, "environment": "cloud"}

    def _start_rank(self, rank: int, local_rank: int) -> None:
        log = open(self.job_dir / rank_log(rank), "ab", buffering=0)  # noqa: SIM115 - handed to the child
        try:
            env = self._rank_env(rank, local_rank)
            proc = subprocess.Popen([sys.executable, *expand_argv(self.argv, env)], cwd=self.job_dir, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.procs[rank] = proc
        append_status(self.job_dir, rank=rank, node=self.node_rank, host=self.host, pid=proc.pid, state="running")

    def _start_mpi(self) -> None:
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            raise SystemExit(
                "nbml: this job asks for MPI but the target has no `mpirun`; install Open MPI there (Debian: "
                "apt-get install openmpi-bin; in an image: add it to the Dockerfile), or use PyTorch-style "
                "distribution (PyTorchConfiguration) which needs no MPI.")
        cmd = [mpirun, "-np", str(self.world), "--oversubscribe", "--bind-to", "none",
               "--mca", "btl_vader_single_copy_mechanism", "none"]
        if os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
        hosts = os.environ.get("NBML_MPI_HOSTS")  # multi-node: set by the Dask backend with its rsh agent
        if hosts:
            cmd += ["--host", hosts]
        for name in sorted(os.environ):
            if name.startswith(("NBML_", "AZUREML_")) or name in ("PYTHONPATH", "PYTHONUNBUFFERED", "PATH"):
                cmd += ["-x", name]
        cmd += [sys.executable, "-m", "nbml.compute._ranks", "rank"]
        log = open(self.job_dir / "nbml-logs" / "mpirun_log.txt", "ab", buffering=0)  # noqa: SIM115
        try:
            proc = subprocess.Popen(cmd, cwd=self.job_dir, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.procs[-1] = proc

    def start(self) -> None:
        self.master_addr = os.environ.get("NBML_MASTER_ADDR") or "127.0.0.1"
        port = os.environ.get("NBML_MASTER_PORT")
        self.master_port = int(port) if port else _free_port()
        hosts = os.environ.get("NBML_NODE_HOSTS")
        self.node_hosts = hosts.split(",") if hosts else [self.master_addr]
        if self.d["backend"] == "tensorflow" and not port:
            self.master_port = self._tf_base_port()
        print(f"nbml: node {self.node_rank} of {self.nodes} ({self.host}) starts {self.per_node} "
              f"{self.d['backend']} rank(s) of {self.world}; rank 0's output follows, every rank's is in "
              "nbml-logs/driver_log_<rank>.txt", flush=True)
        if self.d["backend"] == "mpi":
            if self.node_rank == 0:
                self._start_mpi()
            return
        if self.d.get("communication_backend") == "nccl" and not _has_gpu():
            raise SystemExit("nbml: communication_backend 'Nccl' needs an NVIDIA GPU and this node has none; use "
                             "'Gloo' to train on CPUs.")
        for local in range(self.per_node):
            self._start_rank(self.node_rank * self.per_node + local, local)

    def _tf_base_port(self) -> int:
        """A base port with `per_node` free ports after it (single node: checked free now)."""
        for _ in range(50):
            base = _free_port()
            if base + self.world < 65535 and all(_port_free(base + i) for i in range(self.world)):
                return base
        return _free_port()

    def _copy_rank0(self) -> None:
        try:
            with open(self.job_dir / rank_log(0), "rb") as fh:
                fh.seek(self._tail_offset)
                data = fh.read(1 << 20)
        except FileNotFoundError:
            return
        if data:
            self._tail_offset += len(data)
            sys.stdout.buffer.write(data)
            sys.stdout.flush()

    def stop_all(self, reason: str) -> None:
        """TERM every rank still running, KILL those left after the grace period; record them stopped."""
        if self.stopping:
            return
        self.stopping = reason
        running = {r: p for r, p in self.procs.items() if p.poll() is None}
        for p in running.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and any(p.poll() is None for p in running.values()):
            time.sleep(0.05)
        for p in running.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
        for r, p in running.items():
            if r >= 0:
                append_status(self.job_dir, rank=r, node=self.node_rank, state="stopped", exit_code=p.returncode,
                              reason=reason)

    def _fail(self, rank: int, code: int) -> int:
        text = _read(self.job_dir / rank_log(rank)) if rank >= 0 else ""
        node = rank // self.per_node if rank >= 0 else self.node_rank
        who = f"rank {rank} of {self.world} (node {node}, {self.host})" if rank >= 0 else "mpirun"
        message = f"{who} failed with exit code {code}; the other ranks were stopped."
        err = last_error(text) if text.strip() else ""
        if err:
            message += f" Its last error:\n{err}"
        if rank >= 0:
            append_status(self.job_dir, rank=rank, node=node, state="failed", exit_code=code)
        append_status(self.job_dir, failure={"rank": rank, "node": node, "host": self.host, "exit_code": code,
                                             "message": message})
        print(f"nbml: {message}", flush=True)
        self.stop_all(f"rank {rank} failed")
        return code if code > 0 else 1

    def watch(self) -> int:
        """Wait for the ranks; the exit code of the job (0 when every rank, or every TF worker, succeeded)."""
        workers = None
        if self.d["backend"] == "tensorflow":
            tasks = self._tf_tasks()
            workers = {r for r in self.procs if tasks[r][0] == "worker"}
        while True:
            self._copy_rank0()
            if self.stopping:
                return 143
            for rank, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None or getattr(proc, "_nbml_seen", False):
                    continue
                proc._nbml_seen = True  # type: ignore[attr-defined]
                if rank == -1:  # mpirun: the ranks recorded their own states
                    return self._mpi_ended(code)
                if code != 0:
                    return self._fail(rank, code)
                append_status(self.job_dir, rank=rank, node=self.node_rank, state="completed", exit_code=0)
            if all(getattr(p, "_nbml_seen", False) for r, p in self.procs.items()
                   if workers is None or r in workers):
                if workers is not None:
                    self.stop_all("every worker ended")  # parameter servers serve until stopped
                self._copy_rank0()
                return 0
            time.sleep(0.1)

    def _mpi_ended(self, code: int) -> int:
        time.sleep(0.1)
        self._copy_rank0()
        if code == 0:
            return 0
        states = read_status(self.job_dir)["ranks"]
        failed = [r for r, s in states.items() if s.get("state") == "failed"]
        if failed:
            first = min(failed, key=lambda r: states[r].get("time", 0))
            return self._fail(first, int(states[first].get("exit_code") or code))
        print(_read(self.job_dir / "nbml-logs" / "mpirun_log.txt")[-3000:], flush=True)
        return self._fail(-1, code)


def _argv(spec: dict[str, Any], job_dir: Path) -> list[str]:
    """The script and its arguments, with data paths (nbml.compute.base.JOB_DIR_TOKEN) made real."""
    return [str(a).replace("{{NBML_JOB_DIR}}", str(job_dir)) for a in spec["argv"]]


#: Variables of the SDK's runtime (Batch AI, then Azure ML) a rank gets, so scripts and ``script_params``
#: written for it work unchanged; see sdk_environ.
SDK_PREFIXES = ("AZ_BATCHAI_", "AZUREML_")
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def sdk_environ(backend: str, rank: int, master_addr: str, master_port: int | None,
                tf_config: dict[str, Any] | None) -> dict[str, str]:
    """What the SDK's runtime set for each process of a distributed job, from this rank's settings.

    ``AZ_BATCHAI_TASK_INDEX`` (the global rank), ``AZ_BATCHAI_JOB_MASTER_NODE_IP`` (rank 0's host); PyTorch:
    ``AZ_BATCHAI_PYTORCH_INIT_METHOD`` (``tcp://host:port``, for ``init_process_group(init_method=...)``);
    MPI: ``AZ_BATCHAI_MPI_MASTER_NODE``; TensorFlow: ``AZ_BATCHAI_WORKER_HOSTS`` and ``AZ_BATCHAI_PS_HOSTS``
    (comma-separated ``host:port``). The run's id is ``AZUREML_RUN_ID`` as well as ``NBML_RUN_ID``.
    """
    env = {"AZ_BATCHAI_TASK_INDEX": str(rank), "AZ_BATCHAI_JOB_MASTER_NODE_IP": master_addr}
    if backend == "pytorch" and master_port is not None:
        env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] = f"tcp://{master_addr}:{master_port}"
    elif backend == "mpi":
        env["AZ_BATCHAI_MPI_MASTER_NODE"] = master_addr
    elif backend == "tensorflow" and tf_config is not None:
        env["AZ_BATCHAI_WORKER_HOSTS"] = ",".join(tf_config["cluster"].get("worker", []))
        env["AZ_BATCHAI_PS_HOSTS"] = ",".join(tf_config["cluster"].get("ps", []))
    if os.environ.get("NBML_RUN_ID"):
        env["AZUREML_RUN_ID"] = os.environ["NBML_RUN_ID"]
    return env


def expand_argv(argv: list[str], env: dict[str, str]) -> list[str]:
    """``$NAME`` / ``${NAME}`` of the SDK's runtime variables in the arguments, made this rank's values.

    The SDK ran the script through a shell, so ``script_params={"--rank": "$AZ_BATCHAI_TASK_INDEX"}`` reached
    the script as the rank's number; nbml runs no shell, so the launcher expands the names it knows
    (``AZ_BATCHAI_*``, ``AZUREML_*``, and what it sets itself: ``MASTER_ADDR``, ``RANK``, ...). Anything else
    (an unknown name, a ``$`` in a password) is passed as written.
    """
    own = {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "LOCAL_WORLD_SIZE"}

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        known = name.startswith(SDK_PREFIXES) or name.startswith("NBML_") or name in own
        return env[name] if known and name in env else m.group(0)

    return [_VAR.sub(one, a) if "$" in a else a for a in argv]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def _has_gpu() -> bool:
    import glob

    return bool(glob.glob("/dev/nvidia[0-9]*")) or bool(os.environ.get("NBML_ASSUME_GPU"))


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - 200_000))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def launch(job_dir: Path) -> int:
    spec = json.loads((job_dir / SPEC_FILE).read_text())
    (job_dir / "nbml-logs").mkdir(parents=True, exist_ok=True)
    launcher = Launcher(job_dir, spec)

    def _on_term(signum: int, _frame: Any) -> None:
        launcher.stop_all(f"stopped by signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    try:
        launcher.start()
    except SystemExit as exc:
        print(exc.code, flush=True)
        append_status(job_dir, failure={"rank": None, "node": launcher.node_rank, "message": str(exc.code)})
        return 2
    return launcher.watch()


# -- one MPI rank: started by mpirun, keeps its log and status, runs the script ---------------------------

def mpi_rank(job_dir: Path) -> int:
    _die_with_parent()  # with its Open MPI daemon (a node lost mid-run takes its ranks along)
    spec = json.loads((job_dir / SPEC_FILE).read_text())
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", "0"))
    per_node = int(spec["distributed"]["process_count_per_node"])
    node = rank // per_node
    env = dict(os.environ, NBML_RANK=str(rank), NBML_LOCAL_RANK=str(local), NBML_NODE_RANK=str(node),
               NBML_WORLD_SIZE=os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    env.update(sdk_environ("mpi", rank, os.environ.get("NBML_MASTER_ADDR") or "127.0.0.1", None, None))
    log = open(job_dir / rank_log(rank), "ab", buffering=0)  # noqa: SIM115
    try:
        argv = expand_argv(_argv(spec, job_dir), env)
        if argv and not argv[0].startswith("-") and importlib.util.find_spec("mpi4py") is not None:
            # An uncaught exception then aborts every rank (MPI_Abort) instead of leaving them in MPI_Finalize.
            argv = ["-m", "mpi4py", *argv]
        proc = subprocess.Popen([sys.executable, *argv], cwd=job_dir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
    finally:
        log.close()
    host = socket.gethostname()
    append_status(job_dir, rank=rank, node=node, host=host, pid=proc.pid, state="running")
    stopped: list[str] = []

    def _on_term(signum: int, _frame: Any) -> None:
        stopped.append(signal.Signals(signum).name)
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    code = proc.wait()
    if stopped and code <= 0:  # killed by the stop; a rank that exited with an error of its own failed
        append_status(job_dir, rank=rank, node=node, state="stopped", exit_code=code, reason="stopped by mpirun")
    else:
        append_status(job_dir, rank=rank, node=node, state="completed" if code == 0 else "failed", exit_code=code)
    return code if 0 <= code < 256 else 128 + abs(code)


def main(args: list[str]) -> int:
    if args[:1] == ["--job-dir"]:  # node i > 0 of a multi-node job: its wrapper state is elsewhere
        os.chdir(args[1])
        args = args[2:]
    job_dir = Path(os.getcwd())  # every target starts the job (and mpirun its ranks) in the job folder
    if args[:1] == ["rank"]:
        return mpi_rank(job_dir)
    code = launch(job_dir)
    return code if 0 <= code < 256 else 128 + abs(code)


if __name__ == "__main__":  # pragma: no cover - the job's process
    sys.exit(main(sys.argv[1:]))
