"""Reading, listing and copying a remote job's files, over SFTP or, on hosts without it, over exec channels.

Each function takes the `SshSession` and runs inside `SshSession.call` (so a dropped link is retried). Hosts
whose sshd has no SFTP subsystem (`session.sftp()` is None) get the same results from a POSIX shell: ``tail -c
+N | head -c`` to read by offset, ``cat`` to copy a file back; listing then falls back to the remote helper
(`list_sftp` returns None). Every path is checked as it would be locally: a regular file inside the job folder,
reached without any symbolic link, so a link the job planted never brings back content from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from nbml._extras import missing_extra
from nbml.compute._ssh_conn import SshSession
from nbml.errors import ComputeTargetException

try:
    import asyncssh
except ImportError as exc:  # the ssh extra is not installed
    raise missing_extra("ssh", exc) from exc

CHUNK = 1 << 20
NOT_A_FILE = 3
# POSIX sh: JOB_DIR REL OFFSET LIMIT ("all": to the end). Prints the bytes of a regular file inside the job
# folder reached without any symbolic link; exits 3 (printing nothing) when there is none.
READ_SH = r"""
cd "$1" 2>/dev/null || exit 3
root=$(pwd -P); f=$2; d=$(dirname -- "$f")
[ -f "$f" ] && [ ! -h "$f" ] || exit 3
case $d in .) want=$root ;; *) want=$root/$d ;; esac
[ "$(cd -- "$d" 2>/dev/null && pwd -P)" = "$want" ] || exit 3
if [ "$4" = all ]; then exec cat -- "$f"; fi
tail -c +$(($3 + 1)) -- "$f" | head -c "$4"
"""


def _command(job_dir: str, relpath: str, offset: int, limit: str) -> str:
    from shlex import quote

    return f"/bin/sh -c {quote(READ_SH)} nbml-read {quote(job_dir)} {quote(relpath)} {int(offset)} {quote(limit)}"


def _failed(session: SshSession, what: str, status: int, stderr: object) -> ComputeTargetException:
    err = cast(bytes, stderr or b"").decode(errors="replace").strip()
    return ComputeTargetException(f"{what} on {session.settings.address} failed (exit {status}): {err[-500:]}")


async def read(session: SshSession, job_dir: str, relpath: str, offset: int, limit: int) -> bytes:
    """Up to `limit` bytes of a job file from `offset`; b"" when it is missing or not a plain file."""
    sftp = await session.sftp()
    if sftp is None:
        conn = await session.connection()
        result = await conn.run(_command(job_dir, relpath, offset, str(int(limit))), encoding=None, check=False)
        if result.exit_status is None:
            raise ConnectionResetError("remote read ended without an exit status")
        if result.exit_status not in (0, NOT_A_FILE):
            raise _failed(session, f"Reading {relpath}", result.exit_status, result.stderr)
        return cast(bytes, result.stdout or b"")
    path = f"{job_dir}/{relpath}"
    try:
        if (await sftp.lstat(path)).type != asyncssh.FILEXFER_TYPE_REGULAR:
            return b""
        async with sftp.open(path, "rb") as f:
            return cast(bytes, await f.read(limit, offset))
    except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
        return b""


async def list_sftp(session: SshSession, job_dir: str, prefix: str) -> list[tuple[str, int]] | None:
    """(relative path, size) of the regular files under `prefix` over SFTP; None when the host has no SFTP."""
    sftp = await session.sftp()
    if sftp is None:
        return None
    top = prefix.strip("/")
    try:
        if top and (await sftp.lstat(f"{job_dir}/{top}")).type != asyncssh.FILEXFER_TYPE_DIRECTORY:
            return []  # missing, a plain file, or a link to a folder elsewhere
    except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
        return []
    found: list[tuple[str, int]] = []
    todo = [top]
    while todo:
        rel_dir = todo.pop()
        try:
            entries = await sftp.readdir(f"{job_dir}/{rel_dir}" if rel_dir else job_dir)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, asyncssh.SFTPNotADirectory):
            continue
        for entry in entries:
            name = str(entry.filename)
            if name in (".", ".."):
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            kind = entry.attrs.type  # of the entry itself (lstat): a link is FILEXFER_TYPE_SYMLINK, not followed
            if kind == asyncssh.FILEXFER_TYPE_DIRECTORY:
                todo.append(rel)
            elif kind == asyncssh.FILEXFER_TYPE_REGULAR:
                found.append((rel, int(entry.attrs.size or 0)))
    return sorted(found)


async def fetch(session: SshSession, job_dir: str, relpath: str, tmp: Path) -> None:
    """Copy a job file to the local path `tmp`; FileNotFoundError if it is not a plain file inside the folder."""
    sftp = await session.sftp()
    if sftp is not None:
        path = f"{job_dir}/{relpath}"
        inside = f"{await sftp.realpath(job_dir)}/{relpath}"
        if (await sftp.lstat(path)).type != asyncssh.FILEXFER_TYPE_REGULAR or await sftp.realpath(path) != inside:
            raise FileNotFoundError(f"{relpath} is not a regular file inside the job folder {job_dir} (a link?)")
        await sftp.get(path, str(tmp))
        return
    conn = await session.connection()
    async with conn.create_process(_command(job_dir, relpath, 0, "all"), encoding=None) as proc:
        with open(tmp, "wb") as out:
            while chunk := await proc.stdout.read(CHUNK):
                out.write(chunk)
        result = await proc.wait()
    if result.exit_status is None:
        raise ConnectionResetError("remote copy ended without an exit status")
    if result.exit_status == NOT_A_FILE:
        raise FileNotFoundError(f"{relpath} is not a regular file inside the job folder {job_dir} (a link?)")
    if result.exit_status != 0:
        raise _failed(session, f"Copying {relpath}", result.exit_status, result.stderr)
