"""Compute targets under test. The contract suite (test_contract.py) runs once per kind in `KINDS`.

Adding a kind is one entry in `KINDS` (with its pytest marker) and one fixture ``target_<kind>`` that
makes the target exist in the test's workspace and returns its name.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cluster_factories import dask_target, docker_target, stop_dask_targets
from sshd import (
    SshServer,
    ssh_attach_args,
    sshd_fixture,  # noqa: F401 (the `sshd` fixture)
)

KINDS = [
    pytest.param("local", id="local"),
    pytest.param("ssh", id="ssh", marks=pytest.mark.ssh),
    pytest.param("docker", id="docker", marks=pytest.mark.docker),
    pytest.param("dask", id="dask", marks=pytest.mark.dask),
]


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest) -> str:
    """The name of a ready compute target of every kind, in turn."""
    return str(request.getfixturevalue(f"target_{request.param}"))


@pytest.fixture
def target_local(ws) -> str:  # type: ignore[no-untyped-def]
    return "local"


@pytest.fixture
def target_ssh(ws, sshd: SshServer, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    from nbml import RemoteCompute

    RemoteCompute.attach(ws, "ssh-box", **ssh_attach_args(sshd, tmp_path))
    return "ssh-box"


@pytest.fixture
def target_docker(ws) -> str:  # type: ignore[no-untyped-def]
    return docker_target(ws).name


@pytest.fixture
def target_dask(ws) -> Iterator[str]:  # type: ignore[no-untyped-def]
    target = dask_target(ws)
    yield target.name
    stop_dask_targets(ws)

