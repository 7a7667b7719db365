"""Find the processes a test session started that outlive it (supervisors, Dask cluster hosts, sshd, jobs).

A process belongs to the session when it started after the session did and either descends from the
pytest process or carries the session's mark in its environment (``NBML_TEST_SESSION``, inherited by
every detached supervisor, cluster host and local job; the test sshd passes it to its sessions, so remote
jobs carry it too). Processes of other test sessions on the same machine are left alone.
"""

from __future__ import annotations

import os
import time
import uuid

import psutil

MARK = "NBML_TEST_SESSION"


class LeakCheck:
    def __init__(self) -> None:
        self.mark = uuid.uuid4().hex
        os.environ[MARK] = self.mark
        self.started = time.time()
        self.me = psutil.Process()
        self.before = {p.pid for p in psutil.process_iter()}

    def _ours(self, proc: psutil.Process, descendants: set[int]) -> bool:
        try:
            if proc.pid == self.me.pid or proc.pid in self.before or proc.create_time() < self.started - 1:
                return False
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return proc.pid in descendants or proc.environ().get(MARK) == self.mark
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    def survivors(self) -> list[psutil.Process]:
        try:
            descendants = {p.pid for p in self.me.children(recursive=True)}
        except psutil.Error:
            descendants = set()
        return [p for p in psutil.process_iter() if self._ours(p, descendants)]

    def leaked(self, grace: float = 20.0) -> list[tuple[int, str]]:
        """(pid, command line) of what still runs after `grace` seconds (processes told to stop may be ending)."""
        deadline = time.monotonic() + grace
        alive = self.survivors()
        while alive and time.monotonic() < deadline:
            time.sleep(0.5)
            alive = self.survivors()
        found = []
        for proc in alive:
            try:
                found.append((proc.pid, " ".join(proc.cmdline())[:300] or proc.name()))
            except psutil.Error:
                continue
        return found

    def clean_up(self, pids: list[int]) -> None:
        """Stop the leaked processes (by pid, only those found above): TERM, then KILL after 5 s."""
        procs = []
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                proc.terminate()
                procs.append(proc)
            except psutil.Error:
                continue
        _gone, alive = psutil.wait_procs(procs, timeout=5)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                continue
