"""Progress of long work: a snapshot of thousands of files shows counts and sizes, short or logged work shows none."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbml import Workspace
from nbml.snapshot import take_snapshot


def many_files(root: Path, count: int) -> Path:
    src = root / "src"
    for i in range(count):
        folder = src / f"d{i // 500}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.txt").write_text(str(i))
    return src


def test_a_snapshot_of_5000_files_shows_counts_and_size(ws: Workspace, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = many_files(tmp_path, 5000)
    monkeypatch.setenv("NBML_PROGRESS", "1")  # stderr is captured here, not a terminal: ask for the line anyway
    snap = take_snapshot(ws, src)
    assert snap.file_count == 5000
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "Snapshot of src" in last and "5000/5000" in last and "files" in last
    assert "18.9 kB" in last  # the bytes copied: str(0)...str(4999)
    assert "Scanning src" in err


def test_no_progress_where_nobody_watches(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = many_files(tmp_path, 300)
    monkeypatch.delenv("NBML_PROGRESS", raising=False)  # auto: stderr is not a terminal (a log, a pipe)
    take_snapshot(ws, src)
    monkeypatch.setenv("NBML_PROGRESS", "0")
    (src / "new.txt").write_text("x")
    take_snapshot(ws, src)
    assert capsys.readouterr().err == ""


def test_supervisor_side_progress_is_plain_log_lines_with_counts_and_sizes() -> None:
    from nbml._progress import LogProgress

    lines: list[str] = []
    upload = LogProgress(lines.append, "Uploading to host", total=3, total_bytes=3_000_000, interval=0)
    for _ in range(3):
        upload.update(1, nbytes=1_000_000)
    upload.close()
    assert lines[0].startswith("Uploading to host: 1/3 files, 1.0 MB of 3.0 MB")
    assert lines[-1].startswith("Uploading to host: 3/3 files, 3.0 MB of 3.0 MB")
    assert not any("\r" in line for line in lines)

    quiet: list[str] = []
    short = LogProgress(quiet.append, "Uploading to host", total=2)  # done within the 2 s interval
    short.update(2, nbytes=10)
    short.close()
    assert quiet == []


def test_an_environment_build_shows_its_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from nbml.compute.base import EnvSpec
    from nbml.envbuild import ensure_local_env

    monkeypatch.setenv("NBML_PROGRESS", "1")
    spec = EnvSpec(name="tiny", hash="progress-test", user_managed=False, pip=["six==1.16.0"])
    python = ensure_local_env(tmp_path / "envs", spec, lambda _line: None)
    assert Path(python).exists()
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "Building environment tiny: 1 packages" in last and "six" in last
