"""AutoML takes a TabularDataset as training_data; on an SSH target its iterations find the data in the host's
content-addressed cache, so the data travels once, not once per iteration."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from sshd import SshServer, ssh_attach_args

from nbml import Experiment, RemoteCompute
from nbml.data import Dataset

automl = pytest.importorskip("nbml.automl")


def _table(folder: Path, rows: int = 3000) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 8))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["f0,f1,f2,f3,f4,f5,f6,f7,label"] + [",".join(f"{v:.6f}" for v in x) + f",{t}" for x, t in zip(X, y, strict=True)]
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.ssh
@pytest.mark.slow  # about a minute alone (four iterations, each a process on the host); more on a busy machine
def test_automl_on_ssh_with_a_dataset_sends_the_data_once_for_four_iterations(ws, sshd: SshServer, tmp_path: Path):
    store = ws.get_default_datastore()
    store.upload(str(_table(tmp_path / "csv")), target_path="automl", show_progress=False)
    dataset = Dataset.Tabular.from_delimited_files(path=[(store, "automl/train.csv")]).drop_columns(["f7"])
    RemoteCompute.attach(ws, "ssh-box", **ssh_attach_args(sshd, tmp_path, python=sys.executable))
    config = automl.AutoMLConfig(task="classification", compute_target="ssh-box", training_data=dataset,
                                 label_column_name="label", iterations=4, max_concurrent_iterations=1,
                                 n_cross_validations=2, primary_metric="accuracy", enable_voting_ensemble=False,
                                 enable_stack_ensemble=False, model_explainability=False,
                                 allowed_models=["LogisticRegression"])
    run = Experiment(ws, "automl_dataset_ssh").submit(config)
    run.wait_for_completion(raise_on_error=True)
    children = sorted((c for c in run.get_children() if c.type == "automl_iteration"), key=lambda c: c.id)
    assert len(children) == 4
    pickle_size = (ws.run_dir(run.id) / "automl" / "automl_data.pkl").stat().st_size
    assert pickle_size > 100_000
    sent = []
    for child in children:
        log = (child.run_dir / "nbml-logs" / "prepare_log.txt").read_text()
        sent.append(int(re.search(r"sent \d+ \((\d+) bytes\)", log).group(1)))  # type: ignore[union-attr]
    print(f"data pickle {pickle_size} bytes; bytes sent per iteration: {sent}")
    assert sum(sent) < 2 * pickle_size, sent  # the data once (plus nothing else of its size)
    assert sorted(sent)[-1] >= pickle_size and sorted(sent)[:3] == [0, 0, 0], sent
    best_run, model = run.get_output()
    assert best_run.get_metrics()["accuracy"] > 0.8
    frame = dataset.take(50).to_pandas_dataframe()
    assert np.mean(model.predict(frame.drop(columns=["label"])) == frame["label"]) > 0.8
