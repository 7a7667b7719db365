"""A warm AutoML worker sizes the OpenMP/BLAS thread pools once; the iterations it forks inherit the size."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from nbml.automl.child import WARM_DATA_FILE
from nbml.automl.data import from_sources

FORKED = """
import json, os, sys
from pathlib import Path
import importlib
from nbml.automl import child
for name in child.WARM_PRELOAD:  # as the worker does before its setup
    importlib.import_module(name)
child.warm_setup(Path(sys.argv[1]))
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # what an iteration forked from this worker sees
    from threadpoolctl import threadpool_info
    os.write(write, json.dumps(sorted({(p["user_api"], p["num_threads"]) for p in threadpool_info()})).encode())
    os._exit(0)
os.close(write)
os.waitpid(pid, 0)
print(os.read(read, 65536).decode())
"""


def test_iterations_forked_from_a_warm_worker_run_with_the_runs_thread_limit(tmp_path: Path) -> None:
    X = np.random.default_rng(0).random((40, 3))
    (tmp_path / "data.pkl").write_bytes(pickle.dumps(from_sources(X=X, y=X[:, 0] > 0.5)))
    (tmp_path / WARM_DATA_FILE).write_text(json.dumps({"data": {"pickle": "data.pkl"}, "n_jobs": 1}))
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}  # what the user's says
    out = subprocess.run([sys.executable, "-c", FORKED, str(tmp_path)], capture_output=True, text=True, env=env,
                         check=True).stdout
    pools = json.loads(out)
    assert {api for api, _ in pools} >= {"blas", "openmp"}  # numpy's BLAS, and LightGBM's/scikit-learn's OpenMP
    assert all(threads == 1 for _, threads in pools), pools
