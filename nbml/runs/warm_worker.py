"""A warm worker: ``python -m nbml.runs.warm_worker``, a long-lived job that runs child runs one after another.

It is started like any job (in its own job folder, by the target's backend) and reads ``.nbml/warm.json``:
``{"preload": [module, ...], "setup": "module:function" | null, "lease_seconds": 60}``. It imports the preload
modules and calls the setup hook once (an AutoML worker loads the training data there), then waits for task
files in its ``inbox/`` folder, one per child run, written by the supervisor (``nbml.runs.warm``)::

    {"run_id": ..., "job_dir": ..., "argv": [...], "environ": {...}}

Each task runs in a process forked from this one, so it starts with everything imported and loaded, yet a
crash, ``sys.exit``, a cancel or a time limit ends only that process: the fork becomes its own process group
in the child run's own job folder, with stdout and stderr in that folder's ``nbml-logs/driver_log.txt`` and
``Run.get_context()`` pointing at that folder's event log. The worker waits for it, stops it (TERM, then KILL)
when ``.nbml/cancel`` appears in the child's folder, and writes the child's ``.nbml/exit_code`` (and
``.nbml/reason``) exactly as the job wrapper of a cold job does, so the executor finalizes it the same way.

The worker ends when ``.nbml/stop`` appears in its folder, or when it is idle and its supervisor stopped
renewing ``.nbml/lease`` (the supervisor died; the adopting one starts its own workers).

The link: when ``warm.json`` names a Unix socket (``"socket"``, in a folder only this user can open, with a
``"token"`` the worker presents first), the worker connects to its supervisor and the two talk in JSON lines,
so nothing waits on a polling interval: the supervisor sends ``{"task": ...}``, ``{"cancel": job_dir}`` and
``{"stop": true}`` and ``{"remove": job_dir}`` (a finished child's folder, released once copied back; the
worker removes it between tasks); the worker answers ``{"exit": job_dir, "code": ..., "reason": ...}`` right after it wrote
the exit code file (the files stay the record a later supervisor reads). While it waits for a task or for
its child, the worker sleeps in ``select`` on the socket and on the child's pidfd. Without a link (it could
not connect, or the supervisor went away) it works from the files alone, as above.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import importlib
import json
import os
import pkgutil  # noqa: F401  runpy.run_path imports it on first use: once here, not in every child
import runpy
import selectors
import shutil
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from nbml.compute._jobwrap import CANCEL_FILE, DRIVER_LOG, write_exit

CONFIG_FILE = ".nbml/warm.json"
STOP_FILE = ".nbml/stop"
LEASE_FILE = ".nbml/lease"
PID_FILE = ".nbml/pid"
INBOX = "inbox"
#: The environment variable that names the worker's folder to the code it runs (data held by the worker).
WORKER_DIR_VAR = "NBML_WARM_WORKER_DIR"
GRACE_SECONDS = 3.0


def _die_with_parent() -> None:
    try:  # Linux: the task gets SIGKILL when the worker dies, so no task outlives its worker unseen
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - not Linux
        pass


def _run_argv(argv: list[str]) -> int:
    """Run `argv` (what follows the interpreter) in this process, as ``python ARGV`` would; the exit code."""
    if argv[:1] == ["-m"] and len(argv) >= 2:
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv and not argv[0].startswith("-"):
        script = os.path.abspath(argv[0])
        sys.argv = [argv[0], *argv[1:]]
        sys.path.insert(0, os.path.dirname(script))
        runpy.run_path(script, run_name="__main__")
    else:  # an interpreter option this worker doesn't emulate: run a fresh interpreter instead
        os.execv(sys.executable, [sys.executable, *argv])
    return 0


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF
        print(code, file=sys.stderr)
        return 1
    # as `python script.py` would print it: from the script's own frames, without the worker's and runpy's
    traceback.print_exception(type(exc), exc, _script_frames(exc.__traceback__))
    return 1


def _script_frames(tb: Any) -> Any:
    ours = {__file__, getattr(runpy, "__file__", None), "<frozen runpy>"}
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in ours:
        tb = tb.tb_next
    return tb


def _child(task: dict[str, Any]) -> None:
    """In the forked process: become the child run, run it, never return."""
    code = 1
    try:
        os.setsid()
        _die_with_parent()
        job_dir = task["job_dir"]
        os.chdir(job_dir)
        for sub in ("nbml-logs", "logs", "outputs", ".nbml"):
            os.makedirs(sub, exist_ok=True)
        fd = os.open(DRIVER_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.environ.update(task.get("environ") or {})
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            code = _run_argv(list(task["argv"]))
        except BaseException as exc:  # the script's own exit or error is its exit code
            code = _exit_code(exc)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class Link:
    """The worker's connection to its supervisor: JSON lines both ways (see the module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self._buf = b""
        self.tasks: collections.deque[dict[str, Any]] = collections.deque()
        self.cancels: set[str] = set()
        self.removals: collections.deque[str] = collections.deque()
        self.stop = False
        self.open = True

    @classmethod
    def connect(cls, cfg: dict[str, Any]) -> Link | None:
        if not cfg.get("socket"):
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(5.0)
            sock.connect(str(cfg["socket"]))
            sock.sendall(json.dumps({"hello": cfg.get("id"), "token": cfg.get("token"),
                                     "pid": os.getpid()}).encode() + b"\n")
        except OSError as exc:  # another machine's worker (Dask), or the supervisor is gone: the files serve
            print(f"no link to the supervisor ({exc}); taking tasks from the inbox folder", flush=True)
            sock.close()
            return None
        return cls(sock)

    def send(self, msg: dict[str, Any]) -> None:
        if not self.open:
            return
        try:
            self.sock.setblocking(True)
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
            self.sock.setblocking(False)
        except OSError:
            self.close()

    def receive(self) -> None:
        """Read what has arrived (call when the socket is readable)."""
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the supervisor closed it (or died): the files alone from now on
            self.close()
            return
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "task" in msg:
                self.tasks.append(msg["task"])
            elif "cancel" in msg:
                self.cancels.add(str(msg["cancel"]))
            elif "remove" in msg:
                self.removals.append(str(msg["remove"]))
            elif msg.get("stop"):
                self.stop = True

    def close(self) -> None:
        if self.open:
            self.open = False
            try:
                self.sock.close()
            except OSError:
                pass


def _wait_child(pid: int, job_dir: Path, link: Link | None) -> tuple[int, str | None]:
    """Wait for the forked child, stopping its group on a cancel (a message or the cancel file)."""
    reason: str | None = None
    cancel = job_dir / CANCEL_FILE
    kill_at = 0.0
    sel = selectors.DefaultSelector()
    try:
        pidfd = os.pidfd_open(pid)
        sel.register(pidfd, selectors.EVENT_READ, "child")
    except (AttributeError, OSError):  # no pidfd (old kernel): wake up every few milliseconds instead
        pidfd = -1
    if link is not None and link.open:
        sel.register(link.sock, selectors.EVENT_READ, "link")
    pause = 0.001
    try:
        while True:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got:
                return os.waitstatus_to_exitcode(status), reason
            if reason is None and (str(job_dir) in (link.cancels if link else ()) or cancel.exists()):
                reason = "canceled"
                _kill_group(pid, signal.SIGTERM)
                kill_at = time.monotonic() + GRACE_SECONDS
            elif reason is not None and time.monotonic() > kill_at:
                _kill_group(pid)
            # the cancel file is looked at every 50 ms at most; the link's cancel and the child's end wake it at once
            timeout = 0.05 if pidfd >= 0 else pause
            for key, _ in sel.select(timeout):
                if key.data == "link" and link is not None:
                    link.receive()
                    if not link.open:
                        sel.unregister(key.fileobj)
            pause = min(pause * 1.5, 0.02)
    finally:
        sel.close()
        if pidfd >= 0:
            os.close(pidfd)


def run_task(task: dict[str, Any], link: Link | None = None) -> int:
    """Fork, run the task in the child, wait for it (honouring a cancel) and record how it ended."""
    job_dir = Path(task["job_dir"])
    (job_dir / ".nbml").mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns (its coverage is the task's)
        if link is not None:
            link.sock.close()  # the child has no business with the worker's link
        _child(task)
    (job_dir / PID_FILE).write_text(str(pid))
    try:
        code, reason = _wait_child(pid, job_dir, link)
    finally:
        _kill_group(pid)  # anything the task left running in its group ends with it
    write_exit(job_dir, code, reason)
    if link is not None:
        link.cancels.discard(str(job_dir))
        link.send({"exit": str(job_dir), "code": code, "reason": reason})  # after the file: it is the record
    return code


def _claim(inbox: Path) -> tuple[Path, dict[str, Any]] | None:
    try:
        names = sorted(n for n in os.listdir(inbox) if n.endswith(".json"))
    except FileNotFoundError:
        return None
    for name in names:
        path = inbox / name
        try:
            task = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # not written completely yet (the supervisor renames it in place when it is)
        return path, task
    return None


def select_readable(sock: socket.socket, timeout: float) -> tuple[list[Any], list[Any], list[Any]]:
    import select

    try:
        return select.select([sock], [], [], timeout)
    except (OSError, ValueError):
        return [], [], []


def serve(folder: Path) -> int:
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    os.environ[WORKER_DIR_VAR] = str(folder)
    print(f"warm worker {os.getpid()} starting in {folder}", flush=True)
    link = Link.connect(cfg)  # first, so the supervisor knows it while the imports below take their time
    shared = _shared_side(cfg)  # a worker of script runs that opt in: it listens for claimants (warm_shared)
    for name in cfg.get("preload") or []:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a module the tasks may not need: they import it themselves if they do
            print(f"preloading {name} failed: {type(exc).__name__}: {exc}", flush=True)
    if cfg.get("setup"):
        module, _, func = str(cfg["setup"]).partition(":")
        try:
            getattr(importlib.import_module(module), func)(folder)
        except Exception:
            print(f"the worker's setup {cfg['setup']} failed (the tasks do it themselves):", flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    # What the worker holds now (modules, training data) lives on in every child it forks: out of the garbage
    # collector's sight, so a child's collections don't walk it and copy its pages (copy-on-write) for nothing.
    gc.collect()
    gc.freeze()
    lease_s = float(cfg.get("lease_seconds") or 60)
    inbox = folder / INBOX
    inbox.mkdir(exist_ok=True)
    print(f"warm worker {os.getpid()} ready{' (linked to its supervisor)' if link else ''}", flush=True)
    pause, done, idle_since = 0.001, 0, time.monotonic()
    while True:
        if (link is not None and link.stop) or (folder / STOP_FILE).exists():
            while link is not None and link.removals:
                shutil.rmtree(link.removals.popleft(), ignore_errors=True)
            if shared is not None:
                shared.close()
            print(f"warm worker {os.getpid()} stopped after {done} tasks", flush=True)
            return 0
        task: dict[str, Any] | None = link.tasks.popleft() if link is not None and link.tasks else None
        if task is None and link is not None and link.removals:
            # a finished child's folder, released by the supervisor: removed here, off its event loop's core
            shutil.rmtree(link.removals.popleft(), ignore_errors=True)
            continue
        if task is None:
            claimed = _claim(inbox)
            if claimed is not None:
                path, task = claimed
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue  # taken back by the supervisor (a cancel before it started)
        if task is None:
            try:
                stale = time.time() - (folder / LEASE_FILE).stat().st_mtime > lease_s
            except FileNotFoundError:
                stale = True
            if stale and (shared is None or shared.retire(folder / LEASE_FILE)):
                print(f"warm worker {os.getpid()}: its supervisor stopped renewing the lease; exiting after "
                      f"{done} tasks", flush=True)
                return 0
            if shared is not None:  # a claimant's connection wakes it as a message does
                link = shared.wait(link, 0.1 if link is not None and link.open else pause)
                pause = min(pause * 1.3, 0.01 if time.monotonic() - idle_since < 5 else 0.1)
                continue
            if link is not None and link.open:  # tasks come over the link: sleep until one does
                ready, _, _ = select_readable(link.sock, 0.1)
                if ready:
                    link.receive()
                continue
            time.sleep(pause)
            # ready within ~10 ms while children keep coming, then checking less often when idle
            pause = min(pause * 1.3, 0.01 if time.monotonic() - idle_since < 5 else 0.1)
            continue
        try:
            code = run_task(task, link)
        except OSError as exc:  # its folder is gone (canceled and cleaned up): nothing to run or record
            print(f"{task.get('run_id')}: not run: {exc}", flush=True)
            continue
        done += 1
        print(f"{task.get('run_id')}: exit code {code}", flush=True)
        pause, idle_since = 0.001, time.monotonic()


def _shared_side(cfg: dict[str, Any]) -> Any:
    if not cfg.get("shared"):
        return None
    from nbml.runs.warm_shared import WorkerSide

    return WorkerSide(cfg)


def main() -> int:
    return serve(Path(os.getcwd()))


if __name__ == "__main__":
    sys.exit(main())
