"""Copy-back never follows a link out of the job folder: a job can't have other files copied into its run."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nbml import Experiment, ScriptRunConfig

PLANT = """
import os, sys
outside = sys.argv[1]
os.makedirs("outputs/sub", exist_ok=True)
os.makedirs("logs", exist_ok=True)
open("outputs/real.txt", "w").write("mine")
os.symlink("/etc/passwd", "outputs/x")
os.symlink(os.path.join(outside, "secret.txt"), "outputs/sub/leak.txt")
os.symlink(outside, "outputs/elsewhere")
os.symlink(os.path.join(outside, "secret.txt"), "logs/leak.log")
os.symlink("real.txt", "outputs/alias.txt")  # a link inside the folder: kept as a link or skipped, both fine
print("planted")
"""


@pytest.mark.parametrize("kind", ["local", pytest.param("ssh", marks=pytest.mark.ssh),
                                  pytest.param("docker", marks=pytest.mark.docker)])
def test_links_out_of_the_job_folder_are_not_copied_back(ws, project, tmp_path: Path, request, kind: str):
    target = request.getfixturevalue(f"target_{kind}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET-CONTENT")
    project(**{"plant.py": PLANT})
    run = Experiment(ws, "links").submit(ScriptRunConfig(".", "plant.py", arguments=[str(outside)],
                                                         compute_target=target))
    run.wait_for_completion(raise_on_error=True, timeout_seconds=120)
    assert (run.run_dir / "outputs" / "real.txt").read_text() == "mine"
    passwd = Path("/etc/passwd").read_bytes()
    for dirpath, dirnames, filenames in os.walk(run.run_dir):
        for name in filenames + dirnames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                target_path = os.path.realpath(path)
                assert not target_path.startswith((str(outside), "/etc")), f"{path} links out to {target_path}"
            elif stat.S_ISREG(st.st_mode):
                data = path.read_bytes()
                assert b"SECRET-CONTENT" not in data and data != passwd, f"{path} holds content from outside"
    assert not (run.run_dir / "outputs" / "elsewhere").is_dir() or (run.run_dir / "outputs" / "elsewhere").is_symlink()
    assert "planted" in (run.run_dir / "nbml-logs" / "driver_log.txt").read_text()
