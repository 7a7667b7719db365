"""The iteration executable with validation data: iterations score on it, ensembles blend on it."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine

from nbml.automl import child
from nbml.automl.data import from_sources
from nbml.automl.metrics import ALL_METRICS
from nbml.runs.script_run import OfflineRun


def test_iterations_and_ensembles_score_on_validation_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    X, y = load_wine(return_X_y=True)
    names = np.array(["barolo", "grignolino", "barbera"])[y]  # string labels come back as strings
    ds = from_sources(X=X[::2], y=names[::2], X_valid=X[1::2], y_valid=names[1::2])
    Path("data.pkl").write_bytes(pickle.dumps(ds))
    base = {"task": "classification", "primary_metric": "AUC_weighted", "seed": 0, "featurization": True,
            "data": {"pickle": "data.pkl"}, "validation": {}}
    members = []
    for n, (algo, scaler, params) in enumerate([("LogisticRegression", "StandardScalerWrapper", {"C": 1.0}),
                                                ("KNN", "MinMaxScaler", {"n_neighbors": 5, "weights": "distance"})]):
        scores = child.execute({**base, "kind": "iteration", "algorithm": algo, "scaler": scaler,
                                "hyperparameters": params}, OfflineRun())
        assert set(ALL_METRICS["classification"]) <= set(scores)
        with np.load("outputs/predictions.npz") as npz:
            assert npz["pred"].shape == (len(ds.y_valid), 3) and npz["index"].size == 0
        folder = Path(f"members/{n}")
        shutil.copytree("outputs", folder)
        members.append({"iteration": n, "model": str(folder / "model.pkl"),
                        "predictions": str(folder / "predictions.npz")})
    for kind in ("VotingEnsemble", "StackEnsemble"):
        scores = child.execute({**base, "kind": "ensemble", "ensemble": kind, "members": members}, OfflineRun())
        assert scores["AUC_weighted"] > 0.95
        model = pickle.loads(Path("outputs/model.pkl").read_bytes())
        assert set(model.predict(X[:10])) <= set(names)
    assert json.loads(Path("outputs/scores.json").read_text())["accuracy"] > 0.8
    assert "Attempted to log scalar metric AUC_weighted" in capsys.readouterr().out
