"""Model.deploy: registered models served on 127.0.0.1, no-code for scikit-learn or with an entry script."""

from __future__ import annotations

import json

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from nbml import (
    InferenceConfig,
    LocalWebservice,
    Model,
    ResourceConfiguration,
    UserErrorException,
    Webservice,
)
from nbml.models.deploy import WebserviceException


@pytest.fixture
def iris_model(ws, tmp_path):
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), path)
    return Model.register(ws, model_path=str(path), model_name="sklearn-iris",
                          model_framework=Model.Framework.SCIKITLEARN, model_framework_version="1.5",
                          resource_configuration=ResourceConfiguration(cpu=1, memory_in_gb=0.5))


def test_no_code_deployment_of_a_scikit_learn_model(ws, iris_model):
    assert json.loads(iris_model.properties["resource_configuration"])["memory_in_gb"] == 0.5
    service = Model.deploy(ws, "scikit-learn-service", [iris_model])
    try:
        service.wait_for_deployment(timeout_sec=60)
        assert service.state == "Healthy" and service.scoring_uri.startswith("http://127.0.0.1:")
        assert service.run(json.dumps({"data": [[5.1, 3.5, 1.4, 0.2], [6.5, 3.0, 5.5, 1.8]]})) == [0, 2]
        probs = service.run({"data": [[5.1, 3.5, 1.4, 0.2]], "method": "predict_proba"})
        assert len(probs[0]) == 3 and abs(sum(probs[0]) - 1) < 1e-6
        with pytest.raises(WebserviceException, match="400"):
            service.run({"rows": []})
        assert Webservice(ws, "scikit-learn-service").scoring_uri == service.scoring_uri  # reattach by name
        with pytest.raises(WebserviceException, match="exists"):
            Model.deploy(ws, "scikit-learn-service", [iris_model])
    finally:
        service.delete()
    assert Webservice.list(ws) == []


def test_entry_script_deployment(ws, iris_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "score.py").write_text(
        "import json, os, joblib\n"
        "def init():\n"
        "    global model\n"
        "    model = joblib.load(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'model.joblib'))\n"
        "def run(raw):\n"
        "    data = json.loads(raw)['data']\n"
        "    return {'classes': [int(c) for c in model.predict(data)]}\n")
    service = Model.deploy(ws, "iris-scorer", [iris_model], InferenceConfig(entry_script="score.py"),
                           LocalWebservice.deploy_configuration())
    try:
        service.wait_for_deployment(timeout_sec=60)
        assert service.run({"data": [[6.5, 3.0, 5.5, 1.8]]}) == {"classes": [2]}
    finally:
        service.delete()


def test_deploy_errors_name_the_fix(ws, iris_model, tmp_path):
    other = tmp_path / "w.bin"
    other.write_bytes(b"x")
    custom = Model.register(ws, model_path=str(other), model_name="custom")
    with pytest.raises(UserErrorException, match="InferenceConfig"):
        Model.deploy(ws, "custom-svc", [custom])
    with pytest.raises(UserErrorException, match="Service name"):
        Model.deploy(ws, "Bad_Name", [iris_model])
    broken = tmp_path / "broken.py"
    broken.write_text("def init():\n    raise RuntimeError('no weights here')\ndef run(raw):\n    return raw\n")
    service = Model.deploy(ws, "broken-svc", [iris_model], InferenceConfig("broken.py", source_directory=str(tmp_path)))
    with pytest.raises(WebserviceException, match="no weights here"):
        service.wait_for_deployment(timeout_sec=60)
    service.delete()
