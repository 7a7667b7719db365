# ruff: noqa: UP031, UP021 - %-formatting, universal_newlines: this file runs on the host's Python 3.6+
"""The helper the SSH backend runs on the remote host (``python3 -c SOURCE OP ARGS...``).

Standard library only, Python 3.6+: it must run on any host with sshd and a Python. Each operation reads
its input as JSON (or a blob stream) on stdin and answers one JSON line on stdout. The local side keeps
the file's text in ``SOURCE``; nothing here is imported by nbml itself.

Operations
----------
info                       interpreter, platform and home directory (checked when a target is attached)
stage ROOT JOB_DIR         {"files": {rel: [sha, mode, size]}, "extra": {rel: base64}, "link"} ->
                           {"missing": [sha...]}; files whose blob is cached are placed in the folder at once
receive ROOT JOB_DIR       blob stream ("SHA SIZE\\n" + bytes, ...) after a JSON line of pending files;
                           verifies every blob's sha256, caches it, then copies the pending files
start JOB_DIR              {"cmd", "env"} -> {"pid", "start"}; the job runs in its own session (once)
poll JOB_DIR PID START     {"dir", "alive", "exit_code"} (for hosts without /proc)
cancel PID GRACE           TERM to the process group, KILL after GRACE seconds
remove RUN_ROOT JOB_DIR    deletes a finished job's folder
list JOB_DIR PREFIX        {"files": [[rel, size]...]}: regular files under PREFIX, never through a symbolic
                           link (hosts without SFTP; with SFTP the backend lists over it)
venv ROOT HASH PYTHON      builds ROOT/envs/HASH from {"pip": [...]} once (locked), streaming pip's output
"""

import base64
import hashlib
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

LAYOUT = ("outputs", "logs", "nbml-logs", ".nbml")


def _out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _blob(root, sha):
    return os.path.join(root, "blobs", sha[:2], sha)


class Placer:
    """Puts cached blobs into a folder: a hard link when the cache and the folder share a filesystem and the
    modes agree (fast: no data is written), else a copy.

    Cache blobs carry mtime 0. A job that rewrites one of its files in place also rewrites the blob it is
    linked to; the next stage sees the blob's mtime or size changed, drops it from the cache and has it sent
    again, so later runs never get altered content (use copy_files=True for full isolation).
    """

    def __init__(self, root, folder, link):
        self.root, self.folder, self.link = root, folder, link
        self.dirs = set()

    def cached(self, sha, size):
        """The cached blob's mode if it is there intact, else None."""
        path = _blob(self.root, sha)
        try:
            st = os.stat(path)
        except OSError:
            return None
        if st.st_size != size or int(st.st_mtime) != 0:
            os.unlink(path)  # altered through a job's link: only that job keeps the altered copy
            return None
        return st.st_mode & 0o777

    def place(self, rel, sha, mode, blob_mode=None):
        dest = os.path.join(self.folder, rel)
        parent = os.path.dirname(dest)
        if parent not in self.dirs:
            os.makedirs(parent, exist_ok=True)
            self.dirs.add(parent)
        src = _blob(self.root, sha)
        mode = mode & 0o777 or 0o644
        if blob_mode is None:
            blob_mode = os.stat(src).st_mode & 0o777
        if self.link and blob_mode == mode:
            try:
                os.link(src, dest)
                return
            except FileExistsError:
                os.unlink(dest)
                os.link(src, dest)
                return
            except OSError:
                self.link = False  # another filesystem, or links not allowed: copy from now on
        shutil.copyfile(src, dest)
        os.chmod(dest, mode)


def op_info():
    _out({"python": sys.executable, "version": list(sys.version_info[:3]), "platform": sys.platform,
          "home": os.path.expanduser("~")})


def op_stage(root, job_dir):
    spec = json.load(sys.stdin)
    marker = os.path.join(job_dir, ".nbml-ready")
    if spec.get("marker") and os.path.exists(marker):
        _out({"missing": [], "ready": True})
        return
    for sub in spec.get("layout", LAYOUT):
        os.makedirs(os.path.join(job_dir, sub), exist_ok=True)
    missing = set()
    placer = Placer(root, job_dir, spec.get("link", True))
    for rel, (sha, mode, size) in spec["files"].items():
        blob_mode = None if sha in missing else placer.cached(sha, size)
        if blob_mode is not None:
            placer.place(rel, sha, mode, blob_mode)
        else:
            missing.add(sha)
    if spec.get("marker") and not missing:
        open(marker, "w").close()
    for rel, data in spec.get("extra", {}).items():
        dest = os.path.join(job_dir, rel)
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        with open(dest, "wb") as f:
            f.write(base64.b64decode(data))
    _out({"missing": sorted(missing)})


def _create(path, parents):
    parent = os.path.dirname(path)
    if parent not in parents:
        os.makedirs(parent, exist_ok=True)
        parents.add(parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return os.open(path, flags, 0o600)
    except FileExistsError:  # left by an attempt cut short: never write through an old link
        os.unlink(path)
        return os.open(path, flags, 0o600)


def op_receive(root, job_dir):
    stream = sys.stdin.buffer
    pending = json.loads(stream.readline())
    first = {}  # sha -> the first file that needs it: written in place, then linked into the cache
    for rel, (sha, mode, _size) in pending["files"].items():
        first.setdefault(sha, (rel, mode & 0o777 or 0o644))
    placer = Placer(root, job_dir, pending.get("link", True))
    written = set()
    received = nbytes = 0
    while True:
        header = stream.readline()
        if not header.strip():
            break
        sha, size = header.decode().split()
        size = int(size)
        blob = _blob(root, sha)
        rel, mode = first.get(sha, (None, 0o644))
        direct = rel is not None and placer.link
        target = os.path.join(job_dir, rel) if direct else "%s.%d.tmp" % (blob, os.getpid())
        fd = _create(target, placer.dirs)
        digest = hashlib.sha256()
        try:
            left = size
            while left:
                chunk = stream.read(min(left, 1 << 20))
                if not chunk:
                    raise SystemExit("blob stream ended early")
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
                left -= len(chunk)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        if digest.hexdigest() != sha:
            os.unlink(target)
            raise SystemExit("blob %s arrived corrupted" % sha)
        os.utime(target, (0, 0))  # the cache's mark: a blob whose mtime moved was altered through a link
        if direct:
            written.add(rel)
            if os.path.dirname(blob) not in placer.dirs:
                os.makedirs(os.path.dirname(blob), exist_ok=True)
                placer.dirs.add(os.path.dirname(blob))
            try:
                os.link(target, blob)
            except FileExistsError:
                pass  # another upload cached the same content meanwhile
            except OSError:  # the cache is on another filesystem: keep a copy there, copy from now on
                placer.link = False
                tmp = "%s.%d.tmp" % (blob, os.getpid())
                shutil.copyfile(target, tmp)
                os.chmod(tmp, mode)
                os.utime(tmp, (0, 0))
                os.replace(tmp, blob)
        else:
            os.replace(target, blob)
        received += 1
        nbytes += size
    for rel, (sha, mode, _size) in pending["files"].items():
        if rel not in written:
            placer.place(rel, sha, mode)
    if pending.get("marker"):
        open(os.path.join(job_dir, ".nbml-ready"), "w").close()
    _out({"received": received, "bytes": nbytes})


def _procfs():
    # Linux hosts: the SSH backend polls /proc/PID/stat over SFTP (three file reads instead of starting a
    # process at every poll), so the start token here must be the same field it compares.
    return os.path.isdir("/proc/self")


def _starttime(pid):
    """(state letter, start token) of process PID, or (None, None) if it doesn't run.

    The token tells a reused pid from the job's process: /proc's start ticks on Linux; elsewhere (macOS,
    BSD) psutil's create time when the host's Python has psutil, else what ps prints (standard on both).
    """
    if _procfs():
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None, None
        return fields[0], fields[19]  # state, starttime (clock ticks since boot)
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            proc = psutil.Process(pid)
            state = "Z" if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD) else "R"
            return state, "%.2f" % proc.create_time()
        except psutil.NoSuchProcess:
            return None, None
        except psutil.Error:
            pass
    try:
        out = subprocess.run(["ps", "-o", "stat=", "-o", "lstart=", "-p", str(pid)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, universal_newlines=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None, None
    line = out.stdout.strip()
    if out.returncode != 0 or not line:
        return None, None
    state, _, started = line.partition(" ")
    return state[:1], " ".join(started.split())


def op_start(job_dir):
    spec = json.load(sys.stdin)
    pid_file = os.path.join(job_dir, ".nbml", "pid")
    if os.path.exists(pid_file):  # started already (the caller retries after a dropped link)
        with open(pid_file) as f:
            pid, start = f.read().split()
        _out({"pid": int(pid), "start": start})
        return
    env = dict(os.environ)
    for name, value in spec.get("env", {}).items():
        env[name] = os.path.expanduser(value) if value.startswith("~/") else value
    devnull = os.open(os.devnull, os.O_RDWR)
    # start_new_session: its own session and process group, so it outlives this SSH connection and
    # cancel can signal the whole tree at once.
    proc = subprocess.Popen(spec["cmd"], cwd=job_dir, env=env, stdin=devnull, stdout=devnull,
                            stderr=devnull, start_new_session=True, close_fds=True)
    start = _starttime(proc.pid)[1]
    with open(pid_file + ".tmp", "w") as f:
        f.write("%d %s" % (proc.pid, start))
    os.replace(pid_file + ".tmp", pid_file)
    _out({"pid": proc.pid, "start": start})


def _alive(pid, start):
    state, now = _starttime(pid)
    if state is not None:
        return state not in ("Z", "X") and (start is None or start == "None" or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_code(job_dir):
    try:
        with open(os.path.join(job_dir, ".nbml", "exit_code")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def op_poll(job_dir, pid, start):
    # Facts only; the local side turns them into a state (hosts with /proc are polled over SFTP instead).
    alive = _alive(int(pid), start)
    _out({"dir": os.path.isdir(job_dir), "alive": alive, "exit_code": None if alive else _exit_code(job_dir)})


def _group_alive(pgid):
    """Whether any process of the group still runs (zombies left for init to reap don't count)."""
    if not _procfs():
        try:
            out = subprocess.run(["ps", "-A", "-o", "pgid=", "-o", "stat="], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, universal_newlines=True, timeout=10)
            rows = [line.split() for line in out.stdout.splitlines()]
            return any(len(r) >= 2 and r[0] == str(pgid) and r[1][:1] not in ("Z", "X") for r in rows)
        except (OSError, subprocess.SubprocessError):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return False
            return True
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def op_cancel(pid, grace):
    pid = int(pid)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        _out({"signalled": False})
        return
    deadline = time.time() + float(grace)
    while time.time() < deadline:
        if not _group_alive(pid):
            _out({"signalled": True})
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _out({"signalled": True})


def op_venv(root, env_hash, python):
    spec = json.load(sys.stdin)
    env_dir = os.path.join(root, "envs", env_hash)
    exe = os.path.join(env_dir, "bin", "python")
    os.makedirs(os.path.join(root, "envs"), exist_ok=True)
    import fcntl

    with open(env_dir + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs needing the same env build it once
        if not os.path.exists(os.path.join(env_dir, ".nbml-ready")):
            shutil.rmtree(env_dir, ignore_errors=True)
            # Layered over the host interpreter's packages, as local envs are, so they aren't downloaded again;
            # its pip serves the venv too (ensurepip only when the host has none: it is slow).
            steps = [[python, "-m", "venv", "--system-site-packages", "--without-pip", env_dir]]
            if spec.get("pip"):
                if subprocess.call([python, "-m", "pip", "--version"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL):
                    steps.append([exe, "-m", "ensurepip"])
                steps.append([exe, "-m", "pip", "install", "--disable-pip-version-check", *spec["pip"]])
            for cmd in steps:
                sys.stdout.write("$ %s\n" % " ".join(shlex.quote(c) for c in cmd))
                sys.stdout.flush()
                code = subprocess.call(cmd, stdout=sys.stdout, stderr=subprocess.STDOUT)
                if code:
                    shutil.rmtree(env_dir, ignore_errors=True)
                    _out({"error": "%s exited with %d" % (" ".join(cmd[:4]), code)})
                    return
            open(os.path.join(env_dir, ".nbml-ready"), "w").close()
    _out({"python": exe})


def op_list(job_dir, prefix):
    root = os.path.realpath(job_dir)
    base = os.path.normpath(os.path.join(root, prefix.strip("/")))
    found = []
    # A prefix that is itself a link, or a link inside it, is skipped: only what is in the job folder comes back.
    inside = (base + os.sep).startswith(root + os.sep)
    if inside and os.path.realpath(base) == base and os.path.isdir(base):
        for dirpath, _dirs, names in os.walk(base):  # never descends into linked folders
            for name in names:
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.append([os.path.relpath(full, root), st.st_size])
    _out({"files": sorted(found)})


def op_remove(run_root, job_dir):
    # Only ever a folder directly under the run root: a bad handle can't remove anything else.
    if os.path.dirname(os.path.normpath(job_dir)) != os.path.normpath(run_root):
        raise SystemExit("refusing to remove %s: not a job folder under %s" % (job_dir, run_root))
    shutil.rmtree(job_dir, ignore_errors=True)
    _out({"removed": job_dir})


if __name__ == "__main__":
    globals()["op_" + sys.argv[1]](*[os.path.expanduser(a) for a in sys.argv[2:]])
