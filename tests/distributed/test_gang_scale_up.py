"""A multi-node job on an AmlCompute cluster scaled to zero (min_nodes=0, the SDK samples' default) starts.

Adaptive scaling starts workers for tasks waiting to run, but a gang submits nothing until all its nodes are
idle; without its demand (clusters/<name>/demand/) the job would wait in Starting forever.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nbml import Experiment, ScriptRunConfig
from nbml.core.runconfig import PyTorchConfiguration

sys.path.insert(0, str(Path(__file__).parents[1] / "targets"))

pytestmark = [pytest.mark.slow, pytest.mark.dask]

SCRIPT = """
import json, os
from nbml import Run
Run.get_context().log("where", json.dumps({"rank": os.environ["RANK"], "node": os.environ["NODE_RANK"]}))
"""


def test_a_two_node_job_starts_on_a_cluster_scaled_to_zero(ws, project) -> None:  # type: ignore[no-untyped-def]
    from cluster_factories import dask_target, stop_dask_targets

    project(**{"ranks.py": SCRIPT})
    target = dask_target(ws, name="zero-cluster", min_nodes=0, max_nodes=2, wait=False)
    try:
        run = Experiment(ws, "gang").submit(ScriptRunConfig(
            ".", "ranks.py", compute_target=target,
            distributed_job_config=PyTorchConfiguration("Gloo", process_count=2, node_count=2)))
        run.wait_for_completion(timeout_seconds=240, raise_on_error=False)
        assert run.get_status() == "Completed", run.get_details().get("error")
        values = run.get_metrics()["where"]
        seen = sorted(json.loads(v)["node"] for v in (values if isinstance(values, list) else [values]))
        assert seen == ["0", "1"]
        # The demand is gone once the gang started: the cluster may scale back down when idle.
        assert not list((ws.path / "clusters" / "zero-cluster" / "demand").glob("*"))
    finally:
        stop_dask_targets(ws)
