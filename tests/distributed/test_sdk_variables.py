"""What the SDK's PyTorch estimator gave a script, nbml gives too: the Batch AI variables in script_params.

The SDK ran the entry script through a shell, so ``script_params={"--rank": "$AZ_BATCHAI_TASK_INDEX"}``
reached each process as its own rank; nbml's launcher expands those names per rank. Real torch.distributed
(gloo, ``init_method`` from ``$AZ_BATCHAI_PYTORCH_INIT_METHOD``) with DataLoader worker processes.
"""

from __future__ import annotations

import json
import warnings

import pytest

from nbml import Experiment
from nbml.compute._ranks import expand_argv
from nbml.train.dnn import Gloo, PyTorch

torch = pytest.importorskip("torch")

DDP = """
import argparse, json, os
import torch
import torch.distributed as dist
from nbml import Run

p = argparse.ArgumentParser()
p.add_argument("--dist-url")
p.add_argument("--rank", type=int)
p.add_argument("--world-size", type=int)
p.add_argument("--workers", type=int)
p.add_argument("--note")
args = p.parse_args()
dist.init_process_group("gloo", init_method=args.dist_url, world_size=args.world_size, rank=args.rank)
t = torch.tensor([float(args.rank + 1)])
dist.all_reduce(t)
data = torch.utils.data.TensorDataset(torch.arange(32, dtype=torch.float32))
sampler = torch.utils.data.distributed.DistributedSampler(data)
loader = torch.utils.data.DataLoader(data, batch_size=4, sampler=sampler, num_workers=args.workers,
                                     pin_memory=torch.cuda.is_available())
seen = sum(len(b[0]) for b in loader)
Run.get_context().log("rank", json.dumps({"rank": args.rank, "url": args.dist_url, "sum": t.item(),
                                          "seen": seen, "note": args.note,
                                          "task_index": os.environ["AZ_BATCHAI_TASK_INDEX"]}))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_batchai_variables_in_script_params_are_each_ranks_own(ws, project) -> None:  # type: ignore[no-untyped-def]
    project(**{"ddp.py": DDP})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = PyTorch(".", entry_script="ddp.py", compute_target="local", process_count_per_node=2,
                      distributed_training=Gloo(), use_gpu=True,
                      script_params={"--dist-url": "$AZ_BATCHAI_PYTORCH_INIT_METHOD", "--rank": "$AZ_BATCHAI_TASK_INDEX",
                                     "--world-size": 2, "--workers": 2, "--note": "$HOME-is-not-expanded"})
    assert any("use_gpu" in str(w.message) for w in caught)  # said, not failed
    run = Experiment(ws, "batchai").submit(est)
    run.wait_for_completion(timeout_seconds=240, raise_on_error=False)
    assert run.get_status() == "Completed", run.get_details().get("error")
    values = run.get_metrics()["rank"]
    ranks = sorted((json.loads(v) for v in values), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranks] == [0, 1] and [r["task_index"] for r in ranks] == ["0", "1"]
    assert {r["url"] for r in ranks} == {ranks[0]["url"]} and ranks[0]["url"].startswith("tcp://127.0.0.1:")
    assert {r["sum"] for r in ranks} == {3.0}  # the all_reduce saw both ranks
    assert sum(r["seen"] for r in ranks) == 32  # two DataLoader worker processes per rank fed the whole set
    assert {r["note"] for r in ranks} == {"$HOME-is-not-expanded"}  # only the runtime's names are expanded


def test_expansion_keeps_unknown_names_and_dollars() -> None:
    env = {"AZ_BATCHAI_TASK_INDEX": "3", "RANK": "3", "HOME": "/root", "AZUREML_RUN_ID": "r1"}
    assert expand_argv(["--rank", "$AZ_BATCHAI_TASK_INDEX", "${RANK}", "$HOME", "pa$$word", "$AZ_BATCHAI_NOPE",
                        "out/${AZUREML_RUN_ID}/x"], env) == \
        ["--rank", "3", "3", "$HOME", "pa$$word", "$AZ_BATCHAI_NOPE", "out/r1/x"]
