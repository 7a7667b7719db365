"""AciWebservice: Model.deploy runs the scoring service as a container with CPU and memory limits."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import docker
import joblib
import pytest
from cluster_factories import BASE_IMAGE, require_docker
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from nbml import AciWebservice, InferenceConfig, Model, Webservice
from nbml.compute.docker_aci import LABEL_SERVICE
from nbml.models.deploy import WebserviceException

pytestmark = pytest.mark.docker


@pytest.fixture
def iris_model(ws, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    require_docker()
    monkeypatch.setenv("NBML_DOCKER_BASE_IMAGE", BASE_IMAGE)
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), tmp_path / "model.joblib")
    return Model.register(ws, model_path=str(tmp_path / "model.joblib"), model_name="sklearn-iris",
                          model_framework=Model.Framework.SCIKITLEARN)


def _containers(name: str) -> list:  # type: ignore[type-arg]
    client = docker.from_env()
    try:
        return client.containers.list(all=True, filters={"label": f"{LABEL_SERVICE}={name}"})
    finally:
        client.close()


@pytest.mark.slow  # the first run builds the serving image (scikit-learn from the package index): minutes
def test_aci_deployment_runs_a_limited_container_that_scores(ws, iris_model, capsys):
    config = AciWebservice.deploy_configuration(cpu_cores=0.5, memory_gb=0.5, tags={"sample": "iris"},
                                                description="iris on a container", auth_enabled=True)
    service = Model.deploy(ws, "iris-aci", [iris_model], deployment_config=config)
    try:
        service.wait_for_deployment(show_output=True, timeout_sec=300)
        assert isinstance(service, AciWebservice) and service.state == "Healthy"
        assert "iris-aci: Healthy http://127.0.0.1:" in capsys.readouterr().out
        [container] = _containers("iris-aci")
        host = container.attrs["HostConfig"]
        assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 512 << 20
        assert service.run(json.dumps({"data": [[5.1, 3.5, 1.4, 0.2], [6.5, 3.0, 5.5, 1.8]]})) == [0, 2]
        # auth_enabled: a request without the key is refused; the deploying process holds the keys.
        request = urllib.request.Request(service.scoring_uri, data=b'{"data": [[5.1, 3.5, 1.4, 0.2]]}')
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(request, timeout=10)
        primary, _secondary = service.get_keys()
        assert primary not in json.dumps(ws.store.get_service("iris-aci")["config_json"])  # only hashes stored
        again = Webservice(ws, "iris-aci")  # reattach by name: the ACI class, the same service
        assert isinstance(again, AciWebservice) and again.tags == {"sample": "iris"}
        assert again.description == "iris on a container" and again.scoring_uri == service.scoring_uri
        assert "serving on" in service.get_logs()
    finally:
        service.delete()
    assert _containers("iris-aci") == [] and Webservice.list(ws) == []


@pytest.mark.slow
def test_aci_entry_script_deployment_and_a_failing_init(ws, iris_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "score.py").write_text(
        "import json, os, joblib\n"
        "def init():\n"
        "    global model\n"
        "    from nbml import Model\n"
        "    model = joblib.load(Model.get_model_path('sklearn-iris'))  # the SDK's way, inside the service\n"
        "def run(raw):\n"
        "    return {'classes': [int(c) for c in model.predict(json.loads(raw)['data'])]}\n")
    (tmp_path / "broken.py").write_text("def init():\n    raise RuntimeError('no weights here')\n")
    config = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1)
    service = Model.deploy(ws, "iris-aci-script", [iris_model], InferenceConfig(entry_script="score.py"), config)
    broken = Model.deploy(ws, "iris-aci-broken", [iris_model], InferenceConfig(entry_script="broken.py"), config)
    try:
        service.wait_for_deployment(timeout_sec=300)
        assert service.run({"data": [[6.5, 3.0, 5.5, 1.8]]}) == {"classes": [2]}
        with pytest.raises(WebserviceException, match="no weights here"):
            broken.wait_for_deployment(timeout_sec=300)
        assert broken.state == "Failed"
    finally:
        service.delete()
        broken.delete()


def test_aci_limits_beyond_the_engine_are_refused_before_anything_exists(ws, iris_model):
    with pytest.raises(Exception, match="cpu_cores=512 is more than"):
        Model.deploy(ws, "too-big", [iris_model], deployment_config=AciWebservice.deploy_configuration(cpu_cores=512))
    assert ws.store.get_service("too-big") is None and _containers("too-big") == []
