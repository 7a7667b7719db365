"""Local deployment of a score.py whose run() is decorated with inference-schema, as the SDK's server calls it."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from nbml import Model, Workspace
from nbml.core.model import InferenceConfig
from nbml.core.webservice import Webservice
from nbml.models.deploy import WebserviceException

pytest.importorskip("inference_schema")

SCORE = """
import os
import joblib
import numpy as np
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType

def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib"))

input_sample = np.array([[5.1, 3.5, 1.4, 0.2]])
output_sample = np.array([0])

@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    assert isinstance(data, np.ndarray), type(data)  # the decorator converted the JSON list
    return {"prediction": model.predict(data), "tag": TAG}
"""


def _register(ws: Workspace, tmp_path: Path, name: str, estimator: object) -> Model:
    X, y = load_iris(return_X_y=True)
    folder = tmp_path / name
    folder.mkdir()
    joblib.dump(estimator.fit(X, y), folder / "model.joblib")  # type: ignore[attr-defined]
    return Model.register(ws, model_path=str(folder / "model.joblib"), model_name=name)


def test_schema_decorated_run_gets_parsed_json_then_reload_and_update(ws: Workspace, tmp_path: Path) -> None:
    logistic = _register(ws, tmp_path, "iris-logistic", LogisticRegression(max_iter=1000))
    dummy = _register(ws, tmp_path, "iris-dummy", DummyClassifier(strategy="constant", constant=1))
    src = tmp_path / "src"
    src.mkdir()
    (src / "score.py").write_text(SCORE + "TAG = 'first'\n")
    config = InferenceConfig(entry_script="score.py", source_directory=str(src))
    service = Model.deploy(ws, "iris-schema", [logistic], inference_config=config)
    try:
        service.wait_for_deployment(timeout_sec=90)
        rows = {"data": [[5.1, 3.5, 1.4, 0.2], [6.5, 3.0, 5.5, 1.8]]}
        assert service.run(json.dumps(rows)) == {"prediction": [0, 2], "tag": "first"}
        with pytest.raises(WebserviceException, match="JSON object"):
            service.run(json.dumps([[5.1, 3.5, 1.4, 0.2]]))
        uri = service.scoring_uri

        (src / "score.py").write_text(SCORE + "TAG = 'second'\n")
        service.reload()
        assert service.scoring_uri == uri
        assert service.run(rows) == {"prediction": [0, 2], "tag": "second"}

        service.update(models=[dummy])
        assert service.models == [dummy.id]
        assert service.run(rows) == {"prediction": [1, 1], "tag": "second"}

        (src / "score2.py").write_text(SCORE + "TAG = 'third'\n")
        service.update(inference_config=InferenceConfig(entry_script="score2.py", source_directory=str(src)))
        assert Webservice(ws, "iris-schema").run(rows)["tag"] == "third"
    finally:
        pid = ws.store.get_service("iris-schema")["pid"]
        service.delete()
    from nbml._proc import pid_alive

    assert not pid_alive(pid)
