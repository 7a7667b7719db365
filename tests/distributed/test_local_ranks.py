"""A distributed job on the local target is one run: every rank logs into it, keeps its own log, fails it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from rankwait import alive, wait_ranks

from nbml import Experiment, ScriptRunConfig
from nbml.core.runconfig import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from nbml.train.dnn import Nccl, PyTorch
from nbml.train.estimator import Estimator

ENV_SCRIPT = """
import json, os, sys
from nbml import Run
run = Run.get_context()
names = ["MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "TF_CONFIG"]
seen = {k: os.environ.get(k) for k in names}
print("rank", os.environ["NBML_RANK"], "says hello", flush=True)
run.log("env", json.dumps(seen))
if "TF_CONFIG" in os.environ and json.loads(os.environ["TF_CONFIG"])["task"]["type"] == "ps":
    import time
    time.sleep(600)  # a parameter server serves until the job stops it
"""

FAULTY = """
import os, sys, time
from nbml import Run
run = Run.get_context()
run.log("started", int(os.environ["RANK"]))
if os.environ["RANK"] == sys.argv[1]:
    time.sleep(1)
    raise ValueError("rank " + sys.argv[1] + " ran out of data")
time.sleep(600)
"""


def _envs(run) -> list[dict]:  # type: ignore[no-untyped-def]
    values = run.get_metrics()["env"]
    return [json.loads(v) for v in (values if isinstance(values, list) else [values])]


def test_pytorch_style_ranks_get_their_env_and_log_into_one_run(ws, project) -> None:  # type: ignore[no-untyped-def]
    project(**{"train.py": ENV_SCRIPT})
    run = Experiment(ws, "ddp").submit(ScriptRunConfig(
        ".", "train.py", distributed_job_config=PyTorchConfiguration(communication_backend="Gloo", process_count=3)))
    run.wait_for_completion(timeout_seconds=120)
    envs = sorted(_envs(run), key=lambda e: int(e["RANK"]))
    assert [e["RANK"] for e in envs] == ["0", "1", "2"] == [e["LOCAL_RANK"] for e in envs]
    assert {e["WORLD_SIZE"] for e in envs} == {"3"} and {e["NODE_RANK"] for e in envs} == {"0"}
    assert {e["MASTER_ADDR"] for e in envs} == {"127.0.0.1"} and len({e["MASTER_PORT"] for e in envs}) == 1
    # One log per rank; rank 0's is the run's output; any rank's through the API and the CLI.
    details = run.get_details()
    assert {f"nbml-logs/driver_log_{r}.txt" for r in range(3)} <= set(details["logFiles"])
    assert "rank 0 says hello" in (run.run_dir / "nbml-logs/driver_log.txt").read_text()
    assert "rank 2 says hello" in run.get_rank_log(2) and "rank 0" not in run.get_rank_log(2)
    cli = subprocess.run([sys.executable, "-m", "nbml", "runs", "logs", run.id, "--rank", "1"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "rank 1 says hello" in cli.stdout, cli.stderr
    bad = subprocess.run([sys.executable, "-m", "nbml", "runs", "logs", run.id, "--rank", "3"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "ranks 0 to 2" in bad.stderr
    props = run.get_properties()
    assert props["nbml.node_count"] == "1" and props["nbml.process_count"] == "3"
    ranks = details["distributed"]["ranks"]
    assert [ranks[r]["state"] for r in sorted(ranks)] == ["completed"] * 3


def test_tensorflow_tasks_get_tf_config_and_parameter_servers_stop_when_workers_end(ws, project) -> None:  # type: ignore[no-untyped-def]
    project(**{"train.py": ENV_SCRIPT})
    run = Experiment(ws, "tf").submit(ScriptRunConfig(
        ".", "train.py", distributed_job_config=TensorflowConfiguration(worker_count=2, parameter_server_count=1)))
    run.wait_for_completion(timeout_seconds=120)
    configs = [json.loads(e["TF_CONFIG"]) for e in _envs(run)]
    cluster = configs[0]["cluster"]
    assert all(c["cluster"] == cluster for c in configs)
    assert len(cluster["worker"]) == 2 and len(cluster["ps"]) == 1
    assert len(set(cluster["worker"] + cluster["ps"])) == 3  # every task its own address
    assert sorted((c["task"]["type"], c["task"]["index"]) for c in configs) == [("ps", 0), ("worker", 0),
                                                                                ("worker", 1)]
    ranks = run.get_details()["distributed"]["ranks"]
    assert ranks[2]["state"] == "stopped" and ranks[0]["state"] == ranks[1]["state"] == "completed"


def test_one_failing_rank_fails_the_run_names_it_and_stops_the_others(ws, project) -> None:  # type: ignore[no-untyped-def]
    project(**{"train.py": FAULTY})
    run = Experiment(ws, "fault").submit(ScriptRunConfig(
        ".", "train.py", arguments=["2"], distributed_job_config=PyTorchConfiguration("Gloo", process_count=4)))
    ranks = wait_ranks(run, 4, state=None)  # rank 2 may already have failed when the states are first seen
    pids = [int(r["pid"]) for r in ranks.values()]
    run.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert error.startswith("rank 2 of 4 (node 0") and "ValueError: rank 2 ran out of data" in error
    assert alive(pids) == []
    states = run.get_details()["distributed"]["ranks"]
    assert states[2]["state"] == "failed" and states[2]["exit_code"] == 1
    assert {states[r]["state"] for r in (0, 1, 3)} == {"stopped"}


def test_cancel_stops_every_rank(ws, project) -> None:  # type: ignore[no-untyped-def]
    project(**{"train.py": FAULTY})
    run = Experiment(ws, "cancel").submit(ScriptRunConfig(
        ".", "train.py", arguments=["-1"], distributed_job_config=PyTorchConfiguration("Gloo", process_count=3)))
    pids = [int(r["pid"]) for r in wait_ranks(run, 3).values()]
    run.cancel()
    run.wait_for_completion(timeout_seconds=60, raise_on_error=False)
    assert run.get_status() == "Canceled"
    deadline = time.monotonic() + 10
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(pids) == []


MPI_SCRIPT = """
from mpi4py import MPI
from nbml import Run
comm = MPI.COMM_WORLD
total = comm.allreduce(comm.Get_rank() + 1, op=MPI.SUM)
Run.get_context().log("allreduce", total)
print("rank", comm.Get_rank(), "of", comm.Get_size(), "sum", total, flush=True)
if comm.Get_rank() == 1 and total < 0:
    raise SystemExit(3)
"""


def test_mpi_ranks_run_under_mpirun_and_allreduce(ws, project) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("mpi4py")
    project(**{"allreduce.py": MPI_SCRIPT})
    run = Experiment(ws, "mpi").submit(ScriptRunConfig(
        ".", "allreduce.py", distributed_job_config=MpiConfiguration(process_count_per_node=3)))
    run.wait_for_completion(timeout_seconds=120)
    assert run.get_metrics()["allreduce"] == [6, 6, 6]
    assert "rank 2 of 3 sum 6" in run.get_rank_log(2)
    assert "rank 0 of 3 sum 6" in (run.run_dir / "nbml-logs/driver_log.txt").read_text()


def test_a_failing_mpi_rank_fails_the_run_naming_it(ws, project) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("mpi4py")
    project(**{"bad.py": "import os, time\nif os.environ['OMPI_COMM_WORLD_RANK'] == '1':\n"
                         "    raise RuntimeError('no GPU memory left')\ntime.sleep(600)\n"})
    # The seeds' form: an Estimator with distributed_backend='mpi'.
    run = Experiment(ws, "mpi").submit(Estimator(".", entry_script="bad.py", node_count=1, process_count_per_node=2,
                                                 distributed_backend="mpi"))
    run.wait_for_completion(timeout_seconds=120, raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]["message"]
    assert error.startswith("rank 1 of 2") and "RuntimeError: no GPU memory left" in error
    assert alive([int(r["pid"]) for r in run.get_details()["distributed"]["ranks"].values()]) == []


def test_nccl_without_a_gpu_and_bad_counts_fail_at_submit(ws, project) -> None:  # type: ignore[no-untyped-def]
    from nbml.errors import UserErrorException
    from nbml.train._distributed import has_gpu

    project(**{"train.py": ENV_SCRIPT})
    exp = Experiment(ws, "bad")
    if not has_gpu():
        with pytest.raises(UserErrorException, match="'Nccl' needs an NVIDIA GPU"):
            exp.submit(PyTorch(".", entry_script="train.py", process_count_per_node=2, distributed_training=Nccl()))
    for config, message in [(PyTorchConfiguration("Gloo", process_count=3, node_count=2), "doesn't split evenly"),
                            (PyTorchConfiguration("Mpich", process_count=2), "'Gloo'"),
                            (MpiConfiguration(process_count_per_node=-1), "at least 1"),
                            (MpiConfiguration(node_count=2), "node_count=2 but a local")]:
        with pytest.raises(UserErrorException, match=message):
            exp.submit(ScriptRunConfig(".", "train.py", distributed_job_config=config))
    assert list(exp.get_runs()) == []


STEPS = """
import os, time
from nbml import Run
run = Run.get_context()
for i in range(40):
    run.log("step_" + os.environ["RANK"], i)
    time.sleep(0.1)
"""


def test_a_new_supervisor_adopts_a_running_distributed_job_and_every_rank_finishes(ws, project) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal

    from nbml import Run

    project(**{"steps.py": STEPS})
    submitted = Experiment(ws, "adopt").submit(ScriptRunConfig(
        ".", "steps.py", distributed_job_config=PyTorchConfiguration("Gloo", process_count=2)))
    wait_ranks(submitted, 2)
    rec = ws.store.get_run(submitted.id)
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    time.sleep(0.5)
    run = Run.get(ws, submitted.id)  # a reader notices and starts a new supervisor, which adopts the launcher
    run.wait_for_completion(timeout_seconds=120)
    metrics = run.get_metrics()
    assert metrics["step_0"] == list(range(40)) and metrics["step_1"] == list(range(40))
    assert ws.store.get_run(run.id)["adoptions"] == 1
    assert {r["state"] for r in run.get_details()["distributed"]["ranks"].values()} == {"completed"}
