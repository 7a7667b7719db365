"""An MPI gang job refuses to start, naming the node, when a worker of the cluster has no Open MPI (a real
in-process Dask cluster whose workers see a PATH without mpirun/orted)."""

from __future__ import annotations

import asyncio

import pytest

from nbml.compute import _dask_gang
from nbml.errors import ComputeTargetException

pytestmark = pytest.mark.dask


def test_mpi_gang_start_names_the_worker_without_open_mpi(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from distributed import Client, LocalCluster

    async def check() -> dict[str, str]:
        async with LocalCluster(n_workers=2, processes=False, asynchronous=True, dashboard_address=None) as cluster, \
                Client(cluster, asynchronous=True) as client:
            await client.wait_for_workers(2)
            workers = sorted((await client.scheduler.identity())["workers"])
            hosts = ["127.0.0.1", "127.0.0.1"]
            env = await _dask_gang._mpi_environ(client, workers, hosts, "/venv/bin/python",
                                                {"process_count_per_node": 2})
            monkeypatch.setenv("PATH", str(tmp_path))  # the workers (threads of this process) lose Open MPI
            with pytest.raises(ComputeTargetException, match=r"node 0 \(Dask worker inproc://.*\) has no `mpirun` or "
                                                             r"`orted` on its PATH.*apt-get install openmpi-bin"):
                await _dask_gang._mpi_environ(client, workers, hosts, "", {"process_count_per_node": 2})
            return env

    import shutil

    if shutil.which("mpirun") is None:
        pytest.skip("Open MPI is not installed (.ci/steps/45-distributed.sh installs it)")
    env = asyncio.run(check())
    assert env["NBML_MPI_HOSTS"] == "localhost:2,nbml-node-1:2"
    assert env["OMPI_MCA_plm_rsh_agent"] == "/venv/bin/python -m nbml.compute._dask_mpi agent"
    assert env["OMPI_MCA_btl_tcp_if_include"] == "lo"  # every worker on loopback: MPI's TCP may use it
