"""``Tensorboard([run, ...]).start()``: a real TensorBoard over runs' ``logs/`` folders, live while they run.

A run's ``logs/`` is mirrored into its run folder while it runs, from whichever target runs it (the
supervisor appends new bytes of every file under the job's ``logs/`` every few seconds, see
``nbml.runs.executor``), so TensorBoard reads the run folders and follows them as they grow: nothing is
downloaded. TensorBoard is a child process bound to 127.0.0.1; ``stop()`` (or the end of the Python
process) ends it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nbml.errors import UserErrorException

#: How long start() waits for TensorBoard to answer before it gives up (it loads plugins on start).
START_TIMEOUT = float(os.environ.get("NBML_TENSORBOARD_START_TIMEOUT", "120"))
#: Started and not stopped: kept alive (``Tensorboard([run]).start()`` without a name still serves) and
#: stopped when the Python process exits.
_LIVE: set[Tensorboard] = set()


def require_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserErrorException("TensorBoard isn't installed in this Python; install it with "
                                 "pip install 'nbml[tensorboard]' (or pip install tensorboard).") from None


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


class Tensorboard:
    """TensorBoard over the ``logs/`` folders of `runs` (SDK: ``Tensorboard(runs, local_root, port)``).

    ``local_root`` is accepted for the SDK's sake: the runs' logs are already on this machine, in their
    run folders, so nothing is copied there.
    """

    def __init__(self, runs: Iterable[Any], local_root: str | None = None, port: int = 6006) -> None:
        self.runs = list(runs)
        if not self.runs:
            raise UserErrorException("Tensorboard needs at least one run: Tensorboard([run]).")
        for run in self.runs:
            if not hasattr(run, "run_dir"):
                raise UserErrorException(f"Tensorboard takes runs of this workspace (Run objects); got "
                                         f"{type(run).__name__}. Inside a training script, write TensorBoard "
                                         "files to ./logs and open them from the notebook.")
        self.local_root = local_root
        self.port = port
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def logdir_spec(self) -> str:
        """``name:folder,...`` with each run's ``logs/`` folder, named by run id (one name per run)."""
        parts, seen = [], set()
        for run in self.runs:
            if run.id in seen:
                continue
            seen.add(run.id)
            logs = Path(run.run_dir) / "logs"
            logs.mkdir(parents=True, exist_ok=True)  # a run that hasn't written yet: TensorBoard waits on it
            parts.append(f"{run.id}:{logs}")
        return ",".join(parts)

    def start(self, start_browser: bool = False) -> str:
        """Start TensorBoard; returns its URL. Calling it again while it runs returns the same URL."""
        if self._proc is not None and self._proc.poll() is None and self.url:
            return self.url
        require_tensorboard()
        port = _free_port(self.port)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - read back only when it fails to start
        cmd = [sys.executable, "-m", "tensorboard.main", "--logdir_spec", self.logdir_spec(), "--host", "127.0.0.1",
               "--port", str(port), "--reload_interval", "2", "--reload_multifile", "true"]
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        _LIVE.add(self)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            code = self._proc.poll()
            if code is not None:
                output = self._output()
                self.stop()
                raise RuntimeError(f"TensorBoard exited (code {code}) before it answered:\n{output}")
            try:
                with urllib.request.urlopen(url + "data/environment", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                output = self._output()
                self.stop()
                raise TimeoutError(f"TensorBoard did not answer on {url} within {START_TIMEOUT:g} s:\n{output}")
            time.sleep(0.3)
        self.url = url
        if start_browser:
            import webbrowser

            webbrowser.open(url)
        return url

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return str(self._log.read()[-4000:].decode(errors="replace"))

    def stop(self) -> None:
        """End TensorBoard (its whole process group); a no-op when it isn't running."""
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.url = None

    def __enter__(self) -> Tensorboard:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url or "not started"
        return f"Tensorboard(runs={[r.id for r in self.runs]}, {state})"


@atexit.register
def _stop_all() -> None:
    for tb in list(_LIVE):
        tb.stop()
