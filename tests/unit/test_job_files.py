"""Job files are listed, read and copied without ever following a link out of the job folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbml.compute import _staging


@pytest.fixture
def job(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET")
    job = tmp_path / "job"
    (job / "outputs" / "sub").mkdir(parents=True)
    (job / "outputs" / "model.bin").write_bytes(b"weights")
    (job / "outputs" / "sub" / "a.txt").write_text("a")
    os.symlink(outside / "secret.txt", job / "outputs" / "leak.txt")
    os.symlink(outside, job / "outputs" / "elsewhere")
    os.symlink(outside, job / "logs")  # a whole prefix replaced by a link
    return job


def test_listing_skips_links_and_linked_folders(job: Path) -> None:
    assert _staging.list_tree(job, "outputs") == [("outputs/model.bin", 7), ("outputs/sub/a.txt", 1)]
    assert _staging.list_tree(job, "logs") == []


def test_reading_and_copying_refuse_links(job: Path, tmp_path: Path) -> None:
    assert _staging.read_bytes(job / "outputs" / "model.bin", 2, 3, job) == b"igh"
    for rel in ("outputs/leak.txt", "outputs/elsewhere/secret.txt", "logs/secret.txt", "../outside/secret.txt"):
        assert _staging.read_bytes(job / rel, 0, 100, job) == b""
        with pytest.raises(FileNotFoundError, match="not a regular file"):
            _staging.copy_out(job, rel, tmp_path / "copy")
    _staging.copy_out(job, "outputs/sub/a.txt", tmp_path / "back" / "a.txt")
    assert (tmp_path / "back" / "a.txt").read_text() == "a"


def test_a_planted_fifo_or_folder_is_refused_without_hanging(job: Path, tmp_path: Path) -> None:
    os.mkfifo(job / "outputs" / "pipe")  # opening it for reading would block until a writer came
    assert _staging.read_bytes(job / "outputs" / "pipe", 0, 10, job) == b""
    assert _staging.read_bytes(job / "outputs" / "sub", 0, 10, job) == b""  # a folder is not a file
    assert ("outputs/pipe", 0) not in _staging.list_tree(job, "outputs")
    with pytest.raises(FileNotFoundError, match="not a regular file"):
        _staging.copy_out(job, "outputs/pipe", tmp_path / "copy")


def test_a_link_inside_the_folder_is_refused_too(job: Path) -> None:
    os.symlink("model.bin", job / "outputs" / "alias.bin")  # inside, but a link: copy-back never follows one
    assert _staging.read_bytes(job / "outputs" / "alias.bin", 0, 10, job) == b""
    assert _staging.read_bytes(job / "outputs" / "sub" / "a.txt", 0, 10, job) == b"a"
