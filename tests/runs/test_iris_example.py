"""The seed's scikit-learn example (train_iris.py), end to end on the local target."""

from __future__ import annotations

import joblib
import pytest

from nbml import Environment, Experiment, Model, Run, ScriptRunConfig

TRAIN_IRIS = """
import argparse, os
import joblib
import numpy as np
from sklearn import datasets, svm
from sklearn.model_selection import train_test_split
from nbml import Run

parser = argparse.ArgumentParser()
parser.add_argument("--kernel", type=str, default="linear")
parser.add_argument("--penalty", type=float, default=1.0)
args = parser.parse_args()
run = Run.get_context()
X, y = datasets.load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
run.log("Kernel type", np.str_(args.kernel))
run.log("Penalty", np.float64(args.penalty))
model = svm.SVC(kernel=args.kernel, C=args.penalty).fit(X_train, y_train)
accuracy = model.score(X_test, y_test)
print("Accuracy of SVM classifier on test set: {:.2f}".format(accuracy))
run.log("Accuracy", np.float64(accuracy))
run.log_list("accuracies", [0.5, 0.7, accuracy])
run.log_row("loss", epoch=1, value=0.5)
run.log_row("loss", epoch=2, value=0.25)
run.tag("framework", "sklearn")
run.add_properties({"best_C": args.penalty})
os.makedirs("outputs", exist_ok=True)
os.makedirs("logs", exist_ok=True)
joblib.dump(model, "outputs/model.joblib")
with open("logs/training.log", "w") as fh:
    fh.write("trained\\n")
"""

CONDA = """
dependencies:
  - python=3.6.2
  - scikit-learn
  - numpy
  - pip:
    - azureml-defaults
"""


def test_seed_iris_example_end_to_end(ws, project, tmp_path, capsys):
    project(**{"train_iris.py": TRAIN_IRIS, "conda_dependencies.yml": CONDA})
    env = Environment.from_conda_specification(name="sklearn-env", file_path="conda_dependencies.yml")
    src = ScriptRunConfig(source_directory=".", script="train_iris.py",
                          arguments=["--kernel", "linear", "--penalty", 1.0], environment=env)
    with pytest.warns(UserWarning, match="azureml-defaults"):
        run = Experiment(ws, "Tutorial-TrainIRIS").submit(src)
    details = run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert "Accuracy of SVM classifier on test set" in out  # streamed output
    assert "Status: Completed" in out  # then the summary
    assert details["status"] == "Completed"

    metrics = run.get_metrics()
    assert metrics["Kernel type"] == "linear"
    assert metrics["Penalty"] == 1.0
    assert metrics["Accuracy"] > 0.9
    assert metrics["accuracies"][:2] == [0.5, 0.7]
    assert metrics["loss"] == {"epoch": [1, 2], "value": [0.5, 0.25]}
    assert run.get_tags()["framework"] == "sklearn"
    assert run.get_properties()["best_C"] == "1.0"

    names = run.get_file_names()
    assert "outputs/model.joblib" in names
    assert "logs/training.log" in names
    assert "nbml-logs/driver_log.txt" in names
    run.download_file("outputs/model.joblib", "model.joblib")
    model = joblib.load("model.joblib")
    assert model.predict([[5.1, 3.5, 1.4, 0.2]])[0] == 0

    registered = run.register_model(model_name="sklearn-iris", model_path="outputs/model.joblib",
                                    model_framework=Model.Framework.SCIKITLEARN)
    assert (registered.name, registered.version, registered.run_id) == ("sklearn-iris", 1, run.id)
    again = Model(ws, "sklearn-iris")
    assert again.version == 1 and again.model_framework == "ScikitLearn"
    downloaded = again.download(str(tmp_path / "dl"))
    assert joblib.load(downloaded).predict([[6.5, 3.0, 5.5, 1.8]])[0] == 2

    # Reattach as a new process would: by id, from the store.
    same = Run.get(ws, run.id)
    assert same.get_status() == "Completed" and same.get_metrics()["Accuracy"] == metrics["Accuracy"]


def test_environment_is_built_once_and_reused(ws, project):
    project(**{"t.py": "import sklearn\nprint('ok', sklearn.__version__)\n", "req.txt": "scikit-learn\n"})
    env = Environment.from_pip_requirements("reuse-env", "req.txt")
    exp = Experiment(ws, "reuse")
    first = exp.submit(ScriptRunConfig(".", "t.py", environment=env))
    first.wait_for_completion()
    built = list((ws.path / "envs").glob("*/.nbml-ready"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    second = exp.submit(ScriptRunConfig(".", "t.py", environment=Environment.from_pip_requirements("reuse-env",
                                                                                                    "req.txt")))
    second.wait_for_completion()
    assert list((ws.path / "envs").glob("*/.nbml-ready")) == built
    assert built[0].stat().st_mtime_ns == stamp
